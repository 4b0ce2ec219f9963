"""Loader for VQA v2, read as classification over the most common answers."""

import logging
import numbers
from collections import Counter

import pandas as pd

from multimodal_clf.datasets._common import (
    _as_folder,
    _check_images_exist,
    _check_split,
    _existing_file,
    _files_in,
    _read_json,
    _require_keys,
    _require_strings,
)

logger = logging.getLogger(__name__)

_SPLITS = ("train", "val")


def load_vqa_v2(
    root, split="train", *, top_k_answers=3129, answers=None, image_dir=None
):
    """Load one split of VQA v2 as a classification problem over answers.

    Reads the layout the data set is published in::

        root/
          v2_OpenEnded_mscoco_train2014_questions.json
          v2_mscoco_train2014_annotations.json
          train2014/COCO_train2014_000000000009.jpg ...
          (the same for val)

    Each question becomes one row whose label is its ``multiple_choice_answer``
    (the most frequent of the ten human answers). Only the ``top_k_answers`` most
    common answers of the split are kept as classes, ties broken by the answer
    text so the choice is the same on every run; rows with any other answer are
    dropped, and how many is logged.

    Parameters
    ----------
    root : str or path-like
        The folder that holds the question and annotation files.
    split : {"train", "val"}, default="train"
        Which files to read. The test splits have no annotations, so no labels.
    top_k_answers : int or None, default=3129
        How many of the most common answers to keep as classes; 3129 is the
        usual choice for VQA v2. ``None`` keeps every answer. Ignored when
        ``answers`` is given.
    answers : sequence of str, default=None
        The answers to keep, usually those of the train split, so that val is
        labelled with the same classes: ``train.attrs["answers"]``.
    image_dir : str or path-like, default=None
        The folder that holds ``COCO_{split}2014_{image_id:012d}.jpg``; by
        default ``root/{split}2014``.

    Returns
    -------
    pandas.DataFrame
        One row per kept question, in the order of the questions file, with
        columns ``text`` (the question), ``image`` (absolute path), ``label``
        (the answer), ``question_id`` and ``image_id``. ``frame.attrs["answers"]``
        holds the answers kept, most common first.

    Raises
    ------
    ValueError
        If ``split``, ``top_k_answers`` or ``answers`` is not valid, a file is not
        valid JSON, or a question has no annotation; the message names the file
        and, for JSON errors, the line and column.
    FileNotFoundError
        If a file, the image folder or any image file does not exist.

    Examples
    --------
    >>> from multimodal_clf.datasets import load_vqa_v2
    >>> train = load_vqa_v2("data/vqa_v2", top_k_answers=1000)  # doctest: +SKIP
    >>> val = load_vqa_v2(
    ...     "data/vqa_v2", "val", answers=train.attrs["answers"]
    ... )  # doctest: +SKIP
    """
    folder = _as_folder(
        root, what="VQA v2", hint="Pass the folder that holds the v2_*.json files."
    )
    _check_split(
        split, _SPLITS, loader="load_vqa_v2", found=_files_in(folder, "*.json")
    )
    _check_top_k(top_k_answers)
    hint = f"Files found in {folder}: {_files_in(folder, '*.json')}."
    questions_path = _existing_file(
        folder / f"v2_OpenEnded_mscoco_{split}2014_questions.json",
        what="VQA v2 questions file",
        hint=hint,
    )
    annotations_path = _existing_file(
        folder / f"v2_mscoco_{split}2014_annotations.json",
        what="VQA v2 annotations file",
        hint=hint,
    )
    if image_dir is None:
        image_dir = folder / f"{split}2014"
    images = _as_folder(
        image_dir,
        what="VQA v2 image",
        hint=f"Pass image_dir= with the folder that holds COCO_{split}2014_*.jpg.",
    )

    questions = _records(
        questions_path,
        "questions",
        ("question_id", "image_id", "question"),
        strings=("question",),
    )
    annotations = _records(
        annotations_path,
        "annotations",
        ("question_id", "multiple_choice_answer"),
        strings=("multiple_choice_answer",),
    )
    answer_of = {a["question_id"]: a["multiple_choice_answer"] for a in annotations}
    rows = []
    for index, question in enumerate(questions):
        qid = question["question_id"]
        if qid not in answer_of:
            raise ValueError(
                f"{questions_path}, questions[{index}]: question_id {qid} has no "
                f"annotation in {annotations_path}. Use the files of one release."
            )
        rows.append(
            {
                "text": question["question"],
                "image": str(
                    images / f"COCO_{split}2014_{int(question['image_id']):012d}.jpg"
                ),
                "label": answer_of[qid],
                "question_id": qid,
                "image_id": question["image_id"],
            }
        )
    frame = pd.DataFrame(
        rows, columns=["text", "image", "label", "question_id", "image_id"]
    )

    kept = _answer_vocabulary(frame["label"], top_k_answers, answers)
    keep = frame["label"].isin(kept).to_numpy()
    logger.info(
        "Dropped %d of %d questions of %s whose answer is not among the %d kept.",
        int((~keep).sum()),
        len(frame),
        questions_path,
        len(kept),
    )
    frame = frame[keep].reset_index(drop=True)
    frame.attrs["answers"] = kept

    _check_images_exist(
        frame["image"],
        lambda: [f"question_id {qid}" for qid in frame["question_id"]],
        source=questions_path,
        hint=(
            f"Check the image folder {images}, or set image_dir= "
            "(--image-root on the command line)."
        ),
    )
    logger.info("Loaded %d questions from %s.", len(frame), questions_path)
    return frame


def _check_top_k(top_k_answers):
    """Raise ``ValueError`` unless ``top_k_answers`` is a positive int or None."""
    if top_k_answers is None:
        return
    if (
        isinstance(top_k_answers, numbers.Integral)
        and not isinstance(top_k_answers, bool)
        and top_k_answers > 0
    ):
        return
    raise ValueError(
        "load_vqa_v2: top_k_answers must be a positive int or None, got "
        f"{top_k_answers!r}."
    )


def _records(path, key, required, strings=()):
    """The list under ``key`` in a VQA JSON file, each entry checked for keys."""
    content = _read_json(path)
    if not isinstance(content, dict) or not isinstance(content.get(key), list):
        raise ValueError(
            f"{path}: expected a JSON object with a list under {key!r}. Is this the "
            f"right file?"
        )
    records = content[key]
    for index, record in enumerate(records):
        if not isinstance(record, dict):
            raise ValueError(f"{path}, {key}[{index}]: expected a JSON object.")
        _require_keys(record, required, path=path, where=f"{key}[{index}]")
        _require_strings(record, strings, path=path, where=f"{key}[{index}]")
    return records


def _answer_vocabulary(labels, top_k_answers, answers):
    """The answers kept as classes: ``answers`` or the most common ones."""
    if answers is not None:
        if isinstance(answers, str):
            raise ValueError(
                "load_vqa_v2: answers must be a sequence of answer strings, got one "
                f"string {answers!r}. Wrap it in a list."
            )
        kept = list(dict.fromkeys(answers))
        if not kept:
            raise ValueError("load_vqa_v2: answers is empty; pass at least one answer.")
        return kept

    counts = Counter(labels)
    ranked = sorted(counts, key=lambda answer: (-counts[answer], answer))
    return ranked if top_k_answers is None else ranked[:top_k_answers]
