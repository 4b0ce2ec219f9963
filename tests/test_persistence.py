"""Saving, loading, pickling and checkpointing fitted estimators."""

import copy
import errno
import json
import os
import pickle
import shutil
import socket
import warnings
from pathlib import Path

import joblib
import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

import multimodal_clf
from multimodal_clf import MultimodalClassifier, TextClassifier
from multimodal_clf import persistence as persistence_module
from multimodal_clf.engine import Trainer
from multimodal_clf.exceptions import CheckpointError, NotFittedError
from tests.conftest import TEXTS

FAST = dict(epochs=2, batch_size=4, random_state=0, verbose=0, device="cpu")


def text_clf(backbone, **kwargs):
    return TextClassifier(backbone, **{**FAST, **kwargs})


def mm_clf(backbone, **kwargs):
    return MultimodalClassifier(
        backbone, **{**FAST, "head_hidden_size": 8, "head_dropout": 0.2, **kwargs}
    )


@pytest.fixture
def no_network(monkeypatch):
    """Make any attempt to open a network connection fail the test."""

    def refuse(*args, **kwargs):
        raise AssertionError("network access attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.fixture(scope="module")
def fitted_text_once(bert):
    return text_clf(bert).fit(TEXTS, ["pos", "neg"] * 4)


@pytest.fixture
def fitted_text(fitted_text_once):
    """A fitted estimator that a test may change: a copy of one fitted once."""
    return copy.deepcopy(fitted_text_once)


def assert_same_predictions(a, b, X):
    np.testing.assert_allclose(a.predict_proba(X), b.predict_proba(X), atol=1e-6)
    np.testing.assert_array_equal(a.predict(X), b.predict(X))


def saved_files(folder):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def edit_manifest(folder, change):
    path = Path(folder) / "multimodal_clf.json"
    manifest = json.loads(path.read_text())
    change(manifest)
    path.write_text(json.dumps(manifest))


# --- round trips ------------------------------------------------------------------
def test_text_round_trip_without_original_backbone_or_network(
    bert, text_data, tmp_path, monkeypatch, no_network
):
    X, y = text_data
    copy = tmp_path / "bert-copy"
    shutil.copytree(bert, copy)
    clf = text_clf(str(copy)).fit(X, y)
    expected = clf.predict_proba(X)
    clf.save(tmp_path / "model")
    shutil.rmtree(copy)

    loaded = TextClassifier.load(tmp_path / "model")

    np.testing.assert_allclose(loaded.predict_proba(X), expected, atol=1e-6)
    np.testing.assert_array_equal(loaded.predict(X), clf.predict(X))
    assert loaded.classes_.dtype == clf.classes_.dtype
    np.testing.assert_array_equal(loaded.classes_, ["neg", "pos"])
    assert loaded.history_ == clf.history_
    assert loaded.n_iter_ == 2 and loaded.interrupted_ is False
    assert loaded.get_params() == clf.get_params()
    # the tokenizer came from the saved folder and still works on new text
    assert loaded.predict(["a brand new text"]).shape == (1,)


def test_saved_folder_holds_only_json_safetensors_and_tokenizer_text(
    fitted_text, tmp_path
):
    fitted_text.save(tmp_path / "model")
    files = saved_files(tmp_path / "model")
    assert files == [
        "backbone/config.json",
        "backbone/tokenizer.json",
        "backbone/tokenizer_config.json",
        "model.safetensors",
        "multimodal_clf.json",
    ]
    for name in files:
        head = (tmp_path / "model" / name).read_bytes()[:2]
        assert head[:1] != b"\x80" and head != b"PK", f"{name} looks like a pickle"
    weights = load_file(str(tmp_path / "model" / "model.safetensors"))
    assert set(weights) == set(fitted_text.model_.state_dict())
    assert any(k.startswith("backbone.encoder.") for k in weights)
    assert any(k.startswith("head.") for k in weights)
    manifest = json.loads((tmp_path / "model" / "multimodal_clf.json").read_text())
    assert manifest["format_version"] == persistence_module.FORMAT_VERSION
    assert manifest["library_version"] == multimodal_clf.__version__
    assert manifest["estimator"] == "TextClassifier"
    assert manifest["classes"] == {"dtype": "<U3", "values": ["neg", "pos"]}


@pytest.mark.parametrize(
    "labels, dtype",
    [
        ([1, 0, 1, 0, 2, 0, 1, 2], np.int64),
        ([1.0, 2.0, 1.0, 2.0, 1.0, 2.0, 1.0, 2.0], np.float64),
        ([True, False] * 4, np.bool_),
    ],
)
def test_label_types_come_back(bert, tmp_path, labels, dtype):
    clf = text_clf(bert, epochs=1).fit(TEXTS, labels)
    clf.save(tmp_path / "model")
    loaded = multimodal_clf.load(tmp_path / "model")
    assert loaded.classes_.dtype == dtype
    np.testing.assert_array_equal(loaded.classes_, clf.classes_)
    predicted = loaded.predict(TEXTS)
    assert predicted.dtype == dtype
    np.testing.assert_array_equal(predicted, clf.predict(TEXTS))


@pytest.mark.parametrize(
    "backbone, modalities, fusion",
    [
        ("clip", ("text", "image"), "concat"),
        ("clip", ("image",), "product"),
        ("flava", ("text", "image"), "concat"),
        ("vilt", ("text", "image"), "concat"),
        ("vilt", ("text",), "concat"),
        ("pair", ("text", "image"), "late"),
        ("pair", ("text",), "concat"),
        ("pair", ("image",), "concat"),
    ],
)
def test_multimodal_round_trip(
    request, pair_data, tmp_path, no_network, backbone, modalities, fusion
):
    X, y = pair_data
    clf = mm_clf(request.getfixturevalue(backbone), modalities=modalities)
    clf.set_params(fusion=fusion, epochs=1, batch_size=8)
    if fusion != "concat" and len(modalities) == 1:  # still a head to save
        with pytest.warns(UserWarning, match="has nothing to fuse"):
            clf.fit(X, y)
    else:
        clf.fit(X, y)
    clf.save(tmp_path / "model")

    loaded = MultimodalClassifier.load(tmp_path / "model")

    assert_same_predictions(clf, loaded, X)
    assert loaded.get_params() == clf.get_params()
    assert type(loaded.model_.backbone) is type(clf.model_.backbone)
    if "image" in modalities:
        assert loaded.image_processor_ is not None
    if backbone == "pair":
        folders = {p.name for p in (tmp_path / "model").iterdir() if p.is_dir()}
        expected = {"text": "backbone-text", "image": "backbone-image"}
        assert folders == {expected[m] for m in modalities}


def test_frozen_backbone_round_trip_uses_the_feature_path(bert, text_data, tmp_path):
    X, y = text_data
    clf = text_clf(bert, freeze_backbone=True, cache_features=False).fit(X, y)
    clf.save(tmp_path / "model")
    loaded = TextClassifier.load(tmp_path / "model")
    assert loaded.model_.frozen_features() == ["text"]
    assert_same_predictions(clf, loaded, X)


def test_loaded_estimator_trains_on_with_warm_start(fitted_text, text_data, tmp_path):
    X, y = text_data
    fitted_text.save(tmp_path / "model")
    loaded = TextClassifier.load(tmp_path / "model")
    before = loaded.predict_proba(X)
    loaded.set_params(warm_start=True, epochs=1, learning_rate=1e-3).fit(X, y)
    assert np.abs(loaded.predict_proba(X) - before).max() > 1e-4
    fitted_text.set_params(warm_start=True, epochs=1, learning_rate=1e-3).fit(X, y)
    assert_same_predictions(fitted_text, loaded, X)


def test_tied_weights_are_stored_once_and_tied_again(tmp_path):
    from multimodal_clf.engine._checkpoint import load_tensors, save_tensors

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Embedding(10, 4), torch.nn.Linear(4, 10))
    model[1].weight = model[0].weight
    aliases = save_tensors(tmp_path / "w.safetensors", model.state_dict())
    assert aliases == {"1.weight": "0.weight"}
    assert sorted(load_file(str(tmp_path / "w.safetensors"))) == ["0.weight", "1.bias"]

    fresh = torch.nn.Sequential(torch.nn.Embedding(10, 4), torch.nn.Linear(4, 10))
    fresh[1].weight = fresh[0].weight
    persistence_module._assign_weights(
        fresh, load_tensors(tmp_path / "w.safetensors", aliases)
    )
    assert fresh[1].weight is fresh[0].weight
    torch.testing.assert_close(fresh.state_dict(), model.state_dict())


