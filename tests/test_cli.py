"""Tests of the multimodal-clf command: parsing, train, predict, compare, errors."""

import json
import logging
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from sklearn.metrics import accuracy_score, f1_score, log_loss, roc_auc_score

import multimodal_clf
from multimodal_clf import MultimodalClassifier, TextClassifier
from multimodal_clf._aliases import (
    ALIASES,
    SpecError,
    parse_model,
    parse_model_paths,
)
from multimodal_clf.cli import (
    CommandError,
    _freeze_for,
    build_parser,
    main,
    make_estimator,
)

REPO = Path(__file__).resolve().parents[1]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

WORDS = {"pos": ["happy", "glad", "good", "sunny"], "neg": ["sad", "grey", "gloomy"]}


def write_csv(folder, name, n_rows, *, offset=0, labels=True):
    """A CSV of texts, relative image paths (red or blue squares) and labels."""
    folder = Path(folder)
    (folder / "images").mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(offset, offset + n_rows):
        label = "pos" if i % 2 == 0 else "neg"
        words = WORDS[label]
        array = np.zeros((20, 20, 3), dtype=np.uint8)
        array[..., 0 if label == "pos" else 2] = 150 + i
        image = f"images/{i:03d}.png"
        Image.fromarray(array).save(folder / image)
        row = {"id": f"r{i}", "text": f"a {words[i % len(words)]} day {i}"}
        row["image"] = image
        if labels:
            row["label"] = label
        rows.append(row)
    path = folder / name
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


@pytest.fixture
def csv_data(tmp_path):
    train = write_csv(tmp_path / "data", "train.csv", 12)
    test = write_csv(tmp_path / "data", "test.csv", 8, offset=12)
    return train, test


def run_cli(*argv):
    return main([str(arg) for arg in argv])


def csv_args(csv_data, *extra):
    train, test = csv_data
    return ["--dataset", "csv", "--train-file", train, "--eval-file", test, *extra]


FAST = ["--epochs", "1", "--batch-size", "4", "--quiet"]


@pytest.fixture(autouse=True)
def _restore_warnings():
    """main() routes warnings to logging, as a command should; undo it."""
    formatwarning = warnings.formatwarning
    yield
    logging.captureWarnings(False)
    warnings.formatwarning = formatwarning


# --------------------------------------------------------------------------
# Help
# --------------------------------------------------------------------------


