"""Loader for any CSV file of texts, image paths and labels."""

import csv
import logging
import os
from pathlib import Path

import pandas as pd

from multimodal_clf.datasets._common import (
    _as_folder,
    _check_images_exist,
    _existing_file,
    _listing,
)

logger = logging.getLogger(__name__)


def load_csv(
    path,
    *,
    text_column="text",
    image_column="image",
    label_column="label",
    image_root=None,
):
    """Load a CSV file of texts, image paths and labels.

    The named columns are renamed to ``text``, ``image`` and ``label``; every other
    column is kept as it is. Only empty cells count as missing: words such as
    ``"NA"`` or ``"null"`` stay text.

    Parameters
    ----------
    path : str or path-like
        The CSV file. Its first line names the columns.
    text_column : str, default="text"
        The column that holds the texts.
    image_column : str or None, default="image"
        The column that holds image paths, absolute or relative to ``image_root``.
        ``None`` for a text-only file: the result then has no ``image`` column.
    label_column : str or None, default="label"
        The column that holds the labels. ``None`` for a file without labels,
        such as data to predict: the result then has no ``label`` column.
    image_root : str or path-like, default=None
        The folder relative image paths start from; by default the CSV's folder.

    Returns
    -------
    pandas.DataFrame
        One row per data line, with columns ``text``, ``image`` (absolute path)
        and ``label`` first, then the file's other columns in their order.
        Cells are kept as the text they are (an id ``"00023"`` stays a string);
        the label column is numeric when every label is a number.

    Raises
    ------
    ValueError
        If a named column is missing (the message lists the columns present), a
        column would be overwritten by the renaming, or a text, image or label
        cell is empty (the message names the lines).
    FileNotFoundError
        If the CSV, ``image_root`` or any image file does not exist.

    Notes
    -----
    Line numbers in messages count the header as line 1; a cell that spans
    several lines is counted from the line it starts on.

    Examples
    --------
    >>> from multimodal_clf.datasets import load_csv
    >>> frame = load_csv(
    ...     "posts.csv", text_column="caption", image_column="photo"
    ... )  # doctest: +SKIP
    >>> reviews = load_csv("reviews.csv", image_column=None)  # doctest: +SKIP
    """
    path = _existing_file(
        Path(os.fspath(path)).expanduser().absolute(),
        what="CSV file",
        hint="Check the path.",
    )
    # Every cell is read as the text it is, so that ids such as "00023" survive;
    # only the label column becomes numeric, when all of it is.
    frame = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])
    roles = {"text": text_column, "image": image_column, "label": label_column}
    roles = {role: column for role, column in roles.items() if column is not None}
    _check_columns(frame, roles, path)
    if label_column is not None:
        try:
            frame[label_column] = pd.to_numeric(frame[label_column])
        except (TypeError, ValueError):
            pass

    frame = frame.rename(columns={column: role for role, column in roles.items()})
    frame = frame[[*roles, *(c for c in frame.columns if c not in roles)]]
    _check_filled(frame, list(roles), roles, path)

    if "image" in frame:
        folder = path.parent if image_root is None else image_root
        folder = _as_folder(
            folder,
            what="Image root",
            hint="image_root must be the folder relative image paths start from.",
        )
        frame["image"] = [str(folder / image) for image in frame["image"].astype(str)]
        _check_images_exist(
            frame["image"],
            lambda: [f"line {n}" for n in _line_numbers(path, len(frame))],
            source=path,
            hint=f"Relative paths start from {folder}; pass image_root= to change it.",
        )
    logger.info("Loaded %d rows from %s.", len(frame), path)
    return frame


def _check_columns(frame, roles, path):
    """Raise ``ValueError`` for missing columns, or columns renaming would hide."""
    present = ", ".join(map(repr, frame.columns))
    missing = [
        f"{column!r} ({role}_column)"
        for role, column in roles.items()
        if column not in frame.columns
    ]
    if missing:
        raise ValueError(
            f"{path}: no column {', '.join(missing)}. Columns present: {present}. "
            "Pass the right name as text_column=, image_column= or label_column="
            " (None for image or label if the file has none)."
        )

    clashes = [
        role for role, column in roles.items() if role != column and role in frame
    ]
    if clashes:
        raise ValueError(
            f"{path}: column(s) {', '.join(map(repr, clashes))} would be overwritten "
            f"when renaming {', '.join(repr(roles[r]) for r in clashes)}. Rename or "
            "drop them in the file first."
        )


def _check_filled(frame, columns, roles, path):
    """Raise ``ValueError`` naming the lines where one of ``columns`` is empty."""
    empty = frame[columns].isna().to_numpy()
    if not empty.any():
        return
    lines = _line_numbers(path, len(frame))
    bad = [
        f"line {lines[row]}: {roles[columns[col]]!r}"
        for row, col in zip(*empty.nonzero())
    ]
    raise ValueError(
        f"{path}: {len(bad)} empty cell(s) where a value is needed:\n"
        f"{_listing(bad, len(bad))}\nFill them in, or drop those rows."
    )


def _line_numbers(path, n_rows):
    """The line each data row starts on, counting the header as line 1."""
    starts = []
    with open(path, encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle)
        line = 1
        for record in reader:
            if record:
                starts.append(line)
            line = reader.line_num + 1
    # The first record is the header.
    starts = starts[1:]
    if len(starts) != n_rows:
        # The csv module and pandas disagree (an unusual dialect): count rows.
        return list(range(2, n_rows + 2))
    return starts
