"""GPU check: throughput and peak memory of fit, against a plain PyTorch loop.

For a BERT-base-sized text model (12 layers, 768 wide) and a CLIP-B/32-sized
text+image model, both randomly initialised from configs and saved to a temporary
folder (nothing is downloaded), and for each precision (fp32, bf16, fp16) with
and without gradient checkpointing, this measures:

- samples/s of the training epochs of ``TextClassifier.fit`` /
  ``MultimodalClassifier.fit`` (the first epoch is a warm-up and not counted),
- peak GPU memory of the fit (``torch.cuda.max_memory_allocated``),
- the same two for a plain PyTorch loop over the same model, data, batch size,
  precision (autocast, a gradient scaler for fp16) and checkpointing setting,

and their ratios (estimator / plain loop). It also checks on the way that the
fitted estimator predicts finite float32 probabilities and keeps float32 weights,
and records what ``precision="auto"`` picks on this GPU. A table is printed and
the results are written as JSON.

Run on one GPU (aimed at under 5 minutes)::

    PYTHONPATH=. python benchmarks/gpu_check.py --out gpu_check.json

Run in seconds on a CPU, with tiny models, to check that the script works
(fp16 needs CUDA and is reported as skipped there)::

    PYTHONPATH=. python benchmarks/gpu_check.py --smoke --out gpu_check_smoke.json
"""

import argparse
import gc
import json
import logging
import platform
import string
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

PRECISIONS = ("fp32", "bf16", "fp16")
LETTERS = list(string.ascii_lowercase)


# --- models --------------------------------------------------------------------
def _tokenizer(folder, vocab_size):
    """A letter-level BERT tokenizer padded to ``vocab_size`` entries."""
    from transformers import BertTokenizerFast

    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    vocab += LETTERS + ["##" + c for c in LETTERS]
    vocab += [f"[unused{i}]" for i in range(max(0, vocab_size - len(vocab)))]
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n")
    BertTokenizerFast(str(folder / "vocab.txt")).save_pretrained(folder)
    return len(vocab)


def build_bert(folder, smoke):
    from transformers import BertConfig, BertModel

    folder.mkdir(parents=True)
    vocab = _tokenizer(folder, 128 if smoke else 30522)
    size = (
        dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4)
        if smoke
        else dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12)
    )
    config = BertConfig(
        vocab_size=vocab,
        intermediate_size=4 * size["hidden_size"],
        max_position_embeddings=512,
        pad_token_id=0,
        **size,
    )
    torch.manual_seed(0)
    BertModel(config).save_pretrained(folder)
    return str(folder)


def build_clip(folder, smoke):
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel

    folder.mkdir(parents=True)
    vocab = _tokenizer(folder, 128 if smoke else 49408)
    image = 32 if smoke else 224
    if smoke:
        text = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4)
        vision = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4)
        patch, projection = 8, 16
    else:
        text = dict(hidden_size=512, num_hidden_layers=12, num_attention_heads=8)
        vision = dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12)
        patch, projection = 32, 512
    config = CLIPConfig(
        text_config=dict(
            vocab_size=vocab,
            intermediate_size=4 * text["hidden_size"],
            max_position_embeddings=77,
            pad_token_id=0,
            bos_token_id=2,
            eos_token_id=3,
            **text,
        ),
        vision_config=dict(
            intermediate_size=4 * vision["hidden_size"],
            image_size=image,
            patch_size=patch,
            **vision,
        ),
        projection_dim=projection,
    )
    torch.manual_seed(0)
    CLIPModel(config).save_pretrained(folder)
    CLIPImageProcessor(
        size={"shortest_edge": image}, crop_size={"height": image, "width": image}
    ).save_pretrained(folder)
    return str(folder)


# --- data ------------------------------------------------------------------------
def make_texts(rows, tokens, seed=0):
    """Texts of ``tokens`` letter tokens (with [CLS] and [SEP])."""
    rng = np.random.default_rng(seed)
    letters = np.array(LETTERS)
    return [" ".join(rng.choice(letters, tokens - 2)) for _ in range(rows)]


def make_images(rows, size, seed=0):
    from PIL import Image

    rng = np.random.default_rng(seed)
    return [
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8))
        for _ in range(rows)
    ]


# --- measuring -------------------------------------------------------------------
def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _reset_memory(device):
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def _peak_memory_mb(device):
    if device.type != "cuda":
        return None
    return torch.cuda.max_memory_allocated(device) / 2**20


def _throughput(epoch_seconds, rows):
    """Samples/s over the epochs after the first (warm-up) one."""
    timed = epoch_seconds[1:] or epoch_seconds
    return rows / float(np.median(timed))