@pytest.mark.parametrize("command", [[], ["train"], ["predict"], ["compare"]])
def test_help_of_every_command(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([*command, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: multimodal-clf {' '.join(command)}".rstrip())
    expected = {
        (): ["train", "predict", "compare", "bert-base-uncased"],
        ("train",): [
            "--model",
            "--dataset",
            "--max-rows",
            "MODEL[:MODALITIES]",
            "joint",
        ],
        ("predict",): ["--model-dir", "--input", "proba_<class>"],
        ("compare",): ["--models", "--seeds", "verdict.txt", "--model-path"],
    }[tuple(command)]
    for word in expected:
        assert word in out


def test_python_m_multimodal_clf_help():
    completed = subprocess.run(
        [sys.executable, "-m", "multimodal_clf", "--help"],
        cwd=REPO,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.startswith("usage: multimodal-clf")
    assert "compare" in completed.stdout


# --------------------------------------------------------------------------
# Model specs
# --------------------------------------------------------------------------


def families(table):
    """A stand-in for reading config.json: checkpoint -> family."""
    return lambda checkpoint: table[Path(checkpoint).name]


def test_aliases_name_the_published_checkpoints():
    assert {name: hub_id for name, (hub_id, _) in ALIASES.items()} == {
        "bert": "bert-base-uncased",
        "roberta": "roberta-base",
        "beto": "dccuchile/bert-base-spanish-wwm-cased",
        "clip": "openai/clip-vit-base-patch32",
        "flava": "facebook/flava-full",
        "vilt": "dandelin/vilt-b32-mlm",
    }


def test_parse_aliases_and_modality_suffixes():
    bert = parse_model("bert")
    assert (bert.checkpoints, bert.modalities, bert.is_text_only) == (
        ("bert-base-uncased",),
        ("text",),
        True,
    )
    clip = parse_model("clip:image")
    assert clip.backbone == "openai/clip-vit-base-patch32"
    assert clip.modalities == ("image",)
    assert not clip.is_text_only
    assert parse_model("FLAVA").modalities == ("text", "image")
    assert parse_model("flava").towers() == ("joint",)
    assert parse_model("vilt:text+image").modalities == ("text", "image")


def test_parse_pairs_and_model_paths(tmp_path):
    for name in ("minilm", "dinov2"):
        (tmp_path / name).mkdir()
    paths = parse_model_paths(
        [f"minilm={tmp_path / 'minilm'}", f"DINOv2={tmp_path / 'dinov2'}"]
    )
    read = families({"minilm": "text", "dinov2": "image"})

    fused = parse_model("minilm+dinov2", paths, read_family=read)
    assert fused.backbone == (str(tmp_path / "minilm"), str(tmp_path / "dinov2"))
    assert fused.modalities == ("text", "image")
    assert fused.towers() == ("text", "image")
    image_only = parse_model("minilm+dinov2:image", paths, read_family=read)
    assert image_only.modalities == ("image",)
    assert image_only.name == "minilm+dinov2:image"

    # An alias mapped to a folder keeps its family without reading the config.
    bert_paths = parse_model_paths([f"bert={tmp_path / 'minilm'}"])
    bert = parse_model("bert", bert_paths, read_family=None)
    assert bert.checkpoints == (str(tmp_path / "minilm"),)
    assert bert.is_text_only

    # A local folder given directly.
    folder = parse_model(str(tmp_path / "minilm"), read_family=read)
    assert folder.checkpoints == (str(tmp_path / "minilm"),)
    assert folder.is_text_only


@pytest.mark.parametrize(
    "spec, message",
    [
        ("nosuchmodel", r"unknown model 'nosuchmodel'.*--model-path nosuchmodel="),
        ("berrt", r"unknown model 'berrt'.*Did you mean 'bert'"),
        ("bert:image", r"'bert' is a text encoder, so it cannot read images"),
        ("clip:audio", r"unknown modalities suffix ':audio'"),
        ("clip+bert", r"a pair is TEXT\+IMAGE.*'clip' is a clip model"),
        ("bert+roberta+clip", r"exactly two non-empty parts"),
        ("", r"empty model spec"),
    ],
)
def test_parse_model_errors(spec, message):
    with pytest.raises(SpecError, match=message):
        parse_model(spec, read_family=families({}))


def test_image_encoder_alone_is_refused(tmp_path):
    (tmp_path / "dinov2").mkdir()
    paths = parse_model_paths([f"dinov2={tmp_path / 'dinov2'}"])
    with pytest.raises(SpecError, match=r"'dinov2' is an image encoder.*TEXT\+dinov2"):
        parse_model("dinov2", paths, read_family=families({"dinov2": "image"}))


@pytest.mark.parametrize(
    "option, message",
    [
        ("minilm", r"--model-path 'minilm' is not ALIAS=FOLDER"),
        ("a+b=/tmp", r"alias 'a\+b' may not hold"),
        ("minilm=/no/such/folder", r"folder '/no/such/folder' does not exist"),
    ],
)
def test_model_path_errors(option, message):
    with pytest.raises(SpecError, match=message):
        parse_model_paths([option])


def test_real_configs_give_families(bert, clip, pair):
    paths = parse_model_paths([f"tb={bert}", f"tc={clip}", f"tv={pair[1]}"])
    assert parse_model("tb", paths).is_text_only
    assert parse_model("tc", paths).families == ("clip",)
    assert parse_model("tb+tv:image", paths).families == ("text", "image")


def test_estimators_built_from_specs(tmp_path, bert, pair):
    paths = parse_model_paths([f"tb={bert}", f"tv={pair[1]}"])
    args = build_parser().parse_args(
        ["compare", "--models", "x", "--output", "o", "--dataset", "clipart_mini"]
        + ["--freeze", "image", "--fusion", "late", "--epochs", "7"]
        + ["--learning-rate", "1e-4", "--head-learning-rate", "1e-3"]
    )
    text = make_estimator(parse_model("tb", paths), args, verbose=0)
    assert type(text) is TextClassifier
    assert text.get_params()["freeze"] is None  # no image tower to freeze
    assert (text.epochs, text.learning_rate, text.head_learning_rate) == (
        7,
        1e-4,
        1e-3,
    )

    image = make_estimator(parse_model("tb+tv:image", paths), args, random_state=3)
    assert type(image) is MultimodalClassifier
    assert image.backbone == (bert, pair[1])
    assert (image.modalities, image.freeze, image.fusion) == (
        ("image",),
        "image",
        "late",
    )
    assert image.random_state == 3


def test_freeze_keeps_only_the_towers_a_model_has():
    text, clip, flava = parse_model("bert"), parse_model("clip"), parse_model("flava")
    clip_text = parse_model("clip:text")
    assert _freeze_for(text, ["image"]) is None
    assert _freeze_for(text, ["text", "image"]) == "text"
    assert _freeze_for(clip, ["text", "image"]) == ["text", "image"]
    assert _freeze_for(clip_text, ["image"]) is None
    assert _freeze_for(flava, ["image"]) is None
    assert _freeze_for(flava, ["joint"]) == "joint"
    assert _freeze_for(clip, 4) == 4
    # Names that are not towers are passed on; the estimator checks them.
    assert _freeze_for(text, ["encoder.layer.0"]) == "encoder.layer.0"


# --------------------------------------------------------------------------
# train
# --------------------------------------------------------------------------


def test_train_writes_metrics_that_match_a_direct_fit(tmp_path, csv_data, bert):
    out = tmp_path / "runs" / "tiny"
    code = run_cli(
        "train",
        "--model",
        "tb",
        "--model-path",
        f"tb={bert}",
        "--output",
        out,
        "--seed",
        "5",
        *FAST,
        *csv_args(csv_data),
    )
    assert code == 0
    record = json.loads((out / "metrics.json").read_text())
    assert set(record["metrics"]) == {"accuracy", "f1", "roc_auc", "log_loss"}
    for name in ("accuracy", "f1", "roc_auc"):
        assert 0 <= record["metrics"][name] <= 1
    assert record["metrics"]["log_loss"] > 0
    assert (record["n_train"], record["n_eval"]) == (12, 8)
    assert record["classes"] == ["neg", "pos"]
    assert record["estimator"] == "TextClassifier"
    assert record["eval_split"] == "test.csv"
    assert record["params"]["random_state"] == 5
    assert record["params"]["epochs"] == 1

    # The same estimator fitted directly gives the same numbers.
    train, test = (pd.read_csv(path) for path in csv_data)
    direct = TextClassifier(bert, epochs=1, batch_size=4, verbose=0, random_state=5)
    proba = direct.fit(train[["text"]], train["label"]).predict_proba(test[["text"]])
    y = (test["label"] == "pos").astype(int)
    expected = {
        "accuracy": accuracy_score(y, proba.argmax(1)),
        "f1": f1_score(y, proba.argmax(1)),
        "roc_auc": roc_auc_score(y, proba[:, 1]),
        "log_loss": log_loss(y, proba),
    }
    for name, value in expected.items():
        assert record["metrics"][name] == pytest.approx(value, abs=1e-6), name


def test_train_bundled_dataset_with_max_rows(tmp_path, clip, capsys):
    out = tmp_path / "run"
    code = main(
        ["train", "--model", "tc", "--model-path", f"tc={clip}", "--output", str(out)]
        + ["--dataset", "clipart_mini", "--max-rows", "16", "--epochs", "1"]
        + ["--batch-size", "8"]
    )
    assert code == 0
    record = json.loads((out / "metrics.json").read_text())
    assert (record["n_train"], record["n_eval"]) == (16, 16)
    assert record["estimator"] == "MultimodalClassifier"
    assert record["params"]["modalities"] == ["text", "image"]
    # Eight classes, two rows each: the subsample is stratified.
    assert len(record["classes"]) == 8
    assert record["metrics"]["roc_auc"] is not None
    stdout = capsys.readouterr().out
    assert f"accuracy {record['metrics']['accuracy']:.4f}" in stdout


def test_train_csv_held_out_fraction(tmp_path, csv_data, bert):
    out = tmp_path / "run"
    code = run_cli(
        "train",
        "--model",
        "tb",
        "--model-path",
        f"tb={bert}",
        "--output",
        out,
        *FAST,
        "--dataset",
        "csv",
        "--train-file",
        csv_data[0],
        "--eval-fraction",
        "0.25",
        "--image-column",
        "none",
    )
    assert code == 0
    record = json.loads((out / "metrics.json").read_text())
    assert (record["n_train"], record["n_eval"]) == (9, 3)
    assert record["eval_split"] == "held-out 0.25 of train.csv"


def write_memes(root):
    """A Hateful Memes layout: 8 training and 4 dev_seen memes."""
    from tests.test_datasets import write_image, write_jsonl

    for split, ids in (("train", range(8)), ("dev_seen", range(8, 12))):
        records = [
            {"id": i, "img": f"img/{i}.png", "label": i % 2, "text": f"meme {i}"}
            for i in ids
        ]
        for record in records:
            write_image(root / record["img"])
        write_jsonl(root / f"{split}.jsonl", records)
    return root


def write_vqa_splits(root):
    """A VQA v2 layout whose val split has one answer unseen in train."""
    from tests.test_datasets import write_vqa

    root.mkdir(parents=True)
    answers = ["yes", "no", "2"]
    train = [(i, 10 + i % 3, f"question {i}?", answers[i % 3]) for i in range(9)]
    val = [(100 + i, 30, f"other {i}?", answers[i % 3]) for i in range(3)]
    write_vqa(root, "train", train)
    write_vqa(root, "val", val + [(200, 31, "how many?", "7")])
    return root


@pytest.mark.parametrize(
    "dataset, write, eval_split, n_eval, classes",
    [
        ("hateful_memes", write_memes, "dev_seen", 4, [0, 1]),
        ("vqa_v2", write_vqa_splits, "val", 3, ["2", "no", "yes"]),
    ],
)
def test_train_published_layouts(
    tmp_path, bert, dataset, write, eval_split, n_eval, classes
):
    root = write(tmp_path / dataset)
    out = tmp_path / "run"
    argv = ["train", "--model", "tb", "--model-path", f"tb={bert}", "--output", out]
    code = run_cli(*argv, *FAST, "--dataset", dataset, "--data-dir", root)
    assert code == 0
    record = json.loads((out / "metrics.json").read_text())
    assert (record["eval_split"], record["n_eval"]) == (eval_split, n_eval)
    assert record["classes"] == classes
    assert 0 <= record["metrics"]["accuracy"] <= 1


def torchrun_cli(*argv, cwd):
    """Run the command on two CPU ranks under torchrun; return what it printed."""
    completed = subprocess.run(
        [
            sys.executable, "-m", "torch.distributed.run", "--standalone",
            "--nproc_per_node=2", "-m", "multimodal_clf", *map(str, argv),
        ],
        cwd=cwd,
        env={
            "PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1",
            "HF_HUB_OFFLINE": "1",
        },
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr[-5000:]
    return completed.stdout, completed.stderr


@pytest.mark.multiprocess
def test_under_torchrun_rank_zero_alone_prints_and_writes(tmp_path, csv_data, bert):
    run = tmp_path / "run"
    out, err = torchrun_cli(
        "--verbose", "train", "--model", "tb", "--model-path", f"tb={bert}",
        "--output", run, "--epochs", "1", "--batch-size", "2", *csv_args(csv_data),
        cwd=tmp_path,
    )  # fmt: skip

    assert out.count("tb on csv test.csv (8 rows): accuracy") == 1
    assert out.count(f"metrics: {run / 'metrics.json'}") == 1
    assert err.count("epoch 1/1: train_loss=") == 1
    # Log lines (loaders, saving) come from rank 0 alone too.
    assert err.count(f"Loaded 12 rows from {csv_data[0]}") == 1
    assert err.count("INFO: saved TextClassifier to") == 1
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["n_eval"] == 8
    assert sorted(p.name for p in run.iterdir()) == ["metrics.json", "model"]

    new = write_csv(tmp_path / "new", "new.csv", 3, offset=40, labels=False)
    out, err = torchrun_cli(
        "predict", "--model-dir", run, "--input", new, "--output", "-", cwd=tmp_path
    )
    lines = out.splitlines()
    assert lines[0] == "id,prediction,proba_neg,proba_pos"
    assert [line.split(",")[0] for line in lines[1:]] == ["r40", "r41", "r42"]
    expected = multimodal_clf.load(run / "model").predict(pd.read_csv(new))
    assert [line.split(",")[1] for line in lines[1:]] == expected.tolist()


# --------------------------------------------------------------------------
# predict
# --------------------------------------------------------------------------


def test_train_then_predict_round_trip(tmp_path, csv_data, clip, capsys):
    run = tmp_path / "run"
    code = run_cli(
        "train",
        "--model",
        "tc",
        "--model-path",
        f"tc={clip}",
        "--output",
        run,
        *FAST,
        *csv_args(csv_data),
    )
    assert code == 0
    new = write_csv(tmp_path / "new", "new.csv", 5, offset=40, labels=False)
    out = tmp_path / "predictions.csv"
    assert run_cli("predict", "--model-dir", run, "--input", new, "--output", out) == 0

    predictions = pd.read_csv(out)
    assert len(predictions) == 5
    assert list(predictions.columns) == ["id", "prediction", "proba_neg", "proba_pos"]
    assert predictions["id"].tolist() == [f"r{i}" for i in range(40, 45)]
    proba = predictions[["proba_neg", "proba_pos"]].to_numpy()
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-5)
    chosen = np.where(proba[:, 1] > proba[:, 0], "pos", "neg")
    assert predictions["prediction"].tolist() == chosen.tolist()

    capsys.readouterr()
    code = run_cli(
        "predict", "--model-dir", run, "--input", new, "--output", "-",
        "--image-column", "none",
    )  # fmt: skip
    assert code == 2
    assert capsys.readouterr().err.strip() == (
        f"multimodal-clf predict: error: the model in {run} reads images (text, "
        "image), so --image-column cannot be none: name the column of image paths."
    )


def test_predict_to_a_folder_fails_before_loading(tmp_path, capsys, monkeypatch):
    import multimodal_clf as package

    monkeypatch.setattr(package, "load", lambda *a: pytest.fail("loaded"))
    (tmp_path / "run").mkdir()
    code = run_cli(
        "predict", "--model-dir", tmp_path / "run", "--input", tmp_path / "x.csv",
        "--output", tmp_path,
    )  # fmt: skip
    assert code == 2
    assert error_line(capsys) == (
        f"multimodal-clf predict: error: --output {tmp_path} is a folder; pass a "
        "file path, or - for stdout."
    )


def test_warnings_are_one_plain_log_line(caplog):
    from multimodal_clf import cli

    cli._configure_logging(False)
    with caplog.at_level(logging.WARNING):
        warnings.warn("36 of 50 resamples were skipped", UserWarning, stacklevel=1)
    (record,) = caplog.records
    assert record.name == "py.warnings"
    assert record.getMessage() == "UserWarning: 36 of 50 resamples were skipped"


def test_predict_without_saving_support_or_model(tmp_path, capsys):
    data = write_csv(tmp_path, "new.csv", 2, labels=False)
    code = run_cli(
        "predict", "--model-dir", tmp_path / "nope", "--input", data, "--output", "-"
    )
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert err.startswith("multimodal-clf predict: error:")
    assert f"--model-dir {tmp_path / 'nope'}: folder does not exist" in err


# --------------------------------------------------------------------------
# compare
# --------------------------------------------------------------------------


def compare_argv(out, csv_data, bert, clip, *extra):
    return [
        "compare",
        "--models",
        "tb,tc",
        "--model-path",
        f"tb={bert}",
        "--model-path",
        f"tc={clip}",
        "--seeds",
        "2",
        "--n-resamples",
        "50",
        "--name",
        "tiny",
        "--output",
        str(out),
        *FAST,
        *map(str, csv_args(csv_data)),
        *extra,
    ]


def test_compare_writes_every_report_file(tmp_path, csv_data, bert, clip, capsys):
    out = tmp_path / "report"
    assert main(compare_argv(out, csv_data, bert, clip)) == 0

    names = {"results.md", "results.csv", "summary.csv", "results.json"}
    assert names | {"chart.png", "verdict.txt"} <= {p.name for p in out.iterdir()}
    assert (out / "chart.png").read_bytes().startswith(PNG_SIGNATURE)
    runs = pd.read_csv(out / "results.csv")
    assert sorted(zip(runs["model"], runs["seed"])) == [
        ("tb", 0),
        ("tb", 1),
        ("tc", 0),
        ("tc", 1),
    ]
    assert dict(zip(runs["model"], runs["kind"])) == {"tb": "text", "tc": "multimodal"}
    assert runs["accuracy"].between(0, 1).all()
    report = json.loads((out / "results.json").read_text())
    assert (report["n_runs_finished"], report["interrupted"]) == (4, False)
    assert report["metric"] == "roc_auc"
    assert [gain["model"] for gain in report["gains"]] == ["tc"]

    verdict = (out / "verdict.txt").read_text().strip()
    assert verdict == report["verdict"]
    assert verdict.startswith("tiny: ")
    assert "tc vs tb" in verdict
    stdout = capsys.readouterr().out.strip().splitlines()
    assert stdout[-1] == verdict
    assert "| tb | text | 2 |" in "\n".join(stdout)


def test_compare_computes_frozen_image_features_once(tmp_path, csv_data, pair):
    text, vision = pair
    out = tmp_path / "report"
    argv = compare_argv(out, csv_data, text, vision, "--freeze", "image")
    argv[argv.index("tb,tc")] = "tb+tc:image,tb+tc"
    multimodal_clf.clear_feature_cache()
    assert main(argv) == 0

    runs = pd.read_csv(out / "results.csv")
    assert dict(zip(runs["model"], runs["kind"])) == {
        "tb+tc:image": "image",
        "tb+tc": "multimodal",
    }
    # 12 training and 8 evaluation images, looked up by 2 models x 2 seeds: the
    # image-only and the text+image model share the frozen image features.
    cache = multimodal_clf.feature_cache
    assert (cache.misses, cache.hits) == (20, 4 * 20 - 20)


def test_ctrl_c_during_compare_keeps_finished_runs(
    tmp_path, csv_data, bert, clip, monkeypatch, capsys
):
    from multimodal_clf.engine import _loop

    original = _loop.Trainer.train_epoch
    calls = []

    def interrupt_third_fit(self, data):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return original(self, data)

    monkeypatch.setattr(_loop.Trainer, "train_epoch", interrupt_third_fit)
    out = tmp_path / "report"
    assert main(compare_argv(out, csv_data, bert, clip)) == 130

    report = json.loads((out / "results.json").read_text())
    assert report["interrupted"] is True
    assert (report["n_runs_finished"], report["n_runs_planned"]) == (2, 4)
    runs = pd.read_csv(out / "results.csv")
    assert list(zip(runs["model"], runs["seed"])) == [("tb", 0), ("tc", 0)]
    assert "interrupted after 2 of 4 runs" in (out / "verdict.txt").read_text()
    assert "interrupted: 2 of 4 runs finished" in capsys.readouterr().err


# --------------------------------------------------------------------------
# Errors: one line on stderr, exit status 2, no traceback
# --------------------------------------------------------------------------


def error_line(capsys):
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


def test_unknown_alias_exits_2_naming_it(tmp_path, capsys):
    code = run_cli(
        "compare",
        "--models",
        "bert,nosuchmodel",
        "--dataset",
        "clipart_mini",
        "--output",
        tmp_path / "out",
    )
    assert code == 2
    line = error_line(capsys)
    assert line.startswith("multimodal-clf compare: error: unknown model 'nosuchmodel'")
    assert not (tmp_path / "out").exists()


def test_traceback_option_raises_instead(tmp_path):
    with pytest.raises(CommandError, match=r"unknown model 'nosuchmodel'"):
        run_cli(
            "--traceback",
            "train",
            "--model",
            "nosuchmodel",
            "--dataset",
            "clipart_mini",
            "--output",
            tmp_path,
        )


def test_missing_data_dir_exits_2(tmp_path, capsys):
    missing = tmp_path / "no_clipart"
    code = run_cli(
        "train",
        "--model",
        "bert",
        "--dataset",
        "clipart",
        "--data-dir",
        missing,
        "--output",
        tmp_path / "out",
    )
    assert code == 2
    assert f"Clipart folder not found: {missing}" in error_line(capsys)


def test_dataset_needing_data_dir_exits_2(tmp_path, capsys):
    code = run_cli(
        "train", "--model", "clip", "--dataset", "hateful_memes", "--output", tmp_path
    )
    assert code == 2
    assert "--dataset hateful_memes needs --data-dir" in error_line(capsys)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["train", "--model", "bert", "--dataset", "csv"], "--output"),
        (
            ["train", "--model", "b", "--output", "o", "--dataset", "imagenet"],
            "invalid choice: 'imagenet'",
        ),
        (
            ["compare", "--models", "b", "--output", "o", "--dataset", "csv"]
            + ["--epochs", "0"],
            "argument --epochs: expected an integer >= 1, got '0'",
        ),
        (
            ["compare", "--models", "b", "--output", "o", "--dataset", "csv"]
            + ["--seeds", "x"],
            "argument --seeds: expected a count such as 3",
        ),
        (["fit"], "invalid choice: 'fit'"),
    ],
)
def test_bad_options_exit_2_in_one_line(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    line = error_line(capsys)
    assert line.startswith("multimodal-clf")
    assert message in line


def test_estimator_errors_exit_2(tmp_path, csv_data, bert, capsys):
    # A text encoder cannot be trained on a column that is missing.
    code = run_cli(
        "train",
        "--model",
        "tb",
        "--model-path",
        f"tb={bert}",
        "--output",
        tmp_path / "out",
        *FAST,
        *csv_args(csv_data, "--text-column", "caption"),
    )
    assert code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert "no column 'caption' (text_column, --text-column)" in err


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (
            "",
            "is empty. A CSV file needs a header line naming its columns, then one "
            "line per row.",
        ),
        (
            "text,image,label\n",
            "has a header but no data rows. Add one line per row below the header.",
        ),
    ],
)
def test_a_csv_without_rows_is_named(tmp_path, bert, capsys, content, message):
    path = tmp_path / "train.csv"
    path.write_text(content)
    code = run_cli(
        "train", "--model", "tb", "--model-path", f"tb={bert}",
        "--output", tmp_path / "out", *FAST,
        "--dataset", "csv", "--train-file", path,
    )  # fmt: skip
    assert code == 2
    assert error_line(capsys) == f"multimodal-clf train: error: {path} {message}"


