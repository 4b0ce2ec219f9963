"""Coercion of user input (X and y) into aligned, checked columns."""

import logging
import numbers
from collections.abc import Mapping

import numpy as np

logger = logging.getLogger(__name__)

_MAX_LISTED = 10


def _is_missing(value):
    """Return True for None and the float / pandas missing markers."""
    if value is None:
        return True
    if isinstance(value, float) and value != value:
        return True
    return type(value).__name__ in ("NAType", "NaTType")


def _list_rows(problems):
    """Format ``[(row, reason), ...]`` as indented lines, at most a few of them."""
    lines = [f"  row {row}: {reason}" for row, reason in problems[:_MAX_LISTED]]
    if len(problems) > _MAX_LISTED:
        lines.append(f"  ... and {len(problems) - _MAX_LISTED} more rows")
    return "\n".join(lines)


def check_texts(values, *, column="text"):
    """Check that every entry of a text column is a string.

    Parameters
    ----------
    values : sequence
        The text column, one entry per row.
    column : str, default="text"
        The column's name, used in the error message.

    Returns
    -------
    texts : list of str

    Raises
    ------
    ValueError
        When any entry is not a string; the message lists the row positions.
    """
    texts = list(values)
    problems = []
    for row, value in enumerate(texts):
        if isinstance(value, str):
            continue
        if _is_missing(value):
            reason = "missing value (None or NaN)"
        else:
            reason = f"{type(value).__name__} {value!r:.40}"
        problems.append((row, reason))
    if problems:
        raise ValueError(
            f"{len(problems)} entries of column {column!r} are not strings:\n"
            f"{_list_rows(problems)}\n"
            "Every text must be a str: fill missing texts (for example with '') or "
            "drop those rows."
        )
    return texts


def _frame_column(X, name, parameter):
    if name not in X.columns:
        raise ValueError(
            f"X has no column {name!r} (set by {parameter}); its columns are "
            f"{list(map(str, X.columns))}. Pass {parameter}=<the column's name>."
        )
    return X[name].tolist()


def _as_rows(X):
    """Return X as a list of rows, refusing types that cannot be rows."""
    if isinstance(X, (str, bytes)):
        raise TypeError(
            "X is a single string; pass a list of texts (or of rows), for example "
            "[text] rather than text."
        )
    if isinstance(X, np.ndarray):
        if X.ndim == 0:
            raise TypeError("X is a 0-d array; pass a list or array of rows.")
        if X.ndim == 1:
            return list(X)
        return [tuple(row) for row in X]
    try:
        return list(X)
    except TypeError:
        raise TypeError(
            f"X must be a list, array, pandas Series or DataFrame of rows; got "
            f"{type(X).__name__}."
        ) from None


def split_columns(X, *, modalities, text_column="text", image_column="image"):
    """Split X into one list per modality, all of the same length.

    Parameters
    ----------
    X : DataFrame, Series, list or array
        A DataFrame with the named columns; a list of dicts with those keys; a list
        of ``(text, image)`` pairs; or, when a single modality is used, a flat list
        of texts or of images. Images alone may also come as one array of stacked
        images, ``(N, H, W)`` or ``(N, H, W, C)``.
    modalities : tuple of {"text", "image"}
        The columns to extract.
    text_column, image_column : str
        Column or key names.

    Returns
    -------
    columns : dict
        ``{"text": [...], "image": [...]}`` restricted to ``modalities``.
    """
    names = {
        "text": (text_column, "text_column"),
        "image": (image_column, "image_column"),
    }
    if hasattr(X, "columns") and hasattr(X, "iloc"):
        return {m: _frame_column(X, *names[m]) for m in modalities}
    if hasattr(X, "to_list") and hasattr(X, "index"):
        X = X.to_list()
    if (
        isinstance(X, np.ndarray)
        and tuple(modalities) == ("image",)
        and X.ndim in (3, 4)
        and X.dtype != object
    ):
        # A stack of images, (N, H, W) or (N, H, W, C): one image per row. Read
        # as rows of tuples instead, an image of height 2 would pass for a
        # (text, image) pair.
        return {"image": list(X)}
    rows = _as_rows(X)
    if rows and all(isinstance(row, Mapping) for row in rows):
        return {m: _dict_column(rows, *names[m]) for m in modalities}
    is_pair = [isinstance(row, (tuple, list)) and len(row) == 2 for row in rows]
    if len(modalities) == 1 and not (rows and all(is_pair)):
        modality = modalities[0]
        if getattr(X, "ndim", 1) > 1:
            raise ValueError(
                f"X is a {X.ndim}-d array of shape {X.shape}; pass a 1-d list of "
                f"{'texts' if modality == 'text' else 'images'} or a DataFrame with "
                f"a {names[modality][0]!r} column."
            )
        return {modality: rows}
    bad = [
        (row, f"{type(value).__name__} is not a (text, image) pair")
        for row, value in enumerate(rows)
        if not is_pair[row]
    ]
    if bad:
        raise ValueError(
            f"{len(bad)} rows of X are neither dicts nor (text, image) pairs:\n"
            f"{_list_rows(bad)}\nPass a DataFrame with columns {text_column!r} and "
            f"{image_column!r}, a list of dicts with those keys, or a list of "
            "(text, image) pairs."
        )
    texts, images = zip(*rows) if rows else ((), ())
    found = {"text": list(texts), "image": list(images)}
    return {m: found[m] for m in modalities}