def run_estimator(spec, data, precision, checkpointing, args, device):
    """Fit our estimator; time its training epochs."""
    from multimodal_clf import MultimodalClassifier, TextClassifier
    from multimodal_clf.engine import Trainer

    X, y = data
    epoch_seconds = []
    plain_epoch = Trainer.train_epoch

    def timed(self, rows):
        _sync(device)
        start = time.perf_counter()
        out = plain_epoch(self, rows)
        _sync(device)
        epoch_seconds.append(time.perf_counter() - start)
        return out

    options = dict(
        batch_size=args.batch_size,
        epochs=args.epochs,
        precision=precision,
        gradient_checkpointing=checkpointing,
        device=str(device),
        random_state=0,
        verbose=0,
    )
    if spec["kind"] == "text":
        clf = TextClassifier(spec["path"], **options)
    else:
        clf = MultimodalClassifier(spec["path"], head_hidden_size=0, **options)
    _reset_memory(device)
    Trainer.train_epoch = timed
    try:
        start = time.perf_counter()
        clf.fit(X, y)
        fit_seconds = time.perf_counter() - start
    finally:
        Trainer.train_epoch = plain_epoch
    peak = _peak_memory_mb(device)
    proba = clf.predict_proba(X[: args.batch_size])
    checks = {
        "proba_float32": proba.dtype == np.float32,
        "proba_finite": bool(np.isfinite(proba).all()),
        "weights_float32": all(
            p.dtype == torch.float32 for p in clf.model_.parameters()
        ),
    }
    del clf
    _reset_memory(device)
    return {
        "samples_per_s": _throughput(epoch_seconds, len(y)),
        "peak_memory_mb": peak,
        "fit_seconds": fit_seconds,
        "checks": checks,
    }


class PlainModel(nn.Module):
    """The same backbone and a LayerNorm + linear head, written directly."""

    def __init__(self, spec):
        super().__init__()
        from transformers import AutoModel

        self.kind = spec["kind"]
        model = AutoModel.from_pretrained(spec["path"])
        if self.kind == "text":
            self.text = model
            widths = [model.config.hidden_size]
        else:
            self.text, self.vision = model.text_model, model.vision_model
            self.text_projection = model.text_projection
            self.visual_projection = model.visual_projection
            widths = [model.text_projection.out_features] * 2
        self.norms = nn.ModuleList([nn.LayerNorm(w) for w in widths])
        self.linear = nn.Linear(sum(widths), 2)

    def checkpointed_models(self):
        return [self.text] + ([self.vision] if self.kind != "text" else [])

    def forward(self, ids, mask, pixels=None):
        if self.kind == "text":
            states = self.text(input_ids=ids, attention_mask=mask).last_hidden_state
            weights = mask.unsqueeze(-1).to(states.dtype)
            features = [(states * weights).sum(1) / weights.sum(1)]
        else:
            text = self.text(input_ids=ids, attention_mask=mask).pooler_output
            image = self.vision(pixel_values=pixels).pooler_output
            features = [self.text_projection(text), self.visual_projection(image)]
        normed = [norm(f.float()) for norm, f in zip(self.norms, features)]
        return self.linear(torch.cat(normed, dim=-1))


def run_plain(spec, tensors, precision, checkpointing, args, device):
    """A hand-written loop over the same model and batches."""
    ids, mask, pixels, labels = tensors
    torch.manual_seed(0)
    model = PlainModel(spec).to(device)
    if checkpointing:
        for inner in model.checkpointed_models():
            inner.config.use_cache = False
            if hasattr(inner, "activation_checkpointing_enable"):
                inner.activation_checkpointing_enable({"use_reentrant": False})
            else:
                inner.gradient_checkpointing_enable({"use_reentrant": False})
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=2e-5, fused=device.type == "cuda"
    )
    scaler = torch.amp.GradScaler("cuda") if precision == "fp16" else None
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
    generator = torch.Generator().manual_seed(0)
    epoch_seconds = []
    _reset_memory(device)
    model.train()
    for _ in range(args.epochs):
        order = torch.randperm(len(labels), generator=generator)
        _sync(device)
        start = time.perf_counter()
        for i in range(0, len(order), args.batch_size):
            rows = order[i : i + args.batch_size]
            batch = [
                None if t is None else t[rows].to(device, non_blocking=True)
                for t in (ids, mask, pixels, labels)
            ]
            with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
                logits = model(*batch[:3])
            loss = F.cross_entropy(logits.float(), batch[3])
            if scaler is not None:
                scaler.scale(loss).backward()
                scaler.unscale_(optimizer)
            else:
                loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            if scaler is not None:
                scaler.step(optimizer)
                scaler.update()
            else:
                optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        _sync(device)
        epoch_seconds.append(time.perf_counter() - start)
    peak = _peak_memory_mb(device)
    del model, optimizer
    _reset_memory(device)
    return {
        "samples_per_s": _throughput(epoch_seconds, len(labels)),
        "peak_memory_mb": peak,
    }


def plain_tensors(spec, data):
    """Tokenize / preprocess once for the plain loop (all rows one length)."""
    from transformers import AutoImageProcessor, AutoTokenizer

    X, y = data
    tokenizer = AutoTokenizer.from_pretrained(spec["path"])
    texts = X if spec["kind"] == "text" else [text for text, _ in X]
    encoded = tokenizer(texts, padding=True, return_tensors="pt")
    pixels = None
    if spec["kind"] != "text":
        processor = AutoImageProcessor.from_pretrained(spec["path"])
        pixels = processor(images=[image for _, image in X], return_tensors="pt")[
            "pixel_values"
        ]
    labels = torch.as_tensor([0 if v == "a" else 1 for v in y])
    return encoded["input_ids"], encoded["attention_mask"], pixels, labels