def test_eval_labels_missing_from_training_fail_before_training(
    tmp_path, csv_data, bert, capsys, monkeypatch
):
    from multimodal_clf.engine import Trainer

    monkeypatch.setattr(Trainer, "fit", lambda *a, **k: pytest.fail("trained"))
    train, test = csv_data
    frame = pd.read_csv(test)
    frame.loc[[1, 3], "label"] = ["zzz_new", "aaa_new"]
    frame.to_csv(test, index=False)
    code = run_cli(
        "train", "--model", "tb", "--model-path", f"tb={bert}",
        "--output", tmp_path / "out", *FAST, *csv_args(csv_data),
    )  # fmt: skip
    assert code == 2
    assert error_line(capsys) == (
        "multimodal-clf train: error: the evaluation split holds labels that the "
        "training split lacks: aaa_new, zzz_new; nothing was trained. A model "
        "cannot predict a class it never saw: every evaluation label must appear "
        "in the training data."
    )
    assert not (tmp_path / "out").exists()


def test_max_rows_too_few_for_the_classes_says_so(tmp_path, bert, capsys):
    code = run_cli(
        "compare", "--models", "tb", "--model-path", f"tb={bert}",
        "--dataset", "clipart_mini", "--max-rows", "3", "--seeds", "1",
        "--output", tmp_path / "out", *FAST,
    )  # fmt: skip
    assert code == 2
    line = error_line(capsys)
    assert line.startswith(
        "multimodal-clf compare: error: the evaluation split holds labels that the "
        "training split lacks: "
    )
    assert line.endswith(
        "nothing was trained. A model cannot predict a class it never saw: "
        "--max-rows 3 kept too few training rows to hold every class: raise it."
    )