def test_params_of_every_json_kind_round_trip(pair_data, tmp_path, vilt):
    X, y = pair_data
    state = np.random.RandomState(7)
    clf = mm_clf(
        vilt,
        class_weight={"pos": 2.0, "neg": 0.5},
        image_root=tmp_path,
        random_state=state,
        device=torch.device("cpu"),
        modalities=["text", "image"],
        epochs=1,
    ).fit(X, y)
    clf.save(tmp_path / "model")
    loaded = MultimodalClassifier.load(tmp_path / "model")
    params, original = loaded.get_params(), clf.get_params()
    assert params["class_weight"] == {"pos": 2.0, "neg": 0.5}
    assert params["image_root"] == Path(tmp_path)
    assert params["device"] == torch.device("cpu")
    assert params["modalities"] == ["text", "image"]
    assert params["random_state"].randint(10**9) == state.randint(10**9)
    del params["random_state"], original["random_state"]
    assert params == original


def test_int_keyed_class_weight_round_trips(bert, tmp_path):
    labels = [1, 0, 1, 0, 1, 0, 1, 0]
    clf = text_clf(bert, epochs=1, class_weight={0: 2.0, 1: 1.0}).fit(TEXTS, labels)
    clf.save(tmp_path / "model")
    assert TextClassifier.load(tmp_path / "model").class_weight == {0: 2.0, 1: 1.0}


