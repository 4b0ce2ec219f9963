"""Helpers shared by the dataset loaders: paths, JSON reading, image checks."""

import json
import logging
import os
from pathlib import Path

logger = logging.getLogger(__name__)

# How many missing images or bad rows an error message lists before it only counts.
_MAX_LISTED = 10


def _as_folder(root, *, what, hint):
    """Return ``root`` as an absolute path to an existing folder.

    Symbolic links are kept as they are, so paths built from the result start with
    what the caller passed.
    """
    folder = Path(os.fspath(root)).expanduser().absolute()
    if not folder.is_dir():
        raise FileNotFoundError(f"{what} folder not found: {folder}. {hint}")
    return folder


def _existing_file(path, *, what, hint):
    """Return ``path`` if it is a file; otherwise raise a message naming it."""
    if path.is_file():
        return path
    raise FileNotFoundError(f"{what} not found: {path}. {hint}")


def _files_in(folder, pattern):
    """Sorted names of the files in ``folder`` that match a glob ``pattern``."""
    names = sorted(p.name for p in folder.glob(pattern) if p.is_file())
    return ", ".join(names) if names else "none"


def _check_split(split, allowed, *, loader, found=None):
    """Raise ``ValueError`` when ``split`` is not one of ``allowed``.

    ``found`` names the data files present, to show which splits exist.
    """
    if split in allowed:
        return
    message = (
        f"{loader}: split={split!r} is not one of {', '.join(map(repr, allowed))}."
    )
    if found is not None:
        message += f" Files found: {found}."
    raise ValueError(message)


def _listing(items, total):
    """Format the first few of ``items`` one per line, then how many are left."""
    lines = [f"  {item}" for item in items[:_MAX_LISTED]]
    if total > len(lines):
        lines.append(f"  ... and {total - len(lines)} more")
    return "\n".join(lines)


def _read_jsonl(path):
    """Yield ``(line_number, object)`` for each non-blank line of a JSON Lines file.

    Raises
    ------
    ValueError
        If a line is not valid JSON or not a JSON object; the message names the
        file, the line and the column.
    """
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line.rstrip("\r\n"))
            except json.JSONDecodeError as error:
                raise ValueError(
                    f"{path}, line {number}, column {error.colno}: not valid JSON "
                    f"({error.msg}). Each line must hold one JSON object; fix or "
                    "remove this line."
                ) from None
            if not isinstance(record, dict):
                raise ValueError(
                    f"{path}, line {number}: expected a JSON object, got "
                    f"{type(record).__name__}. Each line must hold one JSON object."
                )
            yield number, record


def _read_json(path):
    """Read a whole JSON file; a syntax error names the file, line and column."""
    with open(path, encoding="utf-8") as handle:
        try:
            return json.load(handle)
        except json.JSONDecodeError as error:
            raise ValueError(
                f"{path}, line {error.lineno}, column {error.colno}: not valid JSON "
                f"({error.msg}). The file may be truncated; download it again."
            ) from None


def _require_keys(record, keys, *, path, where):
    """Raise ``ValueError`` naming the first of ``keys`` missing from ``record``."""
    missing = [key for key in keys if key not in record]
    if missing:
        raise ValueError(
            f"{path}, {where}: missing key(s) {', '.join(map(repr, missing))}; "
            f"keys present: {', '.join(map(repr, record)) or 'none'}. Each record "
            f"needs {', '.join(map(repr, keys))}."
        )


def _require_strings(record, keys, *, path, where):
    """Raise ``ValueError`` naming the first of ``keys`` whose value is not a str.

    A JSON ``null`` or number where the format has text would otherwise reach the
    frame as a missing or non-text value, far from the line it came from.
    """
    for key in keys:
        value = record[key]
        if not isinstance(value, str):
            got = "null" if value is None else f"{type(value).__name__} {value!r:.40}"
            raise ValueError(
                f"{path}, {where}: {key!r} must be a string, got {got}. Fix or "
                "remove this record."
            )


def _check_images_exist(images, places, *, source, hint):
    """Raise ``FileNotFoundError`` listing every image file that does not exist.

    Images are only looked up, never opened: decoding is left to the estimators.

    Parameters
    ----------
    images : sequence of str
        Absolute image paths, one per row.
    places : sequence of str, or callable returning one
        Where each row came from (``"line 3"``), in the same order as ``images``.
        A callable is only called when an image is missing.
    source : str or Path
        The file that lists the images, named in the message.
    hint : str
        How to fix the most likely cause.
    """
    images = list(images)
    absent = {image for image in set(images) if not os.path.isfile(image)}
    if not absent:
        return

    if callable(places):
        places = places()
    first_place = {}
    for image, place in zip(images, places, strict=True):
        if image in absent and image not in first_place:
            first_place[image] = place
    missing = [f"{image} ({place})" for image, place in first_place.items()]
    raise FileNotFoundError(
        f"{len(missing)} image file(s) listed in {source} do not exist:\n"
        f"{_listing(missing, len(missing))}\n{hint}"
    )
