"""Tests for the dataset loaders, on tiny fixtures written in each official layout."""

import doctest
import importlib
import json
import logging
import os
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from multimodal_clf.datasets import (
    load_clipart,
    load_clipart_mini,
    load_csv,
    load_hateful_memes,
    load_snli_ve,
    load_vqa_v2,
)

# The full clip-art set, in the shared/ folder beside the repository.
CLIPART = Path(__file__).resolve().parents[2] / "shared" / "data" / "clipart"
LOGGER = "multimodal_clf.datasets"


def write_image(path, mode="RGB", fmt=None):
    """Write a 4x3 image at ``path``, creating its folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, (4, 3)).save(path, format=fmt)
    return path


def write_jsonl(path, records):
    """Write one JSON object per line; a str record is written as it is."""
    lines = [r if isinstance(r, str) else json.dumps(r) for r in records]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


# Hateful Memes -------------------------------------------------------------------

MEMES = [
    {"id": 42953, "img": "img/42953.png", "label": 0, "text": "its their character"},
    {"id": 23058, "img": "img/23058.png", "label": 1, "text": "don't be afraid"},
    {"id": 13894, "img": "img/13894.png", "label": 0, "text": "putting bows on"},
]


@pytest.fixture
def memes(tmp_path):
    for record in MEMES:
        write_image(tmp_path / record["img"])
    write_jsonl(tmp_path / "train.jsonl", MEMES)
    unlabelled = [{k: v for k, v in r.items() if k != "label"} for r in MEMES[:2]]
    write_jsonl(tmp_path / "test_unseen.jsonl", unlabelled)
    return tmp_path


def test_hateful_memes_train(memes):
    frame = load_hateful_memes(memes)

    assert list(frame.columns) == ["text", "image", "label", "id"]
    assert frame["text"].tolist() == [r["text"] for r in MEMES]
    assert frame["image"].tolist() == [str(memes / r["img"]) for r in MEMES]
    assert frame["label"].tolist() == [0, 1, 0]
    assert frame["id"].tolist() == [42953, 23058, 13894]


def test_hateful_memes_accepts_a_relative_root(memes, monkeypatch):
    monkeypatch.chdir(memes.parent)

    frame = load_hateful_memes(memes.name)

    assert frame["image"][0] == str(memes / "img/42953.png")
    assert os.path.isabs(frame["image"][0])


def test_hateful_memes_test_split_without_labels(memes, caplog):
    with caplog.at_level(logging.INFO, logger=LOGGER):
        frame = load_hateful_memes(memes, "test_unseen")

    assert len(frame) == 2
    assert frame["label"].isna().all()
    assert frame["label"].dtype == "Int64"
    assert "has no labels" in caplog.text


def test_hateful_memes_legacy_split_name(memes):
    write_jsonl(memes / "dev.jsonl", MEMES[2:])

    assert load_hateful_memes(memes, "dev")["id"].tolist() == [13894]


def test_hateful_memes_unknown_split_lists_files(memes):
    with pytest.raises(ValueError, match="split='validation'") as info:
        load_hateful_memes(memes, "validation")

    assert "Files found: test_unseen.jsonl, train.jsonl." in str(info.value)


def test_hateful_memes_missing_file_names_it(memes):
    with pytest.raises(FileNotFoundError) as info:
        load_hateful_memes(memes, "dev_seen")

    assert str(memes / "dev_seen.jsonl") in str(info.value)
    assert "train.jsonl" in str(info.value)


def test_hateful_memes_missing_root(tmp_path):
    with pytest.raises(FileNotFoundError, match="Hateful Memes folder not found"):
        load_hateful_memes(tmp_path / "nowhere")


def test_hateful_memes_malformed_line(memes):
    path = write_jsonl(memes / "train.jsonl", [MEMES[0], '{"id": 1, "img": '])

    with pytest.raises(ValueError) as info:
        load_hateful_memes(memes)

    assert str(info.value).startswith(f"{path}, line 2, column 18: not valid JSON")


def test_hateful_memes_line_without_a_key(memes):
    write_jsonl(memes / "train.jsonl", [MEMES[0], {"id": 1, "text": "x"}])

    with pytest.raises(
        ValueError, match=r"train.jsonl, line 2: missing key\(s\) 'img'"
    ):
        load_hateful_memes(memes)


def test_hateful_memes_some_labels_missing(memes):
    write_jsonl(memes / "train.jsonl", [MEMES[0], {"id": 1, "img": "x", "text": "t"}])

    with pytest.raises(ValueError, match="line 2: no 'label'"):
        load_hateful_memes(memes)


def test_hateful_memes_bad_label(memes):
    write_jsonl(memes / "train.jsonl", [{**MEMES[0], "label": "hateful"}])

    with pytest.raises(ValueError, match="line 1: 'label' must be an integer"):
        load_hateful_memes(memes)


def test_hateful_memes_missing_images_listed_together(memes):
    records = [
        {"id": i, "img": f"img/gone{i:02d}.png", "label": 0, "text": "t"}
        for i in range(12)
    ]
    write_jsonl(memes / "train.jsonl", MEMES + records)

    with pytest.raises(FileNotFoundError) as info:
        load_hateful_memes(memes)

    message = str(info.value)
    assert message.startswith("12 image file(s) listed in")
    assert f"{memes / 'img/gone00.png'} (line 4)" in message
    assert f"{memes / 'img/gone09.png'} (line 13)" in message
    assert "gone10" not in message
    assert "... and 2 more" in message


# SNLI-VE -------------------------------------------------------------------------

SNLI = [
    {
        "Flickr30K_ID": "3416050480",
        "pairID": "3416050480.jpg#4r1n",
        "sentence1": "Two women are embracing.",
        "sentence2": "The sisters are hugging goodbye.",
        "gold_label": "neutral",
    },
    {
        "Flickr30K_ID": "3416050480",
        "pairID": "3416050480.jpg#4r1e",
        "sentence1": "Two women are embracing.",
        "sentence2": "Two women are showing affection.",
        "gold_label": "entailment",
    },
    {
        "Flickr30K_ID": "2267923837",
        "pairID": "2267923837.jpg#2r1c",
        "sentence1": "A man is playing a guitar.",
        "sentence2": "A man is asleep.",
        "gold_label": "-",
    },
    {
        "Flickr30K_ID": 2267923837,
        "pairID": "2267923837.jpg#2r1n",
        "sentence1": "A man is playing a guitar.",
        "sentence2": "Nobody is playing.",
        "gold_label": "contradiction",
    },
]


@pytest.fixture
def snli(tmp_path):
    for name in ("3416050480", "2267923837"):
        write_image(tmp_path / "flickr30k_images" / f"{name}.jpg", fmt="JPEG")
    write_jsonl(tmp_path / "snli_ve_train.jsonl", SNLI)
    return tmp_path


def test_snli_ve_drops_lines_without_consensus(snli, caplog):
    with caplog.at_level(logging.INFO, logger=LOGGER):
        frame = load_snli_ve(snli)

    images = snli / "flickr30k_images"
    assert list(frame.columns) == [
        "text",
        "image",
        "label",
        "pairID",
        "Flickr30K_ID",
        "sentence1",
    ]
    assert frame["text"].tolist() == [
        "The sisters are hugging goodbye.",
        "Two women are showing affection.",
        "Nobody is playing.",
    ]
    assert frame["image"].tolist() == [
        str(images / "3416050480.jpg"),
        str(images / "3416050480.jpg"),
        str(images / "2267923837.jpg"),
    ]
    assert frame["label"].tolist() == ["neutral", "entailment", "contradiction"]
    assert frame["Flickr30K_ID"].tolist() == ["3416050480", "3416050480", "2267923837"]
    assert "Dropped 1 of 4 lines" in caplog.text


def test_snli_ve_finds_the_nested_image_folder(snli):
    (snli / "Flickr30K").mkdir()
    (snli / "flickr30k_images").rename(snli / "Flickr30K" / "flickr30k_images")

    frame = load_snli_ve(snli)

    assert frame["image"][0] == str(snli / "Flickr30K/flickr30k_images/3416050480.jpg")


def test_snli_ve_image_dir(snli, tmp_path_factory):
    elsewhere = tmp_path_factory.mktemp("flickr")
    (snli / "flickr30k_images").rename(elsewhere / "images")
    write_jsonl(snli / "snli_ve_dev.jsonl", SNLI[:1])

    frame = load_snli_ve(snli, "dev", image_dir=elsewhere / "images")

    assert frame["image"].tolist() == [str(elsewhere / "images/3416050480.jpg")]


def test_snli_ve_without_image_folder(snli):
    (snli / "flickr30k_images").rename(snli / "pictures")

    with pytest.raises(FileNotFoundError, match="No Flickr30k image folder found"):
        load_snli_ve(snli)


def test_snli_ve_unknown_label(snli):
    write_jsonl(snli / "snli_ve_train.jsonl", [{**SNLI[0], "gold_label": "maybe"}])

    with pytest.raises(ValueError, match="line 1: gold_label 'maybe' is not one of"):
        load_snli_ve(snli)


def test_snli_ve_missing_file_and_split(snli):
    with pytest.raises(FileNotFoundError, match="snli_ve_test.jsonl"):
        load_snli_ve(snli, "test")
    with pytest.raises(ValueError, match="Files found: snli_ve_train.jsonl"):
        load_snli_ve(snli, "val")


def test_snli_ve_missing_image(snli):
    (snli / "flickr30k_images" / "2267923837.jpg").unlink()

    with pytest.raises(FileNotFoundError) as info:
        load_snli_ve(snli)

    expected = f"{snli / 'flickr30k_images/2267923837.jpg'} (line 4)"
    assert expected in str(info.value)


# VQA v2 --------------------------------------------------------------------------

QUESTIONS = [
    (1, 9, "Is it raining?", "yes"),
    (2, 9, "How many dogs?", "2"),
    (3, 25, "Is the man happy?", "yes"),
    (4, 25, "What color is the bus?", "no"),
]


def write_vqa(root, split, rows):
    questions = [
        {"image_id": image, "question": text, "question_id": qid}
        for qid, image, text, _ in rows
    ]
    annotations = [
        {
            "question_id": qid,
            "image_id": image,
            "multiple_choice_answer": answer,
            "answers": [{"answer": answer, "answer_id": 1}],
        }
        for qid, image, _, answer in rows
    ]
    (root / f"v2_OpenEnded_mscoco_{split}2014_questions.json").write_text(
        json.dumps({"questions": questions}, indent=1), encoding="utf-8"
    )
    (root / f"v2_mscoco_{split}2014_annotations.json").write_text(
        json.dumps({"annotations": annotations}), encoding="utf-8"
    )
    for image in {row[1] for row in rows}:
        name = f"{split}2014/COCO_{split}2014_{image:012d}.jpg"
        write_image(root / name, fmt="JPEG")


@pytest.fixture
def vqa(tmp_path):
    write_vqa(tmp_path, "train", QUESTIONS)
    return tmp_path


def test_vqa_v2_keeps_the_top_answers(vqa, caplog):
    with caplog.at_level(logging.INFO, logger=LOGGER):
        frame = load_vqa_v2(vqa, top_k_answers=2)

    # "yes" is asked twice; "2" and "no" tie once each and "2" sorts first.
    assert frame.attrs["answers"] == ["yes", "2"]
    assert list(frame.columns) == ["text", "image", "label", "question_id", "image_id"]
    assert frame["text"].tolist() == [
        "Is it raining?",
        "How many dogs?",
        "Is the man happy?",
    ]
    assert frame["label"].tolist() == ["yes", "2", "yes"]
    assert frame["question_id"].tolist() == [1, 2, 3]
    assert frame["image_id"].tolist() == [9, 9, 25]
    assert frame["image"][2] == str(vqa / "train2014/COCO_train2014_000000000025.jpg")
    assert "Dropped 1 of 4 questions" in caplog.text


def test_vqa_v2_all_answers(vqa):
    frame = load_vqa_v2(vqa, top_k_answers=None)

    assert frame["label"].tolist() == ["yes", "2", "yes", "no"]


def test_vqa_v2_val_uses_train_answers(vqa, caplog):
    write_vqa(vqa, "val", [(7, 42, "Is it day?", "no"), (8, 42, "What?", "cat")])
    train = load_vqa_v2(vqa, top_k_answers=3)

    with caplog.at_level(logging.INFO, logger=LOGGER):
        val = load_vqa_v2(vqa, "val", answers=train.attrs["answers"])

    assert val["label"].tolist() == ["no"]
    assert val["image"][0] == str(vqa / "val2014/COCO_val2014_000000000042.jpg")
    assert "Dropped 1 of 2 questions" in caplog.text


@pytest.mark.parametrize("top_k", [0, -3, 2.5, True, "10"])
def test_vqa_v2_bad_top_k(vqa, top_k):
    with pytest.raises(ValueError, match="top_k_answers must be a positive int"):
        load_vqa_v2(vqa, top_k_answers=top_k)


def test_vqa_v2_answers_must_not_be_one_string(vqa):
    with pytest.raises(ValueError, match="Wrap it in a list"):
        load_vqa_v2(vqa, answers="yes")


def test_vqa_v2_malformed_json(vqa):
    path = vqa / "v2_OpenEnded_mscoco_train2014_questions.json"
    path.write_text('{"questions": [\n  {"image_id": 9,\n  oops}\n]}\n')

    with pytest.raises(ValueError) as info:
        load_vqa_v2(vqa)

    assert str(info.value).startswith(f"{path}, line 3, column 3: not valid JSON")


def test_vqa_v2_missing_annotations(vqa):
    path = vqa / "v2_mscoco_train2014_annotations.json"
    path.unlink()

    with pytest.raises(FileNotFoundError, match="VQA v2 annotations file not found"):
        load_vqa_v2(vqa)


def test_vqa_v2_question_without_annotation(vqa):
    write_vqa(vqa, "val", QUESTIONS[:1])
    (vqa / "v2_mscoco_val2014_annotations.json").write_text('{"annotations": []}')

    with pytest.raises(ValueError, match=r"questions\[0\]: question_id 1 has no"):
        load_vqa_v2(vqa, "val")


def test_vqa_v2_missing_image(vqa):
    (vqa / "train2014/COCO_train2014_000000000025.jpg").unlink()

    with pytest.raises(FileNotFoundError) as info:
        load_vqa_v2(vqa)

    message = str(info.value)
    assert message.startswith("1 image file(s) listed in")
    assert "COCO_train2014_000000000025.jpg (question_id 3)" in message


# CSV -----------------------------------------------------------------------------


@pytest.fixture
def posts(tmp_path):
    write_image(tmp_path / "pics" / "a.png")
    write_image(tmp_path / "pics" / "b.png", mode="RGBA")
    absolute = write_image(tmp_path / "other" / "c.png")
    frame = pd.DataFrame(
        {
            "post": ["p1", "p2", "p3"],
            "caption": ["a cat", "NA", 'say "hi",\nthen leave'],
            "photo": ["pics/a.png", "pics/b.png", str(absolute)],
            "y": ["pet", "food", "pet"],
        }
    )
    frame.to_csv(tmp_path / "posts.csv", index=False)
    return tmp_path


def test_csv_renames_and_keeps_other_columns(posts):
    frame = load_csv(
        posts / "posts.csv",
        text_column="caption",
        image_column="photo",
        label_column="y",
    )

    assert list(frame.columns) == ["text", "image", "label", "post"]
    assert frame["text"].tolist() == ["a cat", "NA", 'say "hi",\nthen leave']
    assert frame["image"].tolist() == [
        str(posts / "pics/a.png"),
        str(posts / "pics/b.png"),
        str(posts / "other/c.png"),
    ]
    assert frame["label"].tolist() == ["pet", "food", "pet"]
    assert frame["post"].tolist() == ["p1", "p2", "p3"]


def test_csv_image_root(posts, tmp_path_factory):
    csv_folder = tmp_path_factory.mktemp("elsewhere")
    (posts / "posts.csv").rename(csv_folder / "posts.csv")

    frame = load_csv(
        csv_folder / "posts.csv",
        text_column="caption",
        image_column="photo",
        label_column="y",
        image_root=posts,
    )

    assert frame["image"][0] == str(posts / "pics/a.png")


def test_csv_text_only(tmp_path):
    (tmp_path / "reviews.csv").write_text("text,label\ngood,1\nbad,0\n")

    frame = load_csv(tmp_path / "reviews.csv", image_column=None)

    assert list(frame.columns) == ["text", "label"]
    assert frame["label"].tolist() == [1, 0]


def test_csv_missing_column_lists_columns_present(posts):
    with pytest.raises(ValueError) as info:
        load_csv(posts / "posts.csv", text_column="caption")

    message = str(info.value)
    assert (
        "no column 'image' (image_column, --image-column), "
        "'label' (label_column, --label-column)"
    ) in message
    assert "Columns present: 'post', 'caption', 'photo', 'y'." in message


def test_csv_missing_image_names_file_and_line(posts):
    (posts / "pics" / "b.png").unlink()

    with pytest.raises(FileNotFoundError) as info:
        load_csv(
            posts / "posts.csv",
            text_column="caption",
            image_column="photo",
            label_column="y",
        )

    assert f"{posts / 'pics/b.png'} (line 3)" in str(info.value)


def test_csv_empty_cell_names_the_line(tmp_path):
    # The quoted text spans lines 3 and 4, so the empty label is on line 5.
    path = tmp_path / "data.csv"
    path.write_text('text,label\na,1\n"b\nc",2\nd,\n')

    with pytest.raises(ValueError, match=r"1 empty cell\(s\)[^\n]*\n  line 5: 'label'"):
        load_csv(path, image_column=None)


def test_csv_rename_clash(tmp_path):
    path = tmp_path / "data.csv"
    path.write_text("title,text,label\na,b,1\n")

    with pytest.raises(ValueError, match="column\\(s\\) 'text' would be overwritten"):
        load_csv(path, text_column="title", image_column=None)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", r"empty\.csv is empty\. A CSV file needs a header line"),
        (b"\n\n", r"empty\.csv is empty\."),
        (
            b"text,label\n",
            r"empty\.csv has a header but no data rows\. Add one line per row",
        ),
        (
            b"text,label\nx,1\ny,2,3,4\n",
            r"empty\.csv could not be parsed as CSV \(Expected 2 fields in line 3, "
            r"saw 4\); check that it is a comma-separated text file, saved as UTF-8",
        ),
        (
            # pandas alone would make 'x' an index and shift 1 and 2 left.
            b"text,label\nx,1,2\ny,3,4\n",
            r"empty\.csv: the header names 2 columns but 2 row\(s\) hold more "
            r"cells:\n  line 2: 3 cells\n  line 3: 3 cells\nQuote cells that",
        ),
        (
            b"text,label\n\xff\xfe,1\n",
            r"empty\.csv could not be parsed as CSV \(not UTF-8 text: byte 0xff",
        ),
    ],
)
def test_csv_that_is_not_a_table_names_the_file(tmp_path, content, message):
    path = tmp_path / "empty.csv"
    path.write_bytes(content)

    with pytest.raises(ValueError, match=message) as info:
        load_csv(path, image_column=None)
    assert str(path) in str(info.value)


def test_csv_image_urls_name_their_lines(tmp_path):
    write_image(tmp_path / "a.png")
    path = tmp_path / "data.csv"
    path.write_text(
        "text,image,label\nx,a.png,1\ny,https://example.com/b.png,0\n"
        'z,"data:image/png;base64,iVBO",1\n'
    )

    with pytest.raises(ValueError) as info:
        load_csv(path)

    assert str(info.value).splitlines() == [
        f"{path}: 2 image cell(s) are not file paths:",
        "  line 3: image is a URL ('https://example.com/b.png'); only local files "
        "are read: download the images first and pass their paths",
        "  line 4: image is a data URI ('data:image/png;base64,iVBO'); pass the "
        "decoded bytes, or save the image to a file and pass its path",
    ]


@pytest.mark.parametrize("header", ["text,label", "text,label,"])
def test_csv_trailing_commas_are_not_cells(tmp_path, header):
    path = tmp_path / "data.csv"
    path.write_text(f"{header}\nx,1,\ny,0,\n")

    frame = load_csv(path, image_column=None)

    assert frame.columns.tolist() == ["text", "label"]
    assert frame["text"].tolist() == ["x", "y"]
    assert frame["label"].tolist() == [1, 0]


def test_csv_keeps_an_unnamed_column_that_holds_values(tmp_path):
    path = tmp_path / "data.csv"
    path.write_text("text,label,\nx,1,a\ny,0,\n")

    frame = load_csv(path, image_column=None)

    assert frame.columns.tolist() == ["text", "label", "Unnamed: 2"]
    assert frame["Unnamed: 2"].tolist()[0] == "a"


def test_csv_errors_name_the_command_line_options_too(posts):
    with pytest.raises(ValueError, match=r"\(--text-column, --image-column and "):
        load_csv(posts / "posts.csv", text_column="caption")

    (posts / "pics" / "b.png").unlink()
    with pytest.raises(FileNotFoundError, match=r"image_root= \(--image-root on"):
        load_csv(
            posts / "posts.csv",
            text_column="caption",
            image_column="photo",
            label_column="y",
        )


def test_csv_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="CSV file not found"):
        load_csv(tmp_path / "nope.csv")


# clipart -------------------------------------------------------------------------


@pytest.mark.skipif(not CLIPART.is_dir(), reason="the clipart data set is not here")
def test_load_clipart():
    frame = load_clipart(CLIPART)

    assert list(frame.columns) == ["text", "image", "label", "split", "id"]
    assert len(frame) == 2013
    assert frame["split"].value_counts().to_dict() == {"train": 1610, "test": 403}
    assert frame["label"].nunique() == 8
    assert frame["id"][0] == "00000"
    assert all(os.path.isabs(p) and os.path.isfile(p) for p in frame["image"])
    assert len(load_clipart(CLIPART, split="test")) == 403


def test_load_clipart_errors(tmp_path):
    with pytest.raises(ValueError, match="split='val' is not one of"):
        load_clipart(tmp_path, split="val")
    with pytest.raises(FileNotFoundError, match="metadata.csv"):
        load_clipart(tmp_path)


def test_load_clipart_missing_image(tmp_path):
    write_image(tmp_path / "images/00001.png")
    (tmp_path / "metadata.csv").write_text(
        "id,text,image,label,subcategory,split\n"
        "00001,owl,images/00001.png,animals,birds,train\n"
        "00007,car,images/00007.png,transportation,none,test\n"
    )

    with pytest.raises(FileNotFoundError, match=r"images/00007.png \(line 3\)"):
        load_clipart(tmp_path)
    assert load_clipart(tmp_path, split="train")["text"].tolist() == ["owl"]


def test_load_clipart_mini():
    frame = load_clipart_mini()

    assert list(frame.columns) == ["text", "image", "label", "split", "id"]
    assert len(frame) == 320
    assert frame["label"].value_counts().tolist() == [40] * 8
    counts = frame.groupby(["label", "split"]).size()
    assert set(counts.xs("train", level="split")) == {32}
    assert set(counts.xs("test", level="split")) == {8}
    assert frame["id"].str.fullmatch(r"\d{5}").all()
    assert len(load_clipart_mini(split="test")) == 64

    modes = set()
    for path in frame["image"]:
        assert os.path.isabs(path)
        with Image.open(path) as image:
            assert max(image.size) <= 64
            modes.add(image.mode)
    assert {"RGBA", "P", "LA"} <= modes

    folder = Path(frame["image"][0]).parents[1]
    size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    assert size < 5_000_000


@pytest.mark.skipif(not CLIPART.is_dir(), reason="the clipart data set is not here")
def test_load_clipart_mini_keeps_source_rows_and_modes():
    mini = load_clipart_mini()
    full = load_clipart(CLIPART).set_index("id")

    source = full.loc[mini["id"]]
    assert source["text"].tolist() == mini["text"].tolist()
    assert source["label"].tolist() == mini["label"].tolist()
    assert source["split"].tolist() == mini["split"].tolist()
    for small, original in zip(mini["image"], source["image"]):
        with Image.open(small) as a, Image.open(original) as b:
            assert a.mode == b.mode
            assert a.has_transparency_data == b.has_transparency_data


# docstrings ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "module", ["_clipart", "_csv", "_hateful_memes", "_snli_ve", "_vqa"]
)
def test_docstring_examples(module):
    imported = importlib.import_module(f"multimodal_clf.datasets.{module}")

    result = doctest.testmod(imported, optionflags=doctest.NORMALIZE_WHITESPACE)

    assert result.failed == 0


def test_load_csv_keeps_ids_as_written(tmp_path):
    (tmp_path / "a.png").write_bytes(b"")
    (tmp_path / "rows.csv").write_text(
        "id,text,image,label\n00023,hello,a.png,1\n00110,NA,a.png,0\n"
    )
    frame = load_csv(tmp_path / "rows.csv")
    assert frame["id"].tolist() == ["00023", "00110"]
    assert frame["text"].tolist() == ["hello", "NA"]
    assert frame["label"].tolist() == [1, 0]
    assert frame["label"].dtype.kind == "i"


# Values of the wrong type in a record -----------------------------------------


@pytest.mark.parametrize(
    "key, value, shown",
    [("text", None, "null"), ("text", 7, "int 7"), ("img", None, "null")],
)
def test_hateful_memes_value_that_is_not_a_string(memes, key, value, shown):
    write_jsonl(memes / "train.jsonl", [MEMES[0], {**MEMES[1], key: value}])

    with pytest.raises(
        ValueError, match=f"line 2: '{key}' must be a string, got {shown}"
    ):
        load_hateful_memes(memes)


def test_hateful_memes_label_outside_0_and_1(memes):
    write_jsonl(memes / "train.jsonl", [{**MEMES[0], "label": 2}])

    with pytest.raises(ValueError, match=r"'label' must be an integer \(0 or 1\)"):
        load_hateful_memes(memes)


def test_snli_ve_hypothesis_that_is_not_a_string(snli):
    write_jsonl(snli / "snli_ve_train.jsonl", [{**SNLI[0], "sentence2": None}])

    with pytest.raises(ValueError, match="line 1: 'sentence2' must be a string"):
        load_snli_ve(snli)


def test_vqa_v2_question_that_is_not_a_string(tmp_path):
    write_vqa(tmp_path, "train", [(1, 9, None, "yes"), *QUESTIONS[1:]])

    with pytest.raises(ValueError, match=r"questions\[0\]: 'question' must be a"):
        load_vqa_v2(tmp_path)


def test_csv_labels_that_merge_as_numbers_stay_text(tmp_path):
    (tmp_path / "codes.csv").write_text("text,label\na,01\nb,1\nc,2\n")

    frame = load_csv(tmp_path / "codes.csv", image_column=None)

    assert frame["label"].tolist() == ["01", "1", "2"]
