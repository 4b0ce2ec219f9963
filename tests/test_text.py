"""TextClassifier on tiny BERT and RoBERTa checkpoints: the sklearn contract,
training behaviour, token limits and the errors a user sees."""

import json
import logging
import math
import shutil
import warnings

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.metrics import accuracy_score
from sklearn.model_selection import GridSearchCV, cross_validate
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer

from multimodal_clf import TextClassifier
from multimodal_clf.data._batching import Rows, TokenColumn
from multimodal_clf.engine import Trainer
from multimodal_clf.exceptions import TruncationWarning
from tests import tiny_models
from tests.conftest import LABELS, TEXTS

LONG_TEXT = " ".join(["word"] * 3000)


def make(backbone, **params):
    """A quick CPU classifier; ``params`` override the test defaults."""
    defaults = dict(epochs=1, batch_size=4, verbose=0, device="cpu", random_state=0)
    return TextClassifier(backbone, **{**defaults, **params})


def weights(clf):
    return {k: v.detach().clone() for k, v in clf.model_.state_dict().items()}


def same_weights(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture(params=["bert", "roberta"])
def backbone(request):
    return request.getfixturevalue(request.param)


@pytest.fixture(scope="module")
def short_bert(tmp_path_factory):
    """A BERT whose config allows only 24 positions."""
    folder = tmp_path_factory.mktemp("short") / "bert"
    return tiny_models.bert(folder, max_position_embeddings=24)


@pytest.fixture
def spy_batches(monkeypatch):
    """Record every batch of tensors built from encoded rows."""
    seen = []
    original = Rows.batch

    def batch(self, indices):
        out = original(self, indices)
        seen.append((self, list(indices), out))
        return out

    monkeypatch.setattr(Rows, "batch", batch)
    return seen


# --- labels and probabilities ---------------------------------------------------


def test_string_labels_round_trip(backbone):
    X = TEXTS[:4]
    y = ["pos", "neg", "neu", "pos"]
    clf = make(backbone, epochs=10, learning_rate=3e-3, warmup_ratio=0.0)
    clf.fit(X, y)

    np.testing.assert_array_equal(clf.classes_, np.unique(y))
    assert clf.classes_.dtype == np.asarray(y).dtype
    predicted = clf.predict(X)
    assert predicted.dtype == np.asarray(y).dtype
    # Ten steps at this rate memorise four rows: the labels come back as given.
    assert predicted.tolist() == y
    assert clf.score(X, y) == 1.0

    proba = clf.predict_proba(X)
    assert proba.dtype == np.float32
    assert proba.shape == (4, 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-6)
    # Columns follow classes_: the true class of each row has the top column.
    columns = [clf.classes_.tolist().index(label) for label in y]
    assert (proba.argmax(axis=1) == columns).all()
    np.testing.assert_allclose(
        np.exp(clf.predict_log_proba(X)), proba, rtol=1e-5, atol=1e-7
    )


def test_int_labels_come_back_as_ints(bert):
    y = np.array([3, 1, 3, 1, 7, 1, 3, 7])
    clf = make(bert).fit(TEXTS, y)
    np.testing.assert_array_equal(clf.classes_, [1, 3, 7])
    predicted = clf.predict(TEXTS)
    assert predicted.dtype == y.dtype
    assert set(predicted.tolist()) <= {1, 3, 7}
    assert all(isinstance(v, int) for v in predicted.tolist())
    assert clf.predict_proba(TEXTS).shape == (8, 3)


def test_binary_has_two_columns_and_score_is_accuracy(bert, text_data):
    X, y = text_data
    clf = make(bert, epochs=2).fit(X, y)
    proba = clf.predict_proba(X)
    assert proba.shape == (len(X), 2)
    assert proba.dtype == np.float32
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-6)
    flipped = ["neg" if label == "pos" else "pos" for label in y]
    expected = accuracy_score(flipped, clf.predict(X))
    assert clf.score(X, flipped) == pytest.approx(expected)
    assert clf.score(X, y) == pytest.approx(1 - expected)
    with pytest.raises(
        ValueError, match=r"1 labels not seen during fit:\n  row 0: 'neu'"
    ):
        clf.score(X, ["neu"] + y[1:])


