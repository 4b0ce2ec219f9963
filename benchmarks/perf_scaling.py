"""Fit time per epoch and peak memory of TextClassifier at growing dataset sizes.

Each size runs in its own process. The time of every epoch is read from the
training engine (``Trainer.train_epoch``), so that loading the backbone is not
counted; per-row time should stay flat when time grows linearly with rows. Peak
resident memory should not grow with the rows beyond what is kept per row (the
token ids, and with ``--task frozen-pair`` the cached features).

Run from the repository root::

    PYTHONPATH=$PWD python benchmarks/perf_scaling.py --sizes 250,500,1000
"""

import argparse
from pathlib import Path

try:
    from benchmarks import _harness as H
except ImportError:  # run as a script
    import _harness as H

SCRIPT = Path(__file__).resolve()


def fit_size(config):
    import numpy as np

    import multimodal_clf
    from multimodal_clf import MultimodalClassifier, TextClassifier
    from multimodal_clf.data._batching import FeatureColumn, ImageColumn, TokenColumn
    from multimodal_clf.datasets import load_clipart
    from multimodal_clf.engine import Trainer

    frame = load_clipart(config["data"])
    train = frame[frame["split"] == "train"]
    # Sizes above the training split repeat its rows.
    picks = np.random.default_rng(config["seed"]).choice(
        len(train), config["rows"], replace=config["rows"] > len(train)
    )
    train = train.iloc[picks].reset_index(drop=True)

    epoch_times, epoch_cpu, held = [], [], {}
    original = Trainer.train_epoch

    def timed_epoch(trainer, data):
        held["bytes"] = sum(_column_bytes(c) for c in data.columns.values())
        clock = H.Clock()
        loss = original(trainer, data)
        epoch_times.append(clock.stop().wall)
        epoch_cpu.append(clock.cpu)
        return loss

    def _column_bytes(column):
        if isinstance(column, TokenColumn):
            return column.flat_ids.nbytes + column.lengths.nbytes
        if isinstance(column, FeatureColumn):
            return column.values.numel() * column.values.element_size()
        if isinstance(column, ImageColumn):
            return sum(p.numel() * p.element_size() for p in column.pixels)
        return 0

    Trainer.train_epoch = timed_epoch
    options = dict(
        epochs=config["epochs"],
        batch_size=config["batch_size"],
        random_state=config["seed"],
        device="cpu",
        verbose=0,
    )
    start_rss = H.rss_mib()
    if config["task"] == "text":
        clf = TextClassifier(H.minilm_path(), **options)
        clf.fit(train["text"].tolist(), train["label"].tolist())
    else:
        clf = MultimodalClassifier(
            (H.minilm_path(), str(H.DINOV2)), freeze_backbone=True, **options
        )
        clf.fit(train[["text", "image"]], train["label"])
    return {
        "epoch_s": float(np.median(epoch_times)),
        "ms_per_row": 1000 * float(np.median(epoch_times)) / config["rows"],
        "cpu_ms_per_row": 1000 * float(np.median(epoch_cpu)) / config["rows"],
        "peak_rss_mib": H.peak_rss_mib(),
        "start_rss_mib": start_rss,
        "held_mib": held.get("bytes", 0) / 2**20,
        "cache_mib": multimodal_clf.feature_cache.nbytes / 2**20,
    }


WORKERS = {"fit": fit_size}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="250,500,1000", help="comma-separated")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--task", choices=["text", "frozen-pair"], default="text")
    return H.common_arguments(parser).parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if args.worker:
        H.worker_main(WORKERS, args)
        return
    print(f"machine: {H.machine()}")
    sizes = [int(s) for s in args.sizes.split(",")]
    contenders = {
        f"{n} rows": (
            "fit",
            {
                "data": args.data,
                "rows": n,
                "epochs": args.epochs,
                "batch_size": args.batch_size,
                "task": args.task,
                "seed": args.seed,
            },
        )
        for n in sizes
    }
    runs = H.interleaved(
        SCRIPT,
        contenders,
        repeats=args.repeats,
        threads=args.threads,
        timeout=args.timeout,
    )
    base_rss = H.median(runs[f"{sizes[0]} rows"], "peak_rss_mib")
    rows = [
        [
            name,
            f"{H.median(results, 'epoch_s'):.2f} ({H.spread(results, 'epoch_s')})",
            f"{H.median(results, 'ms_per_row'):.1f}",
            f"{H.median(results, 'cpu_ms_per_row'):.1f}",
            f"{H.median(results, 'peak_rss_mib'):.0f}",
            f"{H.median(results, 'peak_rss_mib') - base_rss:+.0f}",
            f"{H.median(results, 'held_mib'):.3f}",
            f"{H.median(results, 'cache_mib'):.3f}",
        ]
        for name, results in runs.items()
    ]
    table = H.markdown_table(
        [
            "size",
            "s per epoch (min-max)",
            "ms per row",
            "CPU ms per row",
            "peak RSS MiB",
            f"vs {sizes[0]} rows",
            "encoded rows MiB",
            "feature cache MiB",
        ],
        rows,
    )
    spreads = []
    for key in ("ms_per_row", "cpu_ms_per_row"):
        per_row = [H.median(results, key) for results in runs.values()]
        spreads.append(max(per_row) / min(per_row))
    table += (
        "\n\nPer-row time, largest / smallest over the sizes: "
        f"{spreads[0]:.2f} (wall), {spreads[1]:.2f} (CPU); 1.00 is perfectly linear."
    )
    print(table)
    print(f"raw results: {H.save('perf_scaling', {'args': vars(args), 'runs': runs})}")


if __name__ == "__main__":
    main()