def test_non_json_parameter_is_refused(fitted_text, tmp_path):
    fitted_text.set_params(random_state=np.random.default_rng(0))
    with pytest.raises(
        TypeError, match=r"parameter random_state is a Generator .*set_params"
    ):
        fitted_text.save(tmp_path / "model")
    assert not (tmp_path / "model").exists()
    assert not list(tmp_path.iterdir())


def test_save_before_fit_is_an_error(bert, tmp_path):
    with pytest.raises(NotFittedError, match="not fitted yet"):
        text_clf(bert).save(tmp_path / "model")


def test_pair_folders_must_match_the_modalities(pair, pair_data, tmp_path):
    X, y = pair_data
    mm_clf(pair, modalities=("text",), epochs=1).fit(X, y).save(tmp_path / "m")
    edit_manifest(tmp_path / "m", lambda m: m["backbone"].update(spec=[None, None]))
    with pytest.raises(CheckpointError, match=r"do not match modalities=\('text',\)"):
        multimodal_clf.load(tmp_path / "m")


def test_load_checks_the_device_it_is_given(fitted_text, tmp_path):
    fitted_text.save(tmp_path / "model")
    with pytest.raises(ValueError, match="load\\(device=...\\): allowed: 'auto'"):
        multimodal_clf.load(tmp_path / "model", device="gpu")


def test_wrong_class_or_unknown_estimator_is_refused(fitted_text, tmp_path):
    fitted_text.save(tmp_path / "model")
    with pytest.raises(CheckpointError, match="not a MultimodalClassifier.*Text"):
        MultimodalClassifier.load(tmp_path / "model")
    edit_manifest(tmp_path / "model", lambda m: m.update(estimator="os.system"))
    with pytest.raises(CheckpointError, match="does not know"):
        multimodal_clf.load(tmp_path / "model")


# --- devices ------------------------------------------------------------------------
def test_model_saved_for_a_missing_gpu_loads_on_the_cpu(
    fitted_text, text_data, tmp_path, monkeypatch
):
    X, _ = text_data
    expected = fitted_text.predict_proba(X)
    fitted_text.set_params(device="cuda:0", precision="fp16")
    fitted_text.save(tmp_path / "model")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)

    with pytest.warns(UserWarning) as caught:
        loaded = TextClassifier.load(tmp_path / "model")

    messages = sorted(str(w.message) for w in caught)
    assert len(messages) == 2
    assert "saved with device='cuda:0', which this machine does not" in messages[0]
    assert "saved with precision='fp16', which needs a CUDA GPU" in messages[1]
    assert loaded.device == "auto" and loaded.precision == "auto"
    np.testing.assert_allclose(loaded.predict_proba(X), expected, atol=1e-6)

    # A device chosen at load time gets the same fall-back from fp16.
    with pytest.warns(UserWarning, match="precision='fp16', which needs a CUDA"):
        chosen = TextClassifier.load(tmp_path / "model", device="cpu")
    assert (chosen.device, chosen.precision) == ("cpu", "auto")
    np.testing.assert_allclose(chosen.predict_proba(X), expected, atol=1e-6)
    with pytest.raises(ValueError, match=r"load\(device='cuda'\): "):
        TextClassifier.load(tmp_path / "model", device="cuda")