@pytest.mark.parametrize(
    ("command", "extra", "message"),
    [
        (
            ["train", "--model", "tb"],
            ["--fusion", "late"],
            "--fusion applies to text+image models, and tb is text-only; leave it out.",
        ),
        (
            ["compare", "--models", "tb,tb:text"],
            ["--fusion", "product"],
            "--fusion applies to text+image models, and tb, tb:text are text-only; "
            "leave it out.",
        ),
        (
            ["train", "--model", "tb"],
            ["--top-k-answers", "5"],
            "--top-k-answers is for --dataset vqa_v2, not clipart_mini.",
        ),
    ],
)
def test_options_that_would_be_ignored_exit_2(
    tmp_path, bert, capsys, command, extra, message
):
    code = run_cli(
        *command, "--model-path", f"tb={bert}", "--dataset", "clipart_mini",
        "--output", tmp_path / "out", *FAST, *extra,
    )  # fmt: skip
    assert code == 2
    assert error_line(capsys) == f"multimodal-clf {command[0]}: error: {message}"


def test_output_that_is_a_file_fails_before_training(tmp_path, capsys):
    from multimodal_clf import cli

    blocker = tmp_path / "taken"
    blocker.write_text("x")
    code = cli.main(
        [
            "train",
            "--model",
            "bert",
            "--dataset",
            "clipart_mini",
            "--output",
            str(blocker),
        ]
    )
    assert code == 2
    assert f"--output {blocker} is a file" in capsys.readouterr().err