@pytest.mark.parametrize(
    "y", [[0, 1] * 4, [False, True] * 4, [0.0, 1.0] * 4], ids=["int", "bool", "float"]
)
def test_score_takes_a_plain_list_of_labels(bert, y):
    # A list becomes an object array, which sklearn's metrics refuse as
    # "unknown" targets unless score converts it to the labels' own dtype.
    clf = make(bert).fit(TEXTS, y)

    assert clf.score(TEXTS, y) == pytest.approx(accuracy_score(y, clf.predict(TEXTS)))


def test_score_names_labels_of_another_type(bert):
    clf = make(bert).fit(TEXTS, ["0", "1"] * 4)

    with pytest.raises(
        ValueError, match=r"the type the classifier was fitted on \(str\)"
    ):
        clf.score(TEXTS, [0, 1] * 4)
    with pytest.raises(ValueError, match="refit with them.$"):
        clf.score(TEXTS, [0, 2] * 4)


def test_predict_checks_parameters_set_after_fit(bert, text_data):
    X, y = text_data
    clf = make(bert).fit(X, y).set_params(batch_size=-1)

    with pytest.raises(ValueError, match="batch_size: allowed an int >= 1; got -1"):
        clf.predict(X)


def test_freeze_image_on_a_text_encoder_warns(bert, text_data):
    X, y = text_data

    with pytest.warns(UserWarning, match="has no 'image' tower, so that entry"):
        make(bert, freeze="image").fit(X, y)


def test_local_folder_missing_a_part_is_not_called_a_hub_failure(bert):
    from multimodal_clf import MultimodalClassifier

    clf = MultimodalClassifier((bert, bert), epochs=1, verbose=0)

    with pytest.raises(OSError, match="from the local folder") as info:
        clf.fit([("a", np.zeros((8, 8), np.uint8))] * 2, [0, 1])
    assert "not a local folder" not in str(info.value)


# --- sklearn tools --------------------------------------------------------------


def test_grid_search_roc_auc(bert, text_data):
    X, y = text_data
    search = GridSearchCV(
        make(bert),
        {"learning_rate": [1e-4, 1e-3]},
        scoring="roc_auc",
        cv=2,
    )
    search.fit(X, y)
    scores = search.cv_results_["mean_test_score"]
    assert scores.shape == (2,)
    assert np.isfinite(scores).all()
    assert ((scores >= 0) & (scores <= 1)).all()
    assert search.best_params_["learning_rate"] in (1e-4, 1e-3)
    assert search.best_estimator_.predict(X).shape == (len(X),)


def test_cross_validate_and_pipeline(bert, text_data):
    X, y = text_data
    shouted = [text.upper() + "!" for text in X]
    lower = FunctionTransformer(lambda texts: [t.lower() for t in texts])
    pipe = make_pipeline(lower, make(bert))

    result = cross_validate(pipe, shouted, y, cv=2)
    assert result["test_score"].shape == (2,)
    assert np.isfinite(result["test_score"]).all()

    pipe.fit(shouted, y)
    direct = make(bert).fit([t.lower() for t in shouted], y)
    np.testing.assert_array_equal(
        pipe.predict_proba(shouted), direct.predict_proba([t.lower() for t in shouted])
    )


def test_clone_keeps_dict_parameter(bert):
    weights_by_class = {"pos": 2.0, "neg": 0.5}
    clf = make(bert, class_weight=weights_by_class, epochs=4)
    copy = clone(clf)
    assert copy.get_params()["class_weight"] == weights_by_class
    assert copy.get_params() == clf.get_params()

    params = clf.get_params()
    restored = make(bert).set_params(**params)
    assert restored.get_params() == params
    assert make(bert).set_params(epochs=7).epochs == 7


def test_init_loads_nothing(tmp_path):
    missing = tmp_path / "no-such-model"
    clf = TextClassifier(missing, epochs=-3, device="nowhere")
    assert clf.backbone == missing
    assert clf.epochs == -3
    assert not [k for k in vars(clf) if k.endswith("_")]
    assert set(vars(clf)) == set(clf.get_params())
    with pytest.raises(ValueError, match=r"folder .*no-such-model.* does not exist"):
        make(missing).fit(TEXTS, LABELS)


# --- refitting and reproducibility ---------------------------------------------


