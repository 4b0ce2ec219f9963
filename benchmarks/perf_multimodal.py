"""MultimodalClassifier against a plain PyTorch loop on clip-art images and titles.

Both train the same model: MiniLM (mean-pooled) and DINOv2-small (class token),
the library's concat head (hidden 256, dropout 0.1), AdamW with the same groups
(weight decay 0.01 except biases and norms), the same linear warm-up / decay
schedule, gradient clipping at 1.0, the same epochs, batch size and seed. The
plain loop decodes and processes every image in a ``DataLoader`` each epoch and
tokenizes each batch; the library decodes, processes and tokenizes once per fit.
Prediction: ``predict_proba`` against the plain loop's evaluation pass.

Two settings: ``full`` fine-tunes both towers; ``frozen-image`` freezes the
image tower (``freeze="image"``), where the plain loop runs the frozen tower
under ``torch.no_grad`` every epoch and the library computes its features once.

Run from the repository root::

    PYTHONPATH=$PWD python benchmarks/perf_multimodal.py --rows 48 --epochs 2
"""

import argparse
import math
from pathlib import Path

try:
    from benchmarks import _harness as H
except ImportError:  # run as a script
    import _harness as H

SCRIPT = Path(__file__).resolve()
SETTINGS = {"full": None, "frozen-image": "image"}


def load_split(config):
    from multimodal_clf.datasets import load_clipart

    frame = load_clipart(config["data"])
    train = frame[frame["split"] == "train"]
    train = train.sample(n=min(config["rows"], len(train)), random_state=config["seed"])
    test = frame[frame["split"] == "test"].head(config["test_rows"])
    return train.reset_index(drop=True), test.reset_index(drop=True)


def warm_imports():
    """Import the model code before any timer starts, in every contender."""
    import transformers.models.bert.modeling_bert  # noqa: F401
    import transformers.models.dinov2.modeling_dinov2  # noqa: F401


# --- the library ------------------------------------------------------------------
def run_ours(config):
    from multimodal_clf import MultimodalClassifier

    warm_imports()
    train, test = load_split(config)
    fit_clock = H.Clock()
    clf = MultimodalClassifier(
        (H.minilm_path(), config["image_model"]),
        freeze=SETTINGS[config["setting"]],
        epochs=config["epochs"],
        batch_size=config["batch_size"],
        learning_rate=config["learning_rate"],
        random_state=config["seed"],
        cache_features=False,
        device="cpu",
        verbose=0,
    )
    clf.fit(train[["text", "image"]], train["label"])
    fit_clock.stop()
    fit_peak = H.peak_rss_mib()
    predict_clock = H.Clock()
    proba = clf.predict_proba(test[["text", "image"]])
    predict_clock.stop()
    accuracy = float((clf.classes_[proba.argmax(1)] == test["label"].to_numpy()).mean())
    return _record(
        config, len(train), len(test), fit_clock, predict_clock, fit_peak, accuracy
    )


# --- the plain PyTorch loop -----------------------------------------------------
def run_plain(config):
    import numpy as np
    import torch
    import torch.nn.functional as F
    from torch import nn
    from torch.utils.data import DataLoader, Dataset
    from transformers import AutoImageProcessor, AutoModel, AutoTokenizer

    from multimodal_clf.data import load_images
    from multimodal_clf.heads import ConcatHead

    warm_imports()
    train, test = load_split(config)
    classes = sorted(set(train["label"]))
    label_ids = {label: i for i, label in enumerate(classes)}
    fit_clock = H.Clock()
    torch.manual_seed(config["seed"])
    tokenizer = AutoTokenizer.from_pretrained(H.minilm_path())
    processor = AutoImageProcessor.from_pretrained(config["image_model"])

    class Pairs(Dataset):
        def __init__(self, frame):
            self.texts = frame["text"].tolist()
            self.paths = frame["image"].tolist()
            self.labels = [label_ids.get(label, -1) for label in frame["label"]]

        def __len__(self):
            return len(self.texts)

        def __getitem__(self, i):
            image = load_images([self.paths[i]])[0]
            pixels = processor(images=image, return_tensors="pt")["pixel_values"][0]
            return self.texts[i], pixels, self.labels[i]

    def collate(items):
        texts, pixels, labels = zip(*items)
        tokens = tokenizer(
            list(texts), padding=True, truncation=True, return_tensors="pt"
        )
        return tokens, torch.stack(pixels), torch.tensor(labels)

    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.text = AutoModel.from_pretrained(H.minilm_path())
            self.image = AutoModel.from_pretrained(config["image_model"])
            dims = {
                "text": self.text.config.hidden_size,
                "image": self.image.config.hidden_size,
            }
            self.head = ConcatHead(dims, len(classes), hidden=256, dropout=0.1)

        def forward(self, tokens, pixels):
            states = self.text(
                input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"]
            ).last_hidden_state
            mask = tokens["attention_mask"].unsqueeze(-1).to(states.dtype)
            text = (states * mask).sum(1) / mask.sum(1).clamp(min=1.0)
            if frozen_image:
                with torch.no_grad():
                    image = self.image(pixel_values=pixels).last_hidden_state[:, 0]
            else:
                image = self.image(pixel_values=pixels).last_hidden_state[:, 0]
            return self.head({"text": text, "image": image})

    frozen_image = config["setting"] == "frozen-image"
    model = Model()
    if frozen_image:
        model.image.requires_grad_(False)
    generator = torch.Generator().manual_seed(config["seed"])
    loader = DataLoader(
        Pairs(train),
        batch_size=config["batch_size"],
        shuffle=True,
        generator=generator,
        collate_fn=collate,
        num_workers=config["workers"],
    )
    groups = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        decay = 0.0 if name.endswith("bias") or "norm" in name.lower() else 0.01
        groups.setdefault(decay, []).append(param)
    optimizer = torch.optim.AdamW(
        [{"params": params, "weight_decay": decay} for decay, params in groups.items()],
        lr=config["learning_rate"],
        fused=True,
    )
    total = len(loader) * config["epochs"]
    warmup = int(round(0.1 * total))

    def factor(step):
        if step < warmup:
            return (step + 1) / (warmup + 1)
        return max(0.0, (total - step) / max(1, total - warmup))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    for _ in range(config["epochs"]):
        model.train()
        if frozen_image:
            model.image.eval()
        for tokens, pixels, labels in loader:
            loss = F.cross_entropy(model(tokens, pixels), labels)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
    fit_clock.stop()
    fit_peak = H.peak_rss_mib()

    predict_clock = H.Clock()
    model.eval()
    outputs = []
    test_loader = DataLoader(
        Pairs(test),
        batch_size=config["batch_size"],
        collate_fn=collate,
        num_workers=config["workers"],
    )
    with torch.no_grad():
        for tokens, pixels, _ in test_loader:
            outputs.append(torch.softmax(model(tokens, pixels), dim=1))
    proba = torch.cat(outputs).numpy()
    predict_clock.stop()
    predicted = np.array(classes)[proba.argmax(1)]
    accuracy = float((predicted == test["label"].to_numpy()).mean())
    assert math.isfinite(accuracy)
    return _record(
        config, len(train), len(test), fit_clock, predict_clock, fit_peak, accuracy
    )