def test_evaluating_on_the_training_split_warns(tmp_path, bert, caplog):
    with caplog.at_level(logging.WARNING):
        code = run_cli(
            "train", "--model", "tb", "--model-path", f"tb={bert}",
            "--output", tmp_path / "run", "--dataset", "clipart_mini",
            "--eval-split", "train", "--max-rows", "8", *FAST,
        )  # fmt: skip
    assert code == 0
    assert [
        r.getMessage() for r in caplog.records if r.name == "multimodal_clf.cli"
    ] == [
        "--eval-split train is the training split: the scores are on the rows the "
        "models were fitted on and overstate how well they generalise."
    ]


@pytest.mark.parametrize(
    "text, seeds",
    [("3", (0, 1, 2)), ("0,7,42", (0, 7, 42)), ("42,", (42,)), ("0,", (0,))],
)
def test_seeds_option_counts_or_lists(text, seeds):
    from multimodal_clf.cli import _seeds

    assert _seeds(text) == seeds


@pytest.mark.parametrize("text", ["0", ",", "1,,2", "4,4", ""])
def test_seeds_option_refuses(text):
    import argparse

    from multimodal_clf.cli import _seeds

    with pytest.raises(argparse.ArgumentTypeError):
        _seeds(text)


def test_predict_on_the_cpu_with_a_model_saved_for_fp16(
    tmp_path, csv_data, bert, monkeypatch
):
    run = tmp_path / "run"
    code = run_cli(
        "train", "--model", "tb", "--model-path", f"tb={bert}", "--output", run,
        *FAST, *csv_args(csv_data),
    )  # fmt: skip
    assert code == 0
    manifest = run / "model" / "multimodal_clf.json"
    saved = json.loads(manifest.read_text())
    saved["params"]["precision"] = "fp16"
    manifest.write_text(json.dumps(saved))
    new = write_csv(tmp_path / "new", "new.csv", 3, offset=40, labels=False)
    out = tmp_path / "predictions.csv"

    # On a machine with a GPU, where the saved device='auto' means CUDA: the
    # device asked for on the command line must still drop fp16.
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    with pytest.warns(UserWarning, match="precision='fp16', which needs a CUDA"):
        code = run_cli(
            "predict", "--model-dir", run, "--input", new, "--output", out,
            "--device", "cpu",
        )  # fmt: skip
    assert code == 0
    monkeypatch.undo()
    expected = multimodal_clf.load(run / "model", device="cpu").predict_proba(
        pd.read_csv(new)
    )
    np.testing.assert_allclose(
        pd.read_csv(out)[["proba_neg", "proba_pos"]].to_numpy(), expected, atol=1e-6
    )