# --- safety -------------------------------------------------------------------------
class _Payload:
    """Unpickling this creates a folder: proof that code ran."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def test_planted_pickles_are_never_read(fitted_text, text_data, tmp_path):
    X, _ = text_data
    marker = tmp_path / "code-ran"
    payload = pickle.dumps(_Payload(marker))
    pickle.loads(payload)  # the payload is live ...
    assert marker.is_dir()
    marker.rmdir()  # ... and is armed again

    folder = tmp_path / "model"
    fitted_text.save(folder)
    torch.save({"weights": _Payload(marker)}, folder / "backbone" / "pytorch_model.bin")
    torch.save({"weights": _Payload(marker)}, folder / "pytorch_model.bin")
    (folder / "evil.pkl").write_bytes(payload)
    (folder / "backbone" / "training_args.bin").write_bytes(payload)

    loaded = multimodal_clf.load(folder)
    assert_same_predictions(fitted_text, loaded, X)
    assert not marker.exists()

    # without the safetensors weights, a pickled weights file is no substitute
    (folder / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match="weights file is missing"):
        multimodal_clf.load(folder)
    assert not marker.exists()


def test_remote_code_in_a_saved_config_is_not_run(fitted_text, tmp_path):
    folder = tmp_path / "model"
    fitted_text.save(folder)
    marker = tmp_path / "code-ran"
    (folder / "backbone" / "evil_model.py").write_text(
        f"import os\nos.mkdir({str(marker)!r})\n"
    )
    config = json.loads((folder / "backbone" / "config.json").read_text())
    config["auto_map"] = {
        "AutoConfig": "evil_model.EvilConfig",
        "AutoModel": "evil_model.EvilModel",
    }
    (folder / "backbone" / "config.json").write_text(json.dumps(config))
    try:
        multimodal_clf.load(folder)
    except CheckpointError as error:
        assert "configs" in str(error)
    assert not marker.exists()


@pytest.mark.parametrize(
    "change, message",
    [
        (
            lambda m: m["params"].update(
                class_weight={"__class__": "os.system", "args": ["touch x"]}
            ),
            "unexpected key '__class__'",
        ),
        (
            lambda m: m["params"].update(backbone={"$import": "os.system"}),
            r"unknown or malformed tagged value '\$import'",
        ),
        (
            lambda m: m["params"].update(
                random_state={"py/object": "numpy.random.RandomState"}
            ),
            r"(?s)holds invalid parameters.*random_state: allowed None",
        ),
        (
            lambda m: m["params"].update(__reduce__="os.system"),
            "unexpected key '__reduce__'",
        ),
        (
            lambda m: m["params"].update(shell="rm -rf /"),
            r"parameters \['shell'\] that TextClassifier does not have",
        ),
        (
            lambda m: m["params"].update(device={"$device": "cuda; rm -rf /"}),
            r"malformed tagged value '\$device'",
        ),
        (
            lambda m: m["backbone"].update(spec="../../elsewhere"),
            "unexpected backbone layout",
        ),
        (
            lambda m: m["classes"].update(dtype="O"),
            "classes of dtype object cannot be loaded",
        ),
        (lambda m: m.update(format="pickle"), "does not describe"),
        (
            lambda m: m.update(estimator={"$class": "os.system"}),
            "names no estimator class",
        ),
    ],
)
def test_malicious_or_edited_manifest_is_refused(
    fitted_text, tmp_path, change, message
):
    fitted_text.save(tmp_path / "model")
    edit_manifest(tmp_path / "model", change)
    with pytest.raises(CheckpointError, match=message):
        multimodal_clf.load(tmp_path / "model")


# --- loading errors -----------------------------------------------------------------
def test_loading_something_that_is_not_a_saved_model(tmp_path, bert):
    with pytest.raises(CheckpointError, match="does not exist"):
        multimodal_clf.load(tmp_path / "nothing-here")
    (tmp_path / "file.txt").write_text("hello")
    with pytest.raises(CheckpointError, match="is a file, not a folder"):
        multimodal_clf.load(tmp_path / "file.txt")
    with pytest.raises(CheckpointError, match="no multimodal_clf.json"):
        multimodal_clf.load(bert)
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "multimodal_clf.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="is not valid JSON"):
        multimodal_clf.load(tmp_path / "broken")
    assert issubclass(CheckpointError, ValueError)


def test_missing_files_are_named(fitted_text, tmp_path):
    fitted_text.save(tmp_path / "model")
    (tmp_path / "model" / "backbone" / "tokenizer.json").unlink()
    with pytest.raises(CheckpointError, match="missing from backbone/: tokenizer.json"):
        multimodal_clf.load(tmp_path / "model")


def test_newer_format_is_refused(fitted_text, tmp_path):
    fitted_text.save(tmp_path / "model")
    edit_manifest(tmp_path / "model", lambda m: m.update(format_version=99))
    with pytest.raises(CheckpointError, match="format 99.*reads formats up to 1.*Upg"):
        multimodal_clf.load(tmp_path / "model")


def test_weights_that_do_not_fit_the_config_are_refused(fitted_text, tmp_path):
    folder = tmp_path / "model"
    fitted_text.save(folder)
    config_path = folder / "backbone" / "config.json"
    config = json.loads(config_path.read_text())
    config["intermediate_size"] = 40
    config_path.write_text(json.dumps(config))
    with pytest.raises(
        CheckpointError, match=r"intermediate.dense.weight has shape \(37, 32\) in"
    ):
        multimodal_clf.load(folder)

    fitted_text.save(folder)
    weights = load_file(str(folder / "model.safetensors"))
    del weights["head.mlp.1.bias"]
    save_file(weights, str(folder / "model.safetensors"))
    with pytest.raises(CheckpointError, match=r"1 missing \(e.g. \['head.mlp.1.bias"):
        multimodal_clf.load(folder)

    (folder / "model.safetensors").write_bytes(b"not safetensors at all")
    with pytest.raises(CheckpointError, match="cannot be read as safetensors"):
        multimodal_clf.load(folder)


# --- atomic saving ------------------------------------------------------------------
def test_failed_save_leaves_the_earlier_save_intact(
    bert, text_data, tmp_path, monkeypatch
):
    X, y = text_data
    first = text_clf(bert, epochs=1).fit(X, y)
    first.save(tmp_path / "model")
    before = saved_files(tmp_path / "model")
    second = text_clf(bert, epochs=3, learning_rate=1e-3).fit(X, y)
    assert np.abs(second.predict_proba(X) - first.predict_proba(X)).max() > 1e-3

    def broken(path, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(persistence_module, "save_tensors", broken)
    with pytest.raises(OSError) as raised:
        second.save(tmp_path / "model")
    monkeypatch.undo()
    # The target and the reason, not the temporary folder that was removed.
    assert raised.value.errno == errno.ENOSPC
    assert str(raised.value) == (
        f"[Errno {errno.ENOSPC}] cannot save to {tmp_path / 'model'}: writing "
        f"failed (No space left on device); nothing was changed at "
        f"{tmp_path / 'model'}. Check the free space and the permissions of its "
        "folder."
    )

    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]
    assert saved_files(tmp_path / "model") == before
    assert_same_predictions(first, multimodal_clf.load(tmp_path / "model"), X)

    second.save(tmp_path / "model")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]
    assert_same_predictions(second, multimodal_clf.load(tmp_path / "model"), X)


def test_save_never_replaces_a_folder_of_other_files(fitted_text, tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="not a folder written by save"):
        fitted_text.save(tmp_path)
    assert (tmp_path / "notes.txt").read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]
    (tmp_path / "empty").mkdir()
    fitted_text.save(tmp_path / "empty")
    assert (tmp_path / "empty" / "multimodal_clf.json").is_file()


def test_save_under_a_file_names_the_file(fitted_text, tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    target = tmp_path / "notes.txt" / "runs" / "model"
    with pytest.raises(NotADirectoryError) as raised:
        fitted_text.save(target)
    assert str(raised.value) == (
        f"[Errno {errno.ENOTDIR}] cannot save to {target}: "
        f"{tmp_path / 'notes.txt'} is a file, not a folder. Choose another path."
    )
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_save_where_no_folder_can_be_made(fitted_text, tmp_path, monkeypatch):
    def refuse(self, *args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied", str(self))

    monkeypatch.setattr(Path, "mkdir", refuse)
    with pytest.raises(PermissionError, match=r"creating the folder .* failed"):
        fitted_text.save(tmp_path / "new" / "model")


# --- pickle and joblib ----------------------------------------------------------------
def test_pickle_and_joblib_round_trip(fitted_text, text_data, tmp_path):
    X, _ = text_data
    copy = pickle.loads(pickle.dumps(fitted_text))
    assert_same_predictions(fitted_text, copy, X)
    assert next(copy.model_.parameters()).device.type == "cpu"
    assert (
        copy.tokenizer_("a dog")["input_ids"]
        == fitted_text.tokenizer_("a dog")["input_ids"]
    )
    joblib.dump(fitted_text, tmp_path / "model.joblib")
    assert_same_predictions(fitted_text, joblib.load(tmp_path / "model.joblib"), X)


def test_pickle_of_a_multimodal_estimator(clip, pair_data):
    X, y = pair_data
    clf = mm_clf(clip).fit(X, y)
    assert_same_predictions(clf, pickle.loads(pickle.dumps(clf)), X)


@pytest.mark.slow
@pytest.mark.multiprocess
def test_grid_search_in_two_processes(bert, text_data):
    from sklearn.model_selection import GridSearchCV

    X, y = text_data
    search = GridSearchCV(
        text_clf(bert, epochs=1),
        {"learning_rate": [1e-4, 1e-3]},
        cv=2,
        n_jobs=2,
    ).fit(X, y)
    serial = GridSearchCV(
        text_clf(bert, epochs=1), {"learning_rate": [1e-4, 1e-3]}, cv=2, n_jobs=1
    ).fit(X, y)
    np.testing.assert_allclose(
        search.cv_results_["mean_test_score"], serial.cv_results_["mean_test_score"]
    )
    assert search.best_estimator_.predict(X).shape == (8,)


# --- checkpoints during fit ---------------------------------------------------
def crash_in_epoch(monkeypatch, epoch):
    """Make training fail when ``epoch`` (1-based) starts, as a crash would."""
    original = Trainer.train_epoch

    def train_epoch(self, data):
        if self.epoch + 1 == epoch:
            raise RuntimeError("simulated crash")
        return original(self, data)

    monkeypatch.setattr(Trainer, "train_epoch", train_epoch)


CHECKPOINTED = dict(
    epochs=3,
    early_stopping=True,
    validation_fraction=0.25,
    patience=5,
    learning_rate=5e-4,
)


def test_resume_gives_the_uninterrupted_result(bert, text_data, tmp_path, monkeypatch):
    X, y = text_data
    straight = text_clf(bert, **CHECKPOINTED).fit(X, y)

    folder = tmp_path / "ckpt"
    crash_in_epoch(monkeypatch, 3)
    with pytest.raises(RuntimeError, match="simulated crash"):
        text_clf(bert, **CHECKPOINTED, checkpoint_dir=folder).fit(X, y)
    monkeypatch.undo()
    assert sorted(p.name for p in folder.iterdir()) == ["epoch-0002", "latest.json"]
    assert sorted(p.name for p in (folder / "epoch-0002").iterdir()) == [
        "state.json",
        "tensors.safetensors",
    ]

    resumed = text_clf(bert, **CHECKPOINTED, checkpoint_dir=folder)
    resumed.fit(X, y, resume=True)

    np.testing.assert_allclose(
        resumed.predict_proba(X), straight.predict_proba(X), atol=1e-6
    )
    assert resumed.history_ == straight.history_
    assert [r["epoch"] for r in resumed.history_] == [1, 2, 3]
    assert sorted(p.name for p in folder.iterdir()) == ["epoch-0003", "latest.json"]


def test_resume_reuses_the_seed_of_an_unseeded_run(
    bert, text_data, tmp_path, monkeypatch
):
    X, y = text_data
    unseeded = {**CHECKPOINTED, "random_state": None, "checkpoint_dir": tmp_path}
    crash_in_epoch(monkeypatch, 3)
    with pytest.raises(RuntimeError, match="simulated crash"):
        text_clf(bert, **unseeded).fit(X, y)
    monkeypatch.undo()
    state = json.loads((tmp_path / "epoch-0002" / "state.json").read_text())
    seed = state["state"]["seed"]

    resumed = text_clf(bert, **unseeded).fit(X, y, resume=True)

    # the run it continues is the one an int random_state equal to its seed gives
    straight = text_clf(bert, **CHECKPOINTED, random_state=seed).fit(X, y)
    np.testing.assert_allclose(
        resumed.predict_proba(X), straight.predict_proba(X), atol=1e-6
    )
    assert resumed.history_ == straight.history_


def test_resume_of_a_multimodal_run(clip, pair_data, tmp_path, monkeypatch):
    X, y = pair_data
    straight = mm_clf(clip, epochs=3).fit(X, y)
    crash_in_epoch(monkeypatch, 2)
    with pytest.raises(RuntimeError, match="simulated crash"):
        mm_clf(clip, epochs=3, checkpoint_dir=tmp_path).fit(X, y)
    monkeypatch.undo()
    resumed = mm_clf(clip, epochs=3, checkpoint_dir=tmp_path).fit(X, y, resume=True)
    np.testing.assert_allclose(
        resumed.predict_proba(X), straight.predict_proba(X), atol=1e-6
    )


def test_resume_of_a_finished_run_trains_no_more(bert, text_data, tmp_path):
    X, y = text_data
    first = text_clf(bert, checkpoint_dir=tmp_path).fit(X, y)
    again = text_clf(bert, checkpoint_dir=tmp_path).fit(X, y, resume=True)
    assert again.history_ == first.history_
    assert_same_predictions(first, again, X)


def test_resume_without_a_checkpoint_starts_afresh(bert, text_data, tmp_path):
    X, y = text_data
    with pytest.warns(UserWarning, match="holds no checkpoint yet"):
        fresh = text_clf(bert, checkpoint_dir=tmp_path / "new").fit(X, y, resume=True)
    assert_same_predictions(fresh, text_clf(bert).fit(X, y), X)
    with pytest.warns(UserWarning, match="pass resume=True to continue|Pass resume"):
        text_clf(bert, checkpoint_dir=tmp_path / "new").fit(X, y)


def test_resume_needs_a_checkpoint_dir(bert, text_data):
    with pytest.raises(ValueError, match="resume=True needs checkpoint_dir"):
        text_clf(bert).fit(*text_data, resume=True)


def test_resume_refuses_another_run(bert, text_data, tmp_path):
    X, y = text_data
    text_clf(bert, checkpoint_dir=tmp_path).fit(X, y)
    with pytest.raises(CheckpointError, match="its n_rows is 8, this run's is 6"):
        text_clf(bert, checkpoint_dir=tmp_path).fit(X[:6], y[:6], resume=True)
    with pytest.raises(CheckpointError, match="run of 4 optimizer steps.*has 8"):
        text_clf(bert, checkpoint_dir=tmp_path, batch_size=2).fit(X, y, resume=True)


def test_resume_refuses_other_rows_or_settings(bert, text_data, tmp_path):
    X, y = text_data
    text_clf(bert, checkpoint_dir=tmp_path).fit(X, y)
    with pytest.raises(
        CheckpointError, match="another run: its training rows differ from this run's"
    ):
        text_clf(bert, checkpoint_dir=tmp_path).fit(X[::-1], y[::-1], resume=True)
    with pytest.raises(
        CheckpointError, match="its learning_rate is 2e-05, this run's is 0.01"
    ):
        text_clf(bert, checkpoint_dir=tmp_path, learning_rate=0.01).fit(
            X, y, resume=True
        )
    # Where and how it runs may change: the result is that of the same run.
    resumed = text_clf(bert, checkpoint_dir=tmp_path, verbose=1, cache_features=False)
    resumed.fit(X, y, resume=True)
    np.testing.assert_array_equal(
        resumed.predict_proba(X), text_clf(bert).fit(X, y).predict_proba(X)
    )


def test_resume_names_the_classes_that_differ(bert, text_data, tmp_path):
    X, _ = text_data
    labels = ["animals", "computer", "food", "geography", "people", "recreation"]
    text_clf(bert, epochs=1, checkpoint_dir=tmp_path).fit(X, labels + labels[:2])
    other = ["signs_and_symbols" if y == "people" else y for y in labels + labels[:2]]
    with pytest.raises(CheckpointError) as raised:
        text_clf(bert, checkpoint_dir=tmp_path).fit(X, other, resume=True)
    assert (
        "belongs to another run: its classes differ: only the checkpoint has "
        "['people']; only this run has ['signs_and_symbols']. Resume with"
    ) in str(raised.value)


def test_tampered_checkpoints_are_refused(bert, text_data, tmp_path):
    X, y = text_data
    text_clf(bert, checkpoint_dir=tmp_path).fit(X, y)
    pointer = tmp_path / "latest.json"
    pointer.write_text(json.dumps({"format_version": 1, "checkpoint": "../../etc"}))
    with pytest.raises(CheckpointError, match="bad checkpoint name"):
        text_clf(bert, checkpoint_dir=tmp_path).fit(X, y, resume=True)
    pointer.write_text(json.dumps({"format_version": 7, "checkpoint": "epoch-0002"}))
    with pytest.raises(CheckpointError, match="checkpoint format 7.*Upgrade"):
        text_clf(bert, checkpoint_dir=tmp_path).fit(X, y, resume=True)
    pointer.write_text(json.dumps({"format_version": 1, "checkpoint": "epoch-0002"}))
    state_path = tmp_path / "epoch-0002" / "state.json"
    state = json.loads(state_path.read_text())
    del state["state"]["total_steps"]
    state_path.write_text(json.dumps(state))
    with pytest.raises(CheckpointError, match="malformed training state"):
        text_clf(bert, checkpoint_dir=tmp_path).fit(X, y, resume=True)
    state["state"]["optimizer"] = {"$pickle": "gASV..."}
    state_path.write_text(json.dumps(state))
    with pytest.raises(CheckpointError, match=r"malformed tagged value '\$pickle'"):
        text_clf(bert, checkpoint_dir=tmp_path).fit(X, y, resume=True)


def test_a_bad_checkpoint_dir_fails_before_training(
    bert, text_data, tmp_path, monkeypatch
):
    X, y = text_data
    (tmp_path / "taken").write_text("a file")

    def train(*args, **kwargs):
        raise AssertionError("training started")

    monkeypatch.setattr(Trainer, "fit", train)
    for path in (tmp_path / "taken", tmp_path / "taken" / "checkpoints"):
        clf = text_clf(bert, checkpoint_dir=path)
        with pytest.raises(NotADirectoryError) as raised:
            clf.fit(X, y)
        assert str(raised.value) == (
            f"[Errno {errno.ENOTDIR}] cannot use checkpoint_dir={str(path)!r}: "
            f"{tmp_path / 'taken'} is a file, not a folder. Choose another path."
        )


def test_a_checkpoint_dir_that_refuses_files_fails_before_training(
    bert, text_data, tmp_path, monkeypatch
):
    X, y = text_data

    def refuse(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(Trainer, "fit", lambda *a, **k: pytest.fail("trained"))
    monkeypatch.setattr("tempfile.TemporaryFile", refuse)
    with pytest.raises(PermissionError) as raised:
        text_clf(bert, checkpoint_dir=tmp_path).fit(X, y)
    assert str(raised.value) == (
        f"[Errno {errno.EACCES}] cannot use checkpoint_dir={str(tmp_path)!r}: no "
        "file can be written there (Permission denied). Choose a folder this "
        "process can write to."
    )


def test_checkpoint_state_is_json_and_safetensors(bert, text_data, tmp_path):
    text_clf(bert, checkpoint_dir=tmp_path).fit(*text_data)
    state = json.loads((tmp_path / "epoch-0002" / "state.json").read_text())
    assert state["state"]["epoch"] == 2
    assert [r["epoch"] for r in state["state"]["history"]] == [1, 2]
    tensors = load_file(str(tmp_path / "epoch-0002" / "tensors.safetensors"))
    assert any("exp_avg_sq" in name for name in tensors)
    assert any("['rng']['torch']" in name for name in tensors)


# --- interruption -------------------------------------------------------------
def test_ctrl_c_keeps_a_usable_model(bert, text_data, monkeypatch):
    X, y = text_data
    original = Trainer.optimizer_step
    calls = []

    def optimizer_step(self, *args):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return original(self, *args)

    monkeypatch.setattr(Trainer, "optimizer_step", optimizer_step)
    with pytest.warns(RuntimeWarning, match="interrupted during epoch 2.*can predict"):
        clf = text_clf(bert, epochs=3).fit(X, y)
    assert clf.interrupted_ is True
    assert clf.n_iter_ == 1
    proba = clf.predict_proba(X)
    assert proba.shape == (8, 2) and np.isfinite(proba).all()
    np.testing.assert_allclose(proba.sum(1), 1.0, atol=1e-6)
    assert set(clf.predict(X)) <= {"pos", "neg"}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        monkeypatch.undo()
        clf.score(X, y)
