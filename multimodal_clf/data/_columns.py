"""Coercion of user input (X and y) into aligned, checked columns."""

import logging
import numbers
import warnings
from collections.abc import Mapping, Set

import numpy as np
from scipy import sparse
from sklearn.exceptions import DataConversionWarning

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
    invalid = list(_unicode_problems(texts))
    if invalid:
        raise ValueError(
            f"{len(invalid)} entries of column {column!r} are not valid Unicode:\n"
            f"{_list_rows(invalid)}\n"
            "A lone surrogate is half of a character, usually left by decoding bytes "
            "with errors='surrogateescape'; decode the source with errors='replace' "
            "or remove those characters."
        )
    return texts


def _unicode_problems(texts):
    """Yield ``(row, reason)`` for texts holding lone surrogates (not encodable)."""
    for row, text in enumerate(texts):
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as error:
            char = ord(text[error.start])
            yield row, f"lone surrogate U+{char:04X} at character {error.start}"


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
    if sparse.issparse(X):
        raise TypeError(
            f"X is a sparse {type(X).__name__}; sparse input is not supported. Pass "
            "the texts (and images) themselves: a list of rows or a DataFrame."
        )
    if isinstance(X, Mapping):
        raise TypeError(
            "X is a dict; pass a list of row dicts, or a DataFrame built from the "
            "dict of columns, for example pandas.DataFrame(X)."
        )
    if type(X).__module__.startswith("PIL."):
        raise TypeError(
            "X is a single image; pass a list of images (or of (text, image) "
            "pairs), for example [image] rather than image."
        )
    if isinstance(X, Set):
        raise TypeError(
            f"X is a {type(X).__name__}, which has no order, so predictions could "
            "not be matched to rows; pass a list."
        )
    if not isinstance(X, (list, tuple, np.ndarray)) and hasattr(X, "__array__"):
        X = np.asarray(X)
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


