"""Loaders for the clipart data set and its bundled mini version."""

import logging
from pathlib import Path

import pandas as pd

from multimodal_clf.datasets._common import (
    _as_folder,
    _check_images_exist,
    _check_split,
    _existing_file,
)

logger = logging.getLogger(__name__)

_COLUMNS = ("id", "text", "image", "label", "split")
_SPLITS = ("train", "test", None)
_MINI_FOLDER = Path(__file__).resolve().parent / "data" / "clipart_mini"


def load_clipart(root, split=None):
    """Load the clipart data set: public-domain clip art, titles and 8 categories.

    Each item is a clip-art image from the Open Clip Art Library (Debian package
    ``openclipart-png``, public domain), its title cleaned from the file name,
    and the top-level category it was filed under as its label. The folder looks
    like::

        root/
          metadata.csv   id,text,image,label,subcategory,split
          images/00000.png ...
          README.md      how the set was made

    The ``subcategory`` column is dropped: it names a folder inside the label's
    folder, so it almost gives the label away and must not be used as a feature.

    Parameters
    ----------
    root : str or path-like
        The folder that holds ``metadata.csv`` and ``images/``.
    split : {"train", "test"} or None, default=None
        Keep only the rows of this split; ``None`` keeps all 2,013 rows (1,610
        train, 403 test).

    Returns
    -------
    pandas.DataFrame
        Columns ``text``, ``image`` (absolute path), ``label`` (one of 8
        categories), ``split`` and ``id`` (a zero-padded string such as
        ``"00042"``), in the order of ``metadata.csv``.

    Raises
    ------
    ValueError
        If ``split`` is not ``"train"``, ``"test"`` or None, or ``metadata.csv``
        lacks a column or has an empty cell.
    FileNotFoundError
        If ``root``, ``metadata.csv`` or any image file does not exist.

    See Also
    --------
    load_clipart_mini : 320 items of this set, shipped with the package.

    Examples
    --------
    >>> from multimodal_clf.datasets import load_clipart
    >>> train = load_clipart("data/clipart", split="train")  # doctest: +SKIP
    >>> train.shape  # doctest: +SKIP
    (1610, 5)
    """
    folder = _as_folder(
        root, what="Clipart", hint="Pass the folder that holds metadata.csv."
    )
    return _read_clipart(folder, split, loader="load_clipart")


def load_clipart_mini(split=None):
    """Load clipart-mini, a 320-item sample of the clipart set shipped with the package.

    Like scikit-learn's toy data sets, it needs no download: 40 items of each of
    the 8 categories (32 train and 8 test each, as in the full set), drawn at
    random with seed 0, with images shrunk so that their longer side is at most
    64 px. Each image keeps its original mode (RGBA, P, LA, RGB or L), so the
    set exercises transparency handling. The images are public domain (Debian
    package ``openclipart-png``); the ``README.md`` next to them says how the
    sample was drawn, and ``tools/make_clipart_mini.py`` rebuilds it.

    As in :func:`load_clipart`, the ``subcategory`` column is left out because it
    almost gives the label away.

    Parameters
    ----------
    split : {"train", "test"} or None, default=None
        Keep only the rows of this split (256 train, 64 test); ``None`` keeps
        all 320.

    Returns
    -------
    pandas.DataFrame
        Columns ``text``, ``image`` (absolute path inside the installed package),
        ``label``, ``split`` and ``id`` (the item's id in the full clipart set,
        a zero-padded string).

    See Also
    --------
    load_clipart : The full set, 2,013 items.

    Examples
    --------
    >>> from multimodal_clf.datasets import load_clipart_mini
    >>> frame = load_clipart_mini()
    >>> frame.shape
    (320, 5)
    >>> frame["label"].value_counts().unique().tolist()
    [40]
    >>> list(frame.columns)
    ['text', 'image', 'label', 'split', 'id']
    """
    return _read_clipart(_MINI_FOLDER, split, loader="load_clipart_mini")


def _read_clipart(folder, split, *, loader):
    """Read a clipart-style ``metadata.csv``, resolve images and filter a split."""
    _check_split(split, _SPLITS, loader=loader)
    path = _existing_file(
        folder / "metadata.csv",
        what="Clipart metadata",
        hint="The folder must hold metadata.csv and images/.",
    )
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)

    missing = [column for column in _COLUMNS if column not in frame.columns]
    if missing:
        raise ValueError(
            f"{path}: no column {', '.join(map(repr, missing))}. Columns present: "
            f"{', '.join(map(repr, frame.columns))}. Is this a clipart metadata file?"
        )
    empty = frame[list(_COLUMNS)].eq("").any(axis=1).to_numpy()
    if empty.any():
        # The header is line 1 and no cell spans lines, so row i is on line i + 2.
        raise ValueError(
            f"{path}, line {int(empty.argmax()) + 2}: empty cell. Every item needs "
            f"{', '.join(_COLUMNS)}."
        )

    if split is not None:
        frame = frame[frame["split"] == split].copy()
    frame["image"] = [str(folder / image) for image in frame["image"]]
    _check_images_exist(
        frame["image"],
        lambda: [f"line {i + 2}" for i in frame.index],
        source=path,
        hint=f"Check that {folder / 'images'} holds every image.",
    )
    frame = frame[["text", "image", "label", "split", "id"]].reset_index(drop=True)
    logger.info("Loaded %d clipart rows from %s.", len(frame), path)
    return frame