def test_second_fit_restarts_from_pretrained(bert, text_data):
    X, y = text_data
    X_b = [t + " and more" for t in X[::-1]]
    y_b = y[::-1]

    refit = make(bert, epochs=2, learning_rate=1e-3).fit(X, y)
    after_a = weights(refit)
    refit.fit(X_b, y_b)
    fresh = make(bert, epochs=2, learning_rate=1e-3).fit(X_b, y_b)
    assert not same_weights(after_a, weights(refit))
    assert same_weights(weights(refit), weights(fresh))

    warm = make(bert, epochs=2, learning_rate=1e-3, warm_start=True).fit(X, y)
    model = warm.model_
    warm.fit(X_b, y_b)
    assert warm.model_ is model
    assert not same_weights(weights(warm), weights(fresh))


def test_same_random_state_gives_identical_probabilities(roberta, text_data):
    X, y = text_data
    first = make(roberta, epochs=2).fit(X, y).predict_proba(X)
    second = make(roberta, epochs=2).fit(X, y).predict_proba(X)
    np.testing.assert_array_equal(first, second)
    other = make(roberta, epochs=2, random_state=1).fit(X, y).predict_proba(X)
    assert not np.array_equal(first, other)


# --- token limits and batches ---------------------------------------------------


@pytest.mark.parametrize(("name", "limit"), [("bert", 512), ("roberta", 512)])
def test_long_text_truncated_to_model_limit(request, spy_batches, name, limit):
    backbone = request.getfixturevalue(name)
    X = [LONG_TEXT, *TEXTS[:5]]
    y = ["pos", "neg", "pos", "neg", "pos", "neg"]
    clf = make(backbone, batch_size=2)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        clf.fit(X, y)
    truncation = [w for w in caught if issubclass(w.category, TruncationWarning)]
    assert len(truncation) == 1
    assert f"longer than {limit} tokens" in str(truncation[0].message)

    encoded = spy_batches[0][0].columns["text"]
    assert isinstance(encoded, TokenColumn)
    assert encoded.lengths.max() == limit
    assert encoded.lengths[0] == limit

    widths = []
    for rows, indices, batch in spy_batches:
        ids = batch["input_ids"]
        lengths = rows.columns["text"].lengths[indices]
        # Every batch is padded to its own longest row, not to the limit.
        assert ids.shape[1] == lengths.max()
        assert batch["attention_mask"].sum(1).tolist() == lengths.tolist()
        assert "token_type_ids" not in batch
        widths.append(ids.shape[1])
    assert max(widths) == limit
    assert min(widths) < 20

    with pytest.warns(TruncationWarning, match=f"1 of 2 texts .* {limit} tokens"):
        proba = clf.predict_proba([LONG_TEXT, "short"])
    assert proba.shape == (2, 2)


@pytest.fixture
def transformers_log():
    """Collect what transformers logs at WARNING and above."""
    records = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = records.append
    logger = logging.getLogger("transformers")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.WARNING)
    yield records
    logger.removeHandler(handler)
    logger.setLevel(level)


def test_no_tokenizer_warning_about_long_ids(bert, tmp_path, transformers_log):
    # A tokenizer that declares its length (as real checkpoints do) logs that
    # long ids "will result in indexing errors"; they are truncated, so that
    # message must not reach the user beside the TruncationWarning.
    folder = tmp_path / "bert"
    shutil.copytree(bert, folder)
    config_path = folder / "tokenizer_config.json"
    config = json.loads(config_path.read_text())
    config["model_max_length"] = 512
    config_path.write_text(json.dumps(config))
    clf = make(folder)
    with pytest.warns(TruncationWarning, match="longer than 512 tokens"):
        clf.fit([LONG_TEXT, *TEXTS[:3]], ["pos", "neg", "pos", "neg"])
    assert clf.tokenizer_.model_max_length == 512
    assert not [r for r in transformers_log if "sequence length" in r.getMessage()]


def test_limit_read_from_config(short_bert, spy_batches):
    clf = make(short_bert)
    with pytest.warns(TruncationWarning, match="longer than 24 tokens"):
        clf.fit([LONG_TEXT, *TEXTS[:3]], ["pos", "neg", "pos", "neg"])
    assert spy_batches[0][0].columns["text"].lengths.max() == 24
    with pytest.raises(ValueError, match=r"max_length=25 is above .* limit of 24"):
        make(short_bert, max_length=25).fit(TEXTS, LABELS)