def _record(config, n_train, n_test, fit, predict, fit_peak, accuracy):
    return {
        "fit_s": fit.wall,
        "fit_samples_per_s": n_train * config["epochs"] / fit.wall,
        "fit_samples_per_cpu_s": n_train * config["epochs"] / fit.cpu,
        "predict_s": predict.wall,
        "predict_samples_per_s": n_test / predict.wall,
        "predict_samples_per_cpu_s": n_test / predict.cpu,
        "fit_peak_rss_mib": fit_peak,
        "peak_rss_mib": H.peak_rss_mib(),
        "accuracy": accuracy,
    }


WORKERS = {"ours": run_ours, "plain": run_plain}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=48, help="training rows")
    parser.add_argument("--test-rows", type=int, default=48)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--learning-rate", type=float, default=5e-5)
    parser.add_argument(
        "--workers", type=int, default=0, help="DataLoader workers (plain loop)"
    )
    parser.add_argument(
        "--settings",
        default="full,frozen-image",
        help="comma-separated: " + ", ".join(SETTINGS),
    )
    parser.add_argument("--image-model", default=str(H.DINOV2))
    return H.common_arguments(parser).parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if args.worker:
        H.worker_main(WORKERS, args)
        return
    print(f"machine: {H.machine()}")
    base = {
        "data": args.data,
        "rows": args.rows,
        "test_rows": args.test_rows,
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "learning_rate": args.learning_rate,
        "workers": args.workers,
        "image_model": args.image_model,
        "seed": args.seed,
    }
    contenders = {}
    for setting in args.settings.split(","):
        config = {**base, "setting": setting}
        contenders[f"{setting}: MultimodalClassifier"] = ("ours", config)
        contenders[f"{setting}: plain loop"] = ("plain", config)
    runs = H.interleaved(
        SCRIPT,
        contenders,
        repeats=args.repeats,
        threads=args.threads,
        timeout=args.timeout,
    )
    rows = []
    for name, results in runs.items():
        ours = runs[name.split(":")[0] + ": MultimodalClassifier"]
        rows.append(
            [
                name,
                f"{H.median(results, 'fit_samples_per_s'):.2f}",
                f"{H.median(results, 'fit_s'):.1f} ({H.spread(results, 'fit_s')})",
                f"{H.median(results, 'predict_samples_per_s'):.2f}",
                f"{H.median(results, 'fit_peak_rss_mib'):.0f}",
                f"{H.median(results, 'accuracy'):.3f}",
                _speed_up(ours, results, "fit"),
                _speed_up(ours, results, "predict"),
            ]
        )
    table = H.markdown_table(
        [
            "setting: contender",
            "fit samples/s",
            "fit wall s (min-max)",
            "predict samples/s",
            "fit peak RSS MiB",
            "test accuracy",
            "our fit speed-up, wall (CPU s)",
            "our predict speed-up, wall (CPU s)",
        ],
        rows,
    )
    print(table)
    print(
        f"raw results: {H.save('perf_multimodal', {'args': vars(args), 'runs': runs})}"
    )


def _speed_up(ours, theirs, step):
    wall = H.ratio(ours, theirs, f"{step}_samples_per_s")
    cpu = H.ratio(ours, theirs, f"{step}_samples_per_cpu_s")
    return f"{wall:.2f}x ({cpu:.2f}x)"


if __name__ == "__main__":
    main()
