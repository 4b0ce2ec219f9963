"""Does the image help on the clip-art set? MiniLM + DINOv2-small, every variant.

Fits, on the clip-art train split, with the same backbone pair and preprocessing:
text-only, image-only, and fused with each fusion head; reports test accuracy,
macro-F1, train time and peak memory in one table. The DINOv2 tower stays frozen (its
features are computed once and shared through the feature cache); MiniLM is
fine-tuned except in the image-only run.

Run from the repository root::

    python benchmarks/multimodal_clipart.py [--epochs 5] [--out results.json]
"""

import argparse
import json

from _harness import DINOV2, clipart_splits, minilm_path
from sklearn.metrics import accuracy_score, f1_score

from multimodal_clf import MultimodalClassifier
from multimodal_clf.research import measure


def variants():
    """(name, parameters) of every run."""
    yield "image only", {"modalities": ("image",)}
    yield "text only", {"modalities": ("text",)}
    for fusion in ("concat", "late", "product"):
        yield f"fused ({fusion})", {"fusion": fusion}
    yield "fused (concat, no modality dropout)", {"modality_dropout": 0.0}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--learning-rate", type=float, default=1e-4)
    parser.add_argument("--head-learning-rate", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="write the results as JSON here")
    parser.add_argument(
        "--only",
        action="append",
        default=None,
        help="run only the variant of this name, e.g. 'fused (late)' (repeatable)",
    )
    args = parser.parse_args()
    chosen = [
        (name, params)
        for name, params in variants()
        if args.only is None or name in args.only
    ]
    if not chosen:
        names = ", ".join(repr(name) for name, _ in variants())
        parser.error(f"--only names no variant; the variants are {names}")

    train, test = clipart_splits()
    backbone = (minilm_path(), str(DINOV2))
    rows = []
    for name, params in chosen:
        clf = MultimodalClassifier(
            backbone,
            freeze="image",
            epochs=args.epochs,
            learning_rate=args.learning_rate,
            head_learning_rate=args.head_learning_rate,
            random_state=args.seed,
            verbose=0,
            **params,
        )
        run = measure(clf.fit, train, train["label"])
        predicted = clf.predict(test)
        rows.append(
            {
                "model": name,
                "accuracy": accuracy_score(test["label"], predicted),
                "macro_f1": f1_score(test["label"], predicted, average="macro"),
                "fit_seconds": run.wall_seconds,
                "peak_memory_mb": run.peak_memory_bytes / 2**20,
                "memory_increase_mb": run.memory_increase_bytes / 2**20,
            }
        )
        print(
            f"{name:<36} acc {rows[-1]['accuracy']:.3f}  "
            f"F1 {rows[-1]['macro_f1']:.3f}  {run.wall_seconds:6.1f} s",
            flush=True,
        )

    print(
        f"\nclip-art: {len(train)} train rows, {len(test)} test rows; "
        f"{args.epochs} epochs, DINOv2 frozen (features cached)"
    )
    print("| model | accuracy | macro-F1 | fit s | peak RSS MB | RSS increase MB |")
    print("|---|---:|---:|---:|---:|---:|")
    for row in rows:
        print(
            f"| {row['model']} | {row['accuracy']:.3f} | {row['macro_f1']:.3f} | "
            f"{row['fit_seconds']:.0f} | {row['peak_memory_mb']:.0f} | "
            f"{row['memory_increase_mb']:.0f} |"
        )
    if args.out:
        with open(args.out, "w") as handle:
            json.dump({"args": vars(args), "results": rows}, handle, indent=2)


if __name__ == "__main__":
    main()
