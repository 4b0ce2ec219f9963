"""A grid search over head hyperparameters with and without the feature cache.

``MultimodalClassifier`` with the DINOv2 pair (MiniLM text + DINOv2-small image)
and ``freeze_backbone=True``, in ``GridSearchCV`` over ``head_learning_rate`` x
``head_hidden_size`` (6 candidates) with ``cv=3`` and a refit: 19 fits. With
``cache_features=True`` each row's text and image features are computed once and
every later epoch, fold, candidate and the refit reuse them; with
``cache_features=False`` every fit computes them again. Both arms run in their
own process, interleaved; the scores in ``cv_results_`` must be identical.

Run from the repository root::

    PYTHONPATH=$PWD python benchmarks/perf_grid_cache.py --rows 96
"""

import argparse
from pathlib import Path

try:
    from benchmarks import _harness as H
except ImportError:  # run as a script
    import _harness as H

SCRIPT = Path(__file__).resolve()
GRID = {"head_learning_rate": [1e-3, 3e-3], "head_hidden_size": [0, 128, 256]}
SCORE_KEYS = ("split0_test_score", "split1_test_score", "split2_test_score")


def load_rows(config):
    """A stratified sample of clip-art training rows: (X, y)."""
    from multimodal_clf.datasets import load_clipart

    frame = load_clipart(config["data"])
    train = frame[frame["split"] == "train"]
    train = train.sample(n=min(config["rows"], len(train)), random_state=config["seed"])
    return train[["text", "image"]].reset_index(drop=True), train["label"].tolist()


def grid_search(config):
    import numpy as np
    import transformers.models.bert.modeling_bert  # noqa: F401
    import transformers.models.dinov2.modeling_dinov2  # noqa: F401
    from sklearn.model_selection import GridSearchCV

    import multimodal_clf
    from multimodal_clf import MultimodalClassifier

    X, y = load_rows(config)
    estimator = MultimodalClassifier(
        (H.minilm_path(), config["image_model"]),
        freeze_backbone=True,
        epochs=config["epochs"],
        batch_size=config["batch_size"],
        cache_features=config["cache"],
        random_state=config["seed"],
        device="cpu",
        verbose=0,
    )
    multimodal_clf.clear_feature_cache()
    search = GridSearchCV(estimator, GRID, cv=3)
    clock = H.Clock()
    search.fit(X, y)
    clock.stop()
    cache = multimodal_clf.feature_cache
    return {
        "grid_s": clock.wall,
        "grid_cpu_s": clock.cpu,
        "peak_rss_mib": H.peak_rss_mib(),
        "cache_hits": cache.hits,
        "cache_misses": cache.misses,
        "cache_mib": cache.nbytes / 2**20,
        "fits": len(search.cv_results_["params"]) * 3 + 1,
        "scores": {k: np.asarray(search.cv_results_[k]).tolist() for k in SCORE_KEYS},
        "params": [str(p) for p in search.cv_results_["params"]],
        "best_params": str(search.best_params_),
    }


WORKERS = {"grid": grid_search}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=96, help="clip-art rows")
    parser.add_argument("--epochs", type=int, default=5, help="epochs per fit")
    parser.add_argument("--batch-size", type=int, default=16)
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
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "image_model": args.image_model,
        "seed": args.seed,
    }
    contenders = {
        "cache_features=True": ("grid", {**base, "cache": True}),
        "cache_features=False": ("grid", {**base, "cache": False}),
    }
    runs = H.interleaved(
        SCRIPT,
        contenders,
        repeats=args.repeats,
        threads=args.threads,
        timeout=args.timeout,
    )
    cached, plain = runs["cache_features=True"], runs["cache_features=False"]
    identical = all(
        run["scores"] == reference["scores"] and run["params"] == reference["params"]
        for run in cached + plain
        for reference in plain[:1]
    )
    speed_up = H.ratio(plain, cached, "grid_s")
    cpu_speed_up = H.ratio(plain, cached, "grid_cpu_s")
    rows = [
        [
            name,
            results[0]["fits"],
            f"{H.median(results, 'grid_s'):.1f} ({H.spread(results, 'grid_s')})",
            f"{H.median(results, 'grid_cpu_s'):.1f}",
            f"{H.median(results, 'peak_rss_mib'):.0f}",
            f"{results[0]['cache_hits']} / {results[0]['cache_misses']}",
            f"{results[0]['cache_mib']:.2f}",
        ]
        for name, results in runs.items()
    ]
    table = H.markdown_table(
        [
            "arm",
            "fits",
            "grid wall s (min-max)",
            "grid CPU s",
            "peak RSS MiB",
            "cache hits / misses",
            "cache MiB",
        ],
        rows,
    )
    table += (
        f"\n\nSpeed-up of the cache: {speed_up:.1f}x in wall time, "
        f"{cpu_speed_up:.1f}x in CPU time. cv_results_ scores identical "
        f"in every run of both arms: {identical}. Best: {cached[0]['best_params']}."
    )
    print(table)
    payload = {"args": vars(args), "runs": runs, "speed_up": speed_up}
    payload["cpu_speed_up"] = cpu_speed_up
    payload["identical_scores"] = identical
    print(f"raw results: {H.save('perf_grid_cache', payload)}")


if __name__ == "__main__":
    main()
