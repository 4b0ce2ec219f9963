"""Loader for SNLI-VE, the visual entailment data set built on Flickr30k."""

import logging

import pandas as pd

from multimodal_clf.datasets._common import (
    _as_folder,
    _check_images_exist,
    _check_split,
    _existing_file,
    _files_in,
    _read_jsonl,
    _require_keys,
    _require_strings,
)

logger = logging.getLogger(__name__)

_SPLITS = ("train", "dev", "test")
_LABELS = ("contradiction", "entailment", "neutral")
# Folders that hold the Flickr30k images, relative to root, tried in this order.
_IMAGE_DIRS = ("flickr30k_images", "Flickr30K/flickr30k_images")
# Extra fields kept from each line, when the file has them.
_EXTRA = ("pairID", "Flickr30K_ID", "sentence1")


def load_snli_ve(root, split="train", *, image_dir=None):
    """Load one split of the SNLI-VE visual entailment data set.

    Reads the layout the data set is published in::

        root/
          snli_ve_train.jsonl  snli_ve_dev.jsonl  snli_ve_test.jsonl
          flickr30k_images/3416050480.jpg ...

    The images may also sit in ``root/Flickr30K/flickr30k_images/``. Each line of
    a ``.jsonl`` file is one JSON object with at least ``Flickr30K_ID``,
    ``sentence2`` (the hypothesis) and ``gold_label``. The text of a row is the
    hypothesis; the premise is the image. Lines whose ``gold_label`` is ``"-"``
    (the annotators did not agree) are dropped, and how many is logged.

    Parameters
    ----------
    root : str or path-like
        The folder that holds the ``.jsonl`` files.
    split : {"train", "dev", "test"}, default="train"
        Which file to read: ``root/snli_ve_{split}.jsonl``.
    image_dir : str or path-like, default=None
        The folder that holds ``{Flickr30K_ID}.jpg``. By default the first of
        ``root/flickr30k_images`` and ``root/Flickr30K/flickr30k_images`` that
        exists.

    Returns
    -------
    pandas.DataFrame
        One row per kept line, in file order, with columns ``text`` (the
        hypothesis), ``image`` (absolute path), ``label`` (``"entailment"``,
        ``"neutral"`` or ``"contradiction"``), ``pairID``, ``Flickr30K_ID`` (str)
        and ``sentence1`` (the caption the hypothesis was written from; ``None``
        where a line lacks it).

    Raises
    ------
    ValueError
        If ``split`` is unknown, a line is not valid JSON, lacks a required key or
        has an unknown ``gold_label``; the message names the file and line.
    FileNotFoundError
        If the split's file, the image folder or any image file does not exist.

    Examples
    --------
    >>> from multimodal_clf.datasets import load_snli_ve
    >>> dev = load_snli_ve("data/snli_ve", "dev")  # doctest: +SKIP
    >>> dev["label"].value_counts()  # doctest: +SKIP
    """
    folder = _as_folder(
        root, what="SNLI-VE", hint="Pass the folder that holds snli_ve_train.jsonl."
    )
    _check_split(
        split,
        _SPLITS,
        loader="load_snli_ve",
        found=_files_in(folder, "snli_ve_*.jsonl"),
    )
    path = _existing_file(
        folder / f"snli_ve_{split}.jsonl",
        what="SNLI-VE file",
        hint=f"Files found in {folder}: {_files_in(folder, '*.jsonl')}.",
    )
    images = _image_folder(folder, image_dir)

    rows, places, dropped = [], [], 0
    for number, record in _read_jsonl(path):
        where = f"line {number}"
        _require_keys(
            record, ("Flickr30K_ID", "sentence2", "gold_label"), path=path, where=where
        )
        _require_strings(record, ("sentence2",), path=path, where=where)
        label = record["gold_label"]
        if label == "-":
            dropped += 1
            continue
        if label not in _LABELS:
            raise ValueError(
                f"{path}, {where}: gold_label {label!r} is not one of "
                f"{', '.join(map(repr, _LABELS))} or '-'."
            )
        flickr_id = str(record["Flickr30K_ID"])
        row = {
            "text": record["sentence2"],
            "image": str(images / f"{flickr_id}.jpg"),
            "label": label,
        }
        row.update({key: record.get(key) for key in _EXTRA})
        row["Flickr30K_ID"] = flickr_id
        rows.append(row)
        places.append(where)

    if dropped:
        logger.info(
            "Dropped %d of %d lines of %s whose gold_label is '-' (no consensus).",
            dropped,
            dropped + len(rows),
            path,
        )
    frame = pd.DataFrame(rows, columns=["text", "image", "label", *_EXTRA])
    _check_images_exist(
        frame["image"],
        places,
        source=path,
        hint=(
            f"Check the image folder {images}, or set image_dir= "
            "(--image-root on the command line)."
        ),
    )
    logger.info("Loaded %d rows from %s.", len(frame), path)
    return frame


def _image_folder(folder, image_dir):
    """The folder of Flickr30k images: ``image_dir``, or the first default found."""
    if image_dir is not None:
        return _as_folder(
            image_dir,
            what="SNLI-VE image",
            hint="image_dir must be the folder that holds {Flickr30K_ID}.jpg.",
        )
    candidates = [folder / name for name in _IMAGE_DIRS]
    for candidate in candidates:
        if candidate.is_dir():
            return candidate
    tried = ", ".join(map(str, candidates))
    raise FileNotFoundError(
        f"No Flickr30k image folder found; tried {tried}. Pass image_dir= with the "
        "folder that holds {Flickr30K_ID}.jpg."
    )