def test_max_length_below_limit_truncates(bert, spy_batches):
    with pytest.warns(TruncationWarning, match="longer than 5 tokens"):
        make(bert, max_length=5).fit(TEXTS, LABELS)
    assert spy_batches[0][0].columns["text"].lengths.max() == 5


def test_roberta_batches_have_no_token_type_ids(roberta, spy_batches, text_data):
    X, y = text_data
    clf = make(roberta, early_stopping=True, validation_fraction=0.25).fit(X, y)
    clf.predict(X)
    assert spy_batches
    assert all("token_type_ids" not in batch for _, _, batch in spy_batches)


# --- weights --------------------------------------------------------------------


def _mean_proba(clf, X, label):
    return clf.predict_proba(X)[:, clf.classes_.tolist().index(label)].mean()


def test_class_and_sample_weights_change_the_loss(bert, text_data):
    X, y = text_data
    params = dict(epochs=3, learning_rate=1e-3)
    plain = make(bert, **params).fit(X, y)

    is_pos = np.array(y) == "pos"
    no_pos = make(bert, **params).fit(X, y, sample_weight=np.where(is_pos, 0.0, 1.0))
    assert _mean_proba(no_pos, X, "pos") < _mean_proba(plain, X, "pos") - 0.05

    zero_pos = make(bert, class_weight={"pos": 0.0, "neg": 1.0}, **params).fit(X, y)
    np.testing.assert_array_equal(zero_pos.predict_proba(X), no_pos.predict_proba(X))

    by_class = make(bert, class_weight={"pos": 3.0}, **params).fit(X, y)
    by_row = make(bert, **params).fit(X, y, sample_weight=np.where(is_pos, 3.0, 1.0))
    np.testing.assert_array_equal(by_class.predict_proba(X), by_row.predict_proba(X))
    assert _mean_proba(by_class, X, "pos") > _mean_proba(plain, X, "pos")


def test_balanced_class_weight(bert):
    X = TEXTS
    y = ["pos", "neg", "neg", "neg", "neg", "neg", "pos", "neg"]
    params = dict(epochs=3, learning_rate=1e-3)
    plain = make(bert, **params).fit(X, y)
    balanced = make(bert, class_weight="balanced", **params).fit(X, y)
    # "balanced" weighs a class n_rows / (n_classes * its count): 8 / 4 for the
    # two "pos" rows, 8 / 12 for the six "neg" rows.
    by_row = make(bert, **params).fit(
        X, y, sample_weight=[8 / 4 if v == "pos" else 8 / 12 for v in y]
    )
    np.testing.assert_array_equal(balanced.predict_proba(X), by_row.predict_proba(X))
    assert _mean_proba(balanced, X, "pos") > _mean_proba(plain, X, "pos")


# --- history --------------------------------------------------------------------


def test_history_per_epoch(bert, text_data):
    X, y = text_data
    clf = make(bert, epochs=3).fit(X, y)
    assert clf.n_iter_ == 3
    assert [r["epoch"] for r in clf.history_] == [1, 2, 3]
    assert all(math.isfinite(r["train_loss"]) for r in clf.history_)
    assert all("valid_loss" not in r for r in clf.history_)

    clf = make(bert, epochs=2, early_stopping=True, validation_fraction=0.25)
    clf.fit(X, y)
    assert clf.n_iter_ == len(clf.history_) == 2
    for record in clf.history_:
        assert math.isfinite(record["valid_loss"]) and record["valid_loss"] > 0
        # Two validation rows: the accuracy is 0, 0.5 or 1.
        assert record["valid_accuracy"] in (0.0, 0.5, 1.0)


def test_early_stopping_counts_epochs_run(bert, text_data, monkeypatch):
    X, y = text_data
    losses = iter([1.0, 2.0, 3.0, 4.0, 5.0])
    monkeypatch.setattr(
        Trainer,
        "evaluate",
        lambda self, data: {"valid_loss": next(losses), "valid_accuracy": 0.5},
    )
    clf = make(bert, epochs=5, early_stopping=True, patience=2)
    clf.fit(X, y)
    # Best at epoch 1, no improvement at 2 and 3: stop after 3 of 5 epochs.
    assert clf.n_iter_ == len(clf.history_) == 3
    assert [r["valid_loss"] for r in clf.history_] == [1.0, 2.0, 3.0]