def split_columns(
    X, *, modalities, text_column="text", image_column="image", pairs=True
):
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
    pairs : bool, default=True
        Whether rows may be ``(text, image)`` pairs. A text-only estimator passes
        False, so that 2-item rows are refused rather than silently cut to their
        first item.

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
        duplicated = sorted({str(c) for c in X.columns[X.columns.duplicated()]})
        if duplicated:
            raise ValueError(
                f"X has several columns named {', '.join(map(repr, duplicated))}; "
                "rename or drop the duplicates."
            )
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
    if not pairs and rows and all(is_pair):
        raise ValueError(
            "every row of X is a 2-item sequence, but this estimator reads one text "
            "per row. Pass a list of strings, or a DataFrame with a "
            f"{text_column!r} column; for (text, image) pairs use "
            "MultimodalClassifier."
        )
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
    missing = [
        (row, f"no key {key!r}") for row, value in enumerate(rows) if key not in value
    ]
    if missing:
        raise ValueError(
            f"{len(missing)} rows of X have no key {key!r} (set by {parameter}):\n"
            f"{_list_rows(missing)}\nAdd the key to every row or pass "
            f"{parameter}=<key>."
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

    Raises
    ------
    ValueError
        For a missing y, a y of the wrong shape or length, missing, non-finite,
        continuous, complex or mixed-type labels, or fewer than 2 classes; row
        problems list the rows.
    """
    if y is None:
        raise ValueError(
            "fit requires y to be passed, but the target y is None. Pass one class "
            "label per row of X: fit(X, y)."
        )
    labels = _label_array(y)
    if len(labels) != n_rows:
        raise ValueError(
            f"X and y have different lengths: X has {n_rows} rows, y has "
            f"{len(labels)} labels. Pass one label per row."
        )
    labels = _check_label_types(labels)
    classes, encoded = np.unique(labels, return_inverse=True)
    if len(classes) < 2:
        raise ValueError(
            f"y holds {len(classes)} class ({classes.tolist()!r}); a classifier "
            "needs at least 2 classes. Check that y holds the labels of every class."
        )
    return encoded.astype(np.int64), classes


def _label_array(y):
    """y as a 1-d array; lists become object arrays so that types are kept."""
    labels = y.to_numpy() if hasattr(y, "to_numpy") else y
    if isinstance(labels, (list, tuple)):
        labels = np.asarray(labels, dtype=object)
    labels = np.asarray(labels)
    if labels.ndim == 2 and labels.shape[1] == 1:
        warnings.warn(
            "A column-vector y was passed when a 1d array was expected: y of shape "
            f"{labels.shape} was flattened to shape ({labels.shape[0]},). Pass a 1-d "
            "y, for example y.ravel().",
            DataConversionWarning,
            stacklevel=4,
        )
        labels = labels.ravel()
    if labels.ndim != 1:
        raise ValueError(
            f"y must be 1-d (one label per row); got shape {labels.shape}. "
            "Multi-output classification is not supported."
        )
    return labels


def _check_numeric_labels(labels):
    """Refuse complex, non-finite and non-integer (continuous) numeric labels."""
    if labels.dtype.kind == "c":
        raise ValueError(
            "y holds complex numbers; Complex data not supported as class labels. "
            "Pass strings or real numbers."
        )
    if labels.dtype.kind != "f":
        return labels
    bad = np.flatnonzero(~np.isfinite(labels))
    if bad.size:
        problems = [(row, repr(labels[row].item())) for row in bad.tolist()]
        raise ValueError(
            f"y holds {bad.size} NaN or infinite labels:\n{_list_rows(problems)}\n"
            "Drop those rows or fill their labels."
        )
    fractional = np.flatnonzero(labels != np.round(labels))
    if fractional.size:
        problems = [(row, repr(labels[row].item())) for row in fractional.tolist()]
        raise ValueError(
            "Unknown label type: continuous. y holds numbers with a fractional "
            f"part, which are not class labels:\n{_list_rows(problems)}\n"
            "This classifier needs classes: bin the values (for example with "
            "numpy.digitize) or use whole numbers or strings."
        )
    return labels


def _check_label_types(labels):
    if labels.dtype.kind != "O":
        return _check_numeric_labels(labels)
    missing = [
        (row, "missing label (None or NaN)")
        for row, value in enumerate(labels)
        if _is_missing(value)
    ]
    if missing:
        raise ValueError(
            f"y holds {len(missing)} missing labels:\n{_list_rows(missing)}\n"
            "Drop those rows or fill their labels."
        )
    if all(isinstance(value, str) for value in labels):
        return labels.astype(str)
    if all(isinstance(value, (bool, np.bool_)) for value in labels):
        return labels.astype(bool)
    is_number = [
        isinstance(value, numbers.Number) and not isinstance(value, (bool, np.bool_))
        for value in labels
    ]
    if all(is_number):
        return _check_numeric_labels(np.asarray(labels.tolist()))
    first = {}
    for row, value in enumerate(labels):
        name = type(value).__name__
        first.setdefault(name, (row, f"{name} {value!r:.40}"))
    examples = _list_rows(sorted(first.values()))
    has_str = any(isinstance(value, str) for value in labels)
    if len(first) == 1 or not (has_str or any(is_number)):
        raise ValueError(
            f"y holds labels of type {', '.join(sorted(first))}:\n{examples}\n"
            "Labels must be strings or numbers; convert them, for example "
            "y = [str(label) for label in y]."
        )
    raise ValueError(
        f"y mixes label types {sorted(first)}:\n{examples}\nLabels must be all "
        "strings or all numbers. Convert them to one type, for example "
        "y = [str(label) for label in y]."
    )


def _is_known(value, known):
    try:
        return not _is_missing(value) and value in known
    except TypeError:  # unhashable, such as a list
        return False


def check_unseen_labels(y, classes):
    """Check labels given to ``score`` against those seen during fit.

    Returns
    -------
    labels : ndarray
        y as a 1-d array.

    Raises
    ------
    ValueError
        Listing the rows whose label was not seen during fit.
    """
    if y is None:
        raise ValueError(
            "score requires y to be passed, but the target y is None. Pass the "
            "true label of every row of X: score(X, y)."
        )
    labels = _label_array(y)
    known = set(classes.tolist())
    unseen = [
        (row, f"{value!r:.40}")
        for row, value in enumerate(labels.tolist())
        if not _is_known(value, known)
    ]
    if unseen:
        known_text = {str(c) for c in known}
        retype = all(str(value) in known_text for value in labels.tolist())
        hint = (
            " These labels match the known ones as text: pass y with the type "
            f"the classifier was fitted on ({type(classes.tolist()[0]).__name__})."
            if retype
            else ""
        )
        raise ValueError(
            f"y holds {len(unseen)} labels not seen during fit:\n"
            f"{_list_rows(unseen)}\nThe classifier knows {classes.tolist()!r}; "
            f"drop those rows, or refit with them.{hint}"
        )
    # A list gives an object array, which sklearn's metrics call "unknown"
    # targets: convert it to the labels' own dtype, as fit does.
    return _check_label_types(labels)