def _dict_column(rows, key, parameter):
    missing = [row for row, value in enumerate(rows) if key not in value]
    if missing:
        listed = ", ".join(map(str, missing[:_MAX_LISTED]))
        raise ValueError(
            f"{len(missing)} rows of X have no key {key!r} (set by {parameter}): "
            f"rows {listed}. Add the key to every row or pass {parameter}=<key>."
        )
    return [value[key] for value in rows]


def check_labels(y, n_rows):
    """Check labels and encode them as integers.

    Parameters
    ----------
    y : array-like of shape (n_rows,)
        Class labels: all numbers or all strings.
    n_rows : int
        The number of rows in X.

    Returns
    -------
    y_encoded : ndarray of int64
    classes : ndarray
        The sorted unique labels, as :func:`numpy.unique` gives them.
    """
    if y is None:
        raise ValueError(
            "y is None: this classifier needs labels; pass y to fit(X, y)."
        )
    labels = y.to_numpy() if hasattr(y, "to_numpy") else y
    labels = np.asarray(labels, dtype=object) if isinstance(labels, list) else labels
    labels = np.asarray(labels)
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels.ravel()
    if labels.ndim != 1:
        raise ValueError(
            f"y must be 1-d (one label per row); got shape {labels.shape}. "
            "Multi-output classification is not supported."
        )
    if len(labels) != n_rows:
        raise ValueError(
            f"X and y have different lengths: X has {n_rows} rows, y has "
            f"{len(labels)} labels. Pass one label per row."
        )
    labels = _check_label_types(labels)
    classes, encoded = np.unique(labels, return_inverse=True)
    if len(classes) < 2:
        raise ValueError(
            f"Classifier needs at least 2 classes in y; got {len(classes)} "
            f"({list(classes)!r}). Check that y holds the labels of every class."
        )
    return encoded.astype(np.int64), classes


def _check_label_types(labels):
    if labels.dtype.kind in "fc":
        bad = np.flatnonzero(~np.isfinite(labels))
        if bad.size:
            raise ValueError(
                "y contains NaN or infinite labels at rows "
                f"{bad[:_MAX_LISTED].tolist()}. Drop those rows or fill their labels."
            )
        return labels
    if labels.dtype.kind != "O":
        return labels
    missing = [row for row, value in enumerate(labels) if _is_missing(value)]
    if missing:
        raise ValueError(
            f"y contains missing labels (None or NaN) at rows {missing[:_MAX_LISTED]}"
            ". Drop those rows or fill their labels."
        )
    is_str = [isinstance(value, str) for value in labels]
    if all(is_str):
        return labels.astype(str)
    is_num = [
        isinstance(value, numbers.Number) and not isinstance(value, bool)
        for value in labels
    ]
    if all(is_num) or all(isinstance(value, (bool, np.bool_)) for value in labels):
        return np.asarray(labels.tolist())
    kinds = sorted({type(value).__name__ for value in labels})
    raise ValueError(
        f"y mixes label types {kinds}; labels must be all strings or all numbers. "
        "Convert them to one type, for example y = [str(label) for label in y]."
    )


def check_unseen_labels(y, classes):
    """Raise a clear error for labels that were not seen during fit."""
    labels = np.asarray(y.to_numpy() if hasattr(y, "to_numpy") else y, dtype=object)
    known = set(classes.tolist())
    unseen = sorted({repr(v) for v in labels.ravel().tolist() if v not in known})
    if unseen:
        raise ValueError(
            f"y contains labels not seen during fit: {', '.join(unseen[:_MAX_LISTED])}"
            f". The classifier knows {classes.tolist()!r}."
        )
