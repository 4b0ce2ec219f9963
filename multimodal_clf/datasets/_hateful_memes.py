"""Loader for the Facebook Hateful Memes challenge data."""

import logging

import pandas as pd

from multimodal_clf.datasets._common import (
    _as_folder,
    _check_images_exist,
    _check_split,
    _files_in,
    _read_jsonl,
    _require_keys,
    _require_strings,
)

logger = logging.getLogger(__name__)

_OFFICIAL_SPLITS = ("train", "dev_seen", "dev_unseen", "test_seen", "test_unseen")
# Names used by the first release of the challenge data.
_LEGACY_SPLITS = ("dev", "test")


def load_hateful_memes(root, split="train"):
    """Load one split of the Hateful Memes data set.

    Reads the layout the data set is published in::

        root/
          train.jsonl  dev_seen.jsonl  dev_unseen.jsonl
          test_seen.jsonl  test_unseen.jsonl
          img/42953.png ...

    Each line of a ``.jsonl`` file is one JSON object such as
    ``{"id": 42953, "img": "img/42953.png", "label": 0, "text": "..."}``, where
    ``img`` is relative to ``root``. The first release named its files
    ``dev.jsonl`` and ``test.jsonl``; those names are accepted when the files exist.

    Parameters
    ----------
    root : str or path-like
        The folder that holds the ``.jsonl`` files and ``img/``.
    split : {"train", "dev_seen", "dev_unseen", "test_seen", "test_unseen", \
"dev", "test"}, default="train"
        Which file to read: ``root/{split}.jsonl``.

    Returns
    -------
    pandas.DataFrame
        One row per line, in file order, with columns ``text`` (str), ``image``
        (absolute path, str), ``label`` (nullable integer, 1 = hateful) and ``id``.
        Test files without labels give a ``label`` column of ``<NA>``.

    Raises
    ------
    ValueError
        If ``split`` is unknown, a line is not valid JSON, or a line lacks ``id``,
        ``img`` or ``text``; the message names the file and line.
    FileNotFoundError
        If ``root``, the split's file or any image file does not exist.

    See Also
    --------
    load_csv : Load any CSV of texts, images and labels.

    Examples
    --------
    >>> from multimodal_clf.datasets import load_hateful_memes
    >>> train = load_hateful_memes("data/hateful_memes")  # doctest: +SKIP
    >>> list(train.columns)  # doctest: +SKIP
    ['text', 'image', 'label', 'id']
    >>> test = load_hateful_memes("data/hateful_memes", "test_unseen")  # doctest: +SKIP
    """
    folder = _as_folder(
        root,
        what="Hateful Memes",
        hint="Pass the folder that holds train.jsonl and img/.",
    )
    path = folder / f"{split}.jsonl"
    found = _files_in(folder, "*.jsonl")
    _check_split(
        split,
        _OFFICIAL_SPLITS + _LEGACY_SPLITS,
        loader="load_hateful_memes",
        found=found,
    )
    if not path.is_file():
        raise FileNotFoundError(
            f"Hateful Memes file not found: {path}. Files found in {folder}: "
            f"{found}. Pick a split whose file exists."
        )

    rows, labels, places = [], [], []
    for number, record in _read_jsonl(path):
        where = f"line {number}"
        _require_keys(record, ("id", "img", "text"), path=path, where=where)
        _require_strings(record, ("img", "text"), path=path, where=where)
        rows.append(
            {
                "text": record["text"],
                "image": str(folder / record["img"]),
                "id": record["id"],
            }
        )
        labels.append(record.get("label"))
        places.append(where)
    frame = pd.DataFrame(rows, columns=["text", "image", "id"])
    frame.insert(2, "label", _labels(labels, places, path=path))

    _check_images_exist(
        frame["image"],
        places,
        source=path,
        hint=f"Check that {folder} is the folder that holds img/.",
    )
    logger.info("Loaded %d rows from %s.", len(frame), path)
    return frame


def _labels(labels, places, *, path):
    """Return the labels as nullable integers; all present or all absent."""
    for place, label in zip(places, labels):
        if label is not None and not (_is_int(label) and label in (0, 1)):
            raise ValueError(
                f"{path}, {place}: 'label' must be an integer (0 or 1), got {label!r}."
            )

    absent = [label is None for label in labels]
    if all(absent):
        logger.info("%s has no labels; the label column holds <NA>.", path)
    elif any(absent):
        raise ValueError(
            f"{path}, {places[absent.index(True)]}: no 'label', though other lines "
            "have one. Give every line a label, or none (as in the test files)."
        )
    return pd.array(labels, dtype="Int64")


def _is_int(value):
    """Whether a JSON value is an integer (JSON ``true`` and ``false`` are not)."""
    return isinstance(value, int) and not isinstance(value, bool)