@pytest.mark.parametrize(
    ("labels", "fraction", "n_train"),
    [(LABELS, 0.9, 1), (["a", "b", "c", "a", "b", "c", "a", "b"], 0.7, 2)],
    ids=["2-classes", "3-classes"],
)
def test_validation_split_leaving_fewer_training_rows_than_classes(
    bert, labels, fraction, n_train
):
    # Too few training rows to hold every class once: the split cannot be
    # stratified, yet the fraction is allowed, so it is drawn at random.
    seen = []
    plain = Trainer.fit

    def recording(self, train, valid=None):
        seen.append((len(train), len(valid)))
        return plain(self, train, valid)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(Trainer, "fit", recording)
        clf = make(bert, early_stopping=True, validation_fraction=fraction)
        clf.fit(TEXTS, labels)
    assert seen == [(n_train, len(TEXTS) - n_train)]
    assert "valid_loss" in clf.history_[0]


# --- errors ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        (float("nan"), r"missing value \(None or NaN\)"),
        (None, r"missing value \(None or NaN\)"),
        (42, "int 42"),
    ],
)
def test_non_string_text_names_rows(bert, bad, reason):
    X = ["fine", bad, "also fine", bad]
    with pytest.raises(ValueError, match=f"row 1: {reason}\n  row 3: {reason}") as e:
        make(bert).fit(X, ["a", "b", "a", "b"])
    message = str(e.value)
    assert message.startswith("2 entries of column 'text' are not strings:")
    assert "row 0" not in message and "row 2" not in message


def test_length_mismatch(bert):
    with pytest.raises(ValueError, match="X has 8 rows, y has 7 labels"):
        make(bert).fit(TEXTS, LABELS[:7])


def test_one_class(bert):
    with pytest.raises(
        ValueError,
        match=r"y holds 1 class \(\[.pos.\]\); a classifier needs at least 2 classes",
    ):
        make(bert).fit(TEXTS, ["pos"] * len(TEXTS))


@pytest.mark.parametrize(
    ("param", "value", "message"),
    [
        (
            "precision",
            "fp64",
            r"precision: allowed one of 'auto', 'fp32', 'bf16', 'fp16'; got 'fp64'",
        ),
        (
            "device",
            "gpu",
            r"device: allowed 'auto', 'cpu', 'cuda', 'cuda:<index>' or 'mps'; "
            r"got 'gpu'",
        ),
        ("epochs", -1, r"epochs: allowed an int >= 1; got -1"),
        (
            "validation_fraction",
            1.0,
            r"validation_fraction: allowed a float in \[0, 1\); got 1.0",
        ),
        (
            "validation_fraction",
            -0.1,
            r"validation_fraction: allowed a float in \[0, 1\); got -0.1",
        ),
    ],
)
def test_bad_parameter(bert, param, value, message):
    with pytest.raises(ValueError, match=message):
        make(bert, **{param: value}).fit(TEXTS, LABELS)


def test_bad_parameters_reported_together(bert):
    clf = make(bert, epochs=0, precision="fp23", device="tpu")
    with pytest.raises(ValueError, match="Invalid parameters for TextClassifier") as e:
        clf.fit(TEXTS, LABELS)
    message = str(e.value)
    assert "epochs: allowed an int >= 1; got 0" in message
    assert "precision: allowed one of" in message and "Did you mean 'fp32'?" in message
    assert "device: allowed" in message and "got 'tpu'" in message


def test_backbone_folder_errors(tmp_path):
    missing = tmp_path / "absent"
    with pytest.raises(ValueError, match=f"backbone folder '{missing}' does not"):
        make(str(missing)).fit(TEXTS, LABELS)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(
        ValueError, match=f"backbone folder '{empty}' holds no model: there is no"
    ):
        make(empty).fit(TEXTS, LABELS)


def test_max_length_above_limit(roberta):
    with pytest.raises(
        ValueError, match=r"max_length=513 is above this backbone's limit of 512"
    ):
        make(roberta, max_length=513).fit(TEXTS, LABELS)
