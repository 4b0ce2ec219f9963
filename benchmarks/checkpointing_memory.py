"""Peak CPU memory of training with and without gradient checkpointing.

A randomly initialised BERT (built from a config, saved to a temporary folder; no
download) is fine-tuned through ``TextClassifier.fit`` on long texts, once with
``gradient_checkpointing=False`` and once with ``True``, each in its own fresh
subprocess so that one run's allocations cannot hide the other's. Per run:

- peak RSS increase: the process's resident-set high-water mark
  (``ru_maxrss``) at the end of ``fit`` minus its RSS just before ``fit``;
- saved activations: the largest number of bytes that autograd holds for the
  backward pass in one training step (summed with saved-tensor hooks; tensors
  that checkpointing drops are not held);
- the time of ``fit``.

Run::

    PYTHONPATH=. python benchmarks/checkpointing_memory.py --repeats 2

Options set the model size and data; ``--out`` writes the results as JSON.
"""

import argparse
import gc
import json
import os
import resource
import string
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def build_model(folder, *, layers, hidden, heads, max_length):
    """Save a random BERT and a small letter-level tokenizer to ``folder``."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizerFast

    letters = list(string.ascii_lowercase)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    vocab += letters + ["##" + c for c in letters]
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n")
    BertTokenizerFast(str(folder / "vocab.txt")).save_pretrained(folder)
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=4 * hidden,
        max_position_embeddings=max_length,
        pad_token_id=0,
    )
    torch.manual_seed(0)
    BertModel(config).save_pretrained(folder)
    return str(folder)


def make_texts(n_rows, n_tokens, seed=0):
    """Texts of ``n_tokens`` tokens each (single letters, with [CLS] and [SEP])."""
    import numpy as np

    rng = np.random.default_rng(seed)
    letters = np.array(list(string.ascii_lowercase))
    return [" ".join(rng.choice(letters, n_tokens - 2)) for _ in range(n_rows)]


def _rss():
    import psutil

    return psutil.Process().memory_info().rss


def child(args):
    """One measured fit in this (fresh) process; prints a JSON line."""
    import torch

    from multimodal_clf import TextClassifier
    from multimodal_clf.engine import Trainer

    torch.set_num_threads(args.threads)
    texts = make_texts(args.rows, args.tokens)
    labels = ["a", "b"] * (args.rows // 2)

    # bytes autograd keeps for backward, per training step
    saved, per_step = {}, []
    plain_step = Trainer.train_step

    def pack(tensor):
        storage = tensor.untyped_storage()
        saved[storage.data_ptr()] = storage.nbytes()
        return tensor

    def measured_step(self, data, group, step):
        saved.clear()
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            out = plain_step(self, data, group, step)
        per_step.append(sum(saved.values()))
        return out

    Trainer.train_step = measured_step
    clf = TextClassifier(
        args.model,
        batch_size=args.batch_size,
        epochs=1,
        device="cpu",
        precision="fp32",
        gradient_checkpointing=args.child == "on",
        random_state=0,
        verbose=0,
    )
    gc.collect()
    before = _rss()
    start = time.perf_counter()
    clf.fit(texts, labels)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(
        json.dumps(
            {
                "checkpointing": args.child == "on",
                "rss_before_mb": before / 2**20,
                "peak_increase_mb": (peak - before) / 2**20,
                "saved_activations_mb": max(per_step) / 2**20,
                "fit_seconds": seconds,
                "steps": len(per_step),
            }
        )
    )


def run_child(args, checkpointing):
    command = [
        sys.executable,
        __file__,
        "--child",
        checkpointing,
        "--model",
        args.model,
        "--rows",
        str(args.rows),
        "--tokens",
        str(args.tokens),
        "--batch-size",
        str(args.batch_size),
        "--threads",
        str(args.threads),
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONWARNINGS": "ignore"}
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    if done.returncode:
        raise RuntimeError(done.stderr[-3000:])
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--layers", type=int, default=6)
    parser.add_argument("--hidden", type=int, default=384)
    parser.add_argument("--heads", type=int, default=12)
    parser.add_argument("--tokens", type=int, default=384)
    parser.add_argument("--rows", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--out", default=None)
    parser.add_argument("--child", choices=["on", "off"], help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child(args)

    with tempfile.TemporaryDirectory() as tmp:
        args.model = build_model(
            Path(tmp) / "bert",
            layers=args.layers,
            hidden=args.hidden,
            heads=args.heads,
            max_length=max(512, args.tokens),
        )
        runs = []
        for _ in range(args.repeats):
            for checkpointing in ("off", "on"):
                runs.append(run_child(args, checkpointing))

    def best(flag, key):
        return min(r[key] for r in runs if r["checkpointing"] == flag)

    summary = {
        "config": {
            k: getattr(args, k)
            for k in ("layers", "hidden", "heads", "tokens", "rows", "batch_size")
        },
        "runs": runs,
    }
    for key in ("peak_increase_mb", "saved_activations_mb", "fit_seconds"):
        summary[key] = {"off": best(False, key), "on": best(True, key)}
        summary[key]["ratio_on_off"] = summary[key]["on"] / summary[key]["off"]

    print(
        f"BERT {args.layers} layers x {args.hidden} hidden, batch {args.batch_size}"
        f" x {args.tokens} tokens, {args.rows} rows, fp32 on CPU "
        f"(best of {args.repeats})"
    )
    print(f"{'measure':<26}{'without':>12}{'with':>12}{'with/without':>14}")
    for key, label in (
        ("peak_increase_mb", "peak RSS increase (MiB)"),
        ("saved_activations_mb", "saved activations (MiB)"),
        ("fit_seconds", "fit time (s)"),
    ):
        row = summary[key]
        print(
            f"{label:<26}{row['off']:>12.1f}{row['on']:>12.1f}"
            f"{row['ratio_on_off']:>14.2f}"
        )
    if args.out:
        Path(args.out).write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