# --- the run ---------------------------------------------------------------------
def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--smoke", action="store_true", help="tiny models on the CPU")
    parser.add_argument("--out", default="gpu_check.json")
    parser.add_argument("--models", default="bert,clip")
    parser.add_argument("--rows", type=int, default=None)
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--tokens", type=int, default=None)
    args = parser.parse_args(argv)
    logging.getLogger("transformers").setLevel(logging.ERROR)

    defaults = (8, 2, 4, 16) if args.smoke else (1024, 3, 32, 64)
    for name, value in zip(("rows", "epochs", "batch_size", "tokens"), defaults):
        if getattr(args, name) is None:
            setattr(args, name, value)
    if args.smoke:
        device = torch.device("cpu")
    elif torch.cuda.is_available():
        device = torch.device("cuda", 0)
    else:
        parser.error("no CUDA GPU is visible; use --smoke to check on the CPU")

    from multimodal_clf.engine import resolve_precision

    report = {
        "device": torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else platform.processor() or "cpu",
        "torch": torch.__version__,
        "auto_precision": resolve_precision("auto", device),
        "config": {
            k: getattr(args, k) for k in ("rows", "epochs", "batch_size", "tokens")
        },
        "smoke": args.smoke,
        "results": [],
    }
    builders = {"bert": ("text", build_bert), "clip": ("multimodal", build_clip)}
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models.split(","):
            kind, build = builders[name]
            spec = {
                "name": name,
                "kind": kind,
                "path": build(Path(tmp) / name, args.smoke),
            }
            texts = make_texts(
                args.rows, min(args.tokens, 77 if kind != "text" else 512)
            )
            y = ["a", "b"] * (args.rows // 2) + ["a"] * (args.rows % 2)
            if kind == "text":
                data = (texts, y)
            else:
                images = make_images(args.rows, 32 if args.smoke else 224)
                data = (list(zip(texts, images)), y)
            tensors = plain_tensors(spec, data)
            for precision in PRECISIONS:
                for checkpointing in (False, True):
                    row = {
                        "model": name,
                        "precision": precision,
                        "checkpointing": checkpointing,
                    }
                    if precision == "fp16" and device.type != "cuda":
                        row["skipped"] = "fp16 needs CUDA"
                        report["results"].append(row)
                        continue
                    row["estimator"] = run_estimator(
                        spec, data, precision, checkpointing, args, device
                    )
                    row["plain"] = run_plain(
                        spec, tensors, precision, checkpointing, args, device
                    )
                    est, plain = row["estimator"], row["plain"]
                    row["speed_ratio"] = est["samples_per_s"] / plain["samples_per_s"]
                    if est["peak_memory_mb"] is not None:
                        row["memory_ratio"] = (
                            est["peak_memory_mb"] / plain["peak_memory_mb"]
                        )
                    report["results"].append(row)
                    print_row(row, flush=True)
    report["total_seconds"] = time.perf_counter() - started
    print_table(report)
    Path(args.out).write_text(json.dumps(report, indent=2))
    failed = [
        r
        for r in report["results"]
        if "estimator" in r and not all(r["estimator"]["checks"].values())
    ]
    if failed:
        raise SystemExit(f"checks failed: {failed}")


def _fmt(value, spec):
    width = int("".join(c for c in spec.split(".")[0] if c.isdigit()))
    return f"{'-':>{width}}" if value is None else format(value, spec)


def print_row(row, flush=False):
    head = (
        f"{row['model']:<6}{row['precision']:<6}"
        f"{'on' if row['checkpointing'] else 'off':<5}"
    )
    if "skipped" in row:
        print(f"{head}skipped: {row['skipped']}", flush=flush)
        return
    est, plain = row["estimator"], row["plain"]
    print(
        f"{head}{est['samples_per_s']:>10.1f}{plain['samples_per_s']:>10.1f}"
        f"{row['speed_ratio']:>8.2f}"
        f"{_fmt(est['peak_memory_mb'], '>10.0f')}"
        f"{_fmt(plain['peak_memory_mb'], '>10.0f')}"
        f"{_fmt(row.get('memory_ratio'), '>8.2f')}",
        flush=flush,
    )


def print_table(report):
    print()
    print(
        f"device: {report['device']}, torch {report['torch']}, "
        f"precision='auto' -> {report['auto_precision']}, "
        f"total {report['total_seconds']:.0f} s"
    )
    print(
        f"{'model':<6}{'prec':<6}{'ckpt':<5}{'est/s':>10}{'plain/s':>10}"
        f"{'ratio':>8}{'est MiB':>10}{'plain MiB':>10}{'ratio':>8}"
    )
    for row in report["results"]:
        print_row(row)


if __name__ == "__main__":
    main()
