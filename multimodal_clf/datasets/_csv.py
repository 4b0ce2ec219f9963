"""Loader for any CSV file of texts, image paths and labels."""

import csv
import logging
import os
import warnings
from pathlib import Path

import pandas as pd

from multimodal_clf.data import check_image_value
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
        If the file is empty, has no data rows or is not UTF-8 CSV, a row holds
        more cells than the header names, a named column is missing (the
        message lists the columns present), a column would be overwritten by the
        renaming, a text, image or label cell is empty, or an image cell is a
        URL (the messages name the file and the lines).
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
    frame = _read(path)
    roles = {"text": text_column, "image": image_column, "label": label_column}
    roles = {role: column for role, column in roles.items() if column is not None}
    _check_columns(frame, roles, path)
    if label_column is not None:
        frame[label_column] = _numeric_labels(frame[label_column])

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
        _check_image_cells(frame["image"], path)
        frame["image"] = [str(folder / image) for image in frame["image"].astype(str)]
        _check_images_exist(
            frame["image"],
            lambda: [f"line {n}" for n in _line_numbers(path, len(frame))],
            source=path,
            hint=(
                f"Relative paths start from {folder}; set image_root= "
                "(--image-root on the command line) to change it."
            ),
        )
    logger.info("Loaded %d rows from %s.", len(frame), path)
    return frame


def _numeric_labels(labels):
    """The label column as numbers when all of it is, and no two labels merge.

    Distinct texts such as ``"01"`` and ``"1"``, or ``"1"`` and ``"1.0"``, are
    different classes in the file; as numbers they would be one, so such a
    column stays text.
    """
    try:
        numbers = pd.to_numeric(labels)
    except (TypeError, ValueError):
        return labels
    if numbers.nunique() != labels.nunique():
        logger.info(
            "Label column %r kept as text: as numbers, some of its distinct labels "
            "would become one class.",
            labels.name,
        )
        return labels
    return numbers


def _read(path):
    """Read every cell of ``path`` as text; refuse a file that is not a CSV table."""
    try:
        # Every cell is read as the text it is, so that ids such as "00023"
        # survive; only the label column becomes numeric, when all of it is.
        # index_col=False keeps pandas from turning the first cells of rows
        # longer than the header into an index, which would shift every column.
        with warnings.catch_warnings():
            warnings.simplefilter("error", pd.errors.ParserWarning)
            frame = pd.read_csv(
                path,
                dtype=str,
                keep_default_na=False,
                na_values=[""],
                index_col=False,
            )
    except pd.errors.ParserWarning:
        raise ValueError(_long_rows_message(path)) from None
    except pd.errors.EmptyDataError:
        raise ValueError(
            f"{path} is empty. A CSV file needs a header line naming its columns, "
            "then one line per row."
        ) from None
    except (pd.errors.ParserError, UnicodeDecodeError) as error:
        if isinstance(error, UnicodeDecodeError):
            byte = error.object[error.start]
            reason = f"not UTF-8 text: byte 0x{byte:02x}, {error.reason}"
        else:
            reason = str(error).removeprefix("Error tokenizing data. C error: ")
            reason = reason.strip()
        raise ValueError(
            f"{path} could not be parsed as CSV ({reason}); check that it is a "
            "comma-separated text file, saved as UTF-8."
        ) from None
    if len(frame) == 0:
        raise ValueError(
            f"{path} has a header but no data rows. Add one line per row below "
            "the header."
        )
    # A comma that ends every line, the header's too, leaves a last column with
    # no name (pandas calls it "Unnamed: <position>") and no value: not a column.
    last = frame.columns[-1]
    if last == f"Unnamed: {len(frame.columns) - 1}" and frame[last].isna().all():
        frame = frame.drop(columns=last)
    return frame


def _long_rows_message(path):
    """Say which rows of ``path`` hold more cells than its header names."""
    with open(path, encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader)
        long_rows = []
        line = 2
        for record in reader:
            extra = record[len(header) :]
            if any(cell.strip() for cell in extra):
                long_rows.append(f"line {line}: {len(record)} cells")
            line = reader.line_num + 1
    return (
        f"{path}: the header names {len(header)} columns but "
        f"{len(long_rows)} row(s) hold more cells:\n"
        f"{_listing(long_rows, len(long_rows))}\n"
        "Quote cells that contain commas, or name every column in the header."
    )


def _check_columns(frame, roles, path):
    """Raise ``ValueError`` for missing columns, or columns renaming would hide."""
    present = ", ".join(map(repr, frame.columns))
    missing = [
        f"{column!r} ({role}_column, --{role}-column)"
        for role, column in roles.items()
        if column not in frame.columns
    ]
    if missing:
        raise ValueError(
            f"{path}: no column {', '.join(missing)}. Columns present: {present}. "
            "Set the right names with text_column=, image_column= and "
            "label_column= (--text-column, --image-column and --label-column on "
            "the command line); image_column=None (--image-column none) reads a "
            "file without images."
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


def _check_image_cells(column, path):
    """Raise ``ValueError`` naming the lines whose image cell is not a path."""
    reasons = [check_image_value(value) for value in column]
    if not any(reasons):
        return
    lines = _line_numbers(path, len(column))
    bad = [f"line {line}: {why}" for line, why in zip(lines, reasons) if why]
    raise ValueError(
        f"{path}: {len(bad)} image cell(s) are not file paths:\n"
        f"{_listing(bad, len(bad))}"
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
