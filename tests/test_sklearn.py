"""scikit-learn compatibility: the shared estimator checks, tags, metadata routing,
sample and class weights, meta-estimators, repeated fits and parallel search."""

import atexit
import gc
import logging
import pickle
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import psutil
import pytest
import sklearn
import torch
from scipy import sparse
from sklearn.base import clone
from sklearn.calibration import CalibratedClassifierCV
from sklearn.exceptions import SkipTestWarning, UnsetMetadataPassedError
from sklearn.model_selection import (
    GridSearchCV,
    KFold,
    TunedThresholdClassifierCV,
    cross_validate,
)
from sklearn.utils import get_tags
from sklearn.utils.class_weight import compute_class_weight
from sklearn.utils.estimator_checks import (
    check_do_not_raise_errors_in_init_or_set_params,
    check_estimator,
    check_estimator_cloneable,
    check_estimator_repr,
    check_get_params_invariance,
    check_mixin_order,
    check_no_attributes_set_in_init,
    check_parameters_default_constructible,
    check_set_params,
    check_valid_tag_types,
    parametrize_with_checks,
)

import multimodal_clf._estimator as estimator_module
from multimodal_clf import MultimodalClassifier, TextClassifier
from multimodal_clf.engine import Trainer

logging.getLogger("transformers").setLevel(logging.ERROR)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny models run fastest on one thread, above all on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# --- the shared estimator checks ---------------------------------------------
#
# The estimators read texts and images, so their tags say so (string input, no
# 2-D numeric arrays), and scikit-learn then skips every check. To run the checks
# anyway, each estimator is put behind a thin front end that writes every row of
# a numeric matrix as a text (and, for the multimodal one, also as a one-row
# grayscale image). Everything else, lists, sparse matrices, 1-d arrays, labels
# and weights, reaches the estimator untouched. The checks that only a
# numeric-matrix estimator can pass are listed below with the reason.

# Estimators are built at collection time; their model folders are made (as
# links to the session's tiny models) only when a check runs.
CHECK_MODELS = Path(tempfile.mkdtemp(prefix="multimodal-clf-checks-"))
atexit.register(shutil.rmtree, CHECK_MODELS, ignore_errors=True)


def _numeric_matrix(X):
    """X as a float matrix when it is a 2-D numeric (or object) array, else None."""
    if sparse.issparse(X):
        return None
    values = X.to_numpy() if isinstance(X, pd.DataFrame) else X
    if isinstance(values, list):
        values = np.asarray(values, dtype=object)
    elif hasattr(values, "__array__"):
        values = np.asarray(values)
    if not isinstance(values, np.ndarray) or values.ndim != 2:
        return None
    if values.dtype.kind not in "biufO":
        return None
    return np.asarray(values, dtype=np.float64)


def _as_texts(matrix):
    return [" ".join(f"{value:.1f}" for value in row) for row in matrix]


class _NumbersFrontEnd:
    """Accept a numeric matrix by writing each row as the estimator's input."""

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = True
        tags.input_tags.string = False
        tags.input_tags.dict = False
        return tags

    def _columns(self, X):
        matrix = _numeric_matrix(X)
        return super()._columns(X if matrix is None else self._rows(matrix))


class NumbersAsText(_NumbersFrontEnd, TextClassifier):
    def _rows(self, matrix):
        return _as_texts(matrix)


class NumbersAsTextAndImage(_NumbersFrontEnd, MultimodalClassifier):
    def _rows(self, matrix):
        images = 1.0 / (1.0 + np.exp(-matrix[:, None, :]))  # (n, 1, d) in (0, 1)
        return list(zip(_as_texts(matrix), images))


# A linear head with a high learning rate learns enough in one epoch for the
# checks that look at the effect of class_weight.
CHECK_PARAMS = dict(
    epochs=1, batch_size=64, head_learning_rate=0.05, verbose=0, random_state=0
)
CHECKED = [
    NumbersAsText(str(CHECK_MODELS / "bert"), **CHECK_PARAMS),
    NumbersAsTextAndImage(str(CHECK_MODELS / "clip"), **CHECK_PARAMS),
]

NO_FEATURE_COUNT = (
    "a row is a text (and an image), which has no fixed number of features: "
    "there is no n_features_in_ to set or compare"
)
EXPECTED_FAILURES = {
    "check_n_features_in": NO_FEATURE_COUNT,
    "check_n_features_in_after_fitting": NO_FEATURE_COUNT,
    "check_fit2d_predict1d": (
        "a 1-d X is a valid layout here (a list of texts or images), so its error "
        "names the bad rows instead of asking to reshape"
    ),
    "check_classifiers_train": (
        "needs predict to refuse X.T (a different number of columns), and > 0.83 "
        "training accuracy after one epoch of a random 2-layer model reading "
        "numbers as text"
    ),
    "check_complex_data": (
        "complex numbers have no text or image form; complex labels are refused "
        "(test_robustness)"
    ),
    "check_estimators_nan_inf": (
        "NaN in a numeric matrix has no text analogue (it is written 'nan'); "
        "missing texts and images are refused row by row (test_robustness)"
    ),
    "check_estimators_empty_data_messages": (
        "a row of zero numbers becomes an empty text, which is valid input (0 rows "
        "is refused)"
    ),
    "check_sample_weight_equivalence_on_dense_data": (
        "mini-batch training with dropout: a zero-weight row still changes the "
        "batches and the shuffling, so weights match removed or repeated rows only "
        "in expectation, not to 1e-7"
    ),
}
MULTIMODAL_EXPECTED_FAILURES = {
    "check_methods_sample_order_invariance": (
        "float32 batched inference: which rows share a batch changes a row's "
        "probabilities in the last bits (about 1e-9), above the check's rtol=1e-7"
    ),
}


def expected_failed_checks(estimator):
    if isinstance(estimator, MultimodalClassifier):
        return {**EXPECTED_FAILURES, **MULTIMODAL_EXPECTED_FAILURES}
    return EXPECTED_FAILURES


@pytest.fixture(scope="module")
def check_models(bert, clip):
    for name, built in (("bert", bert), ("clip", clip)):
        link = CHECK_MODELS / name
        if not link.exists():
            link.symlink_to(built, target_is_directory=True)
    return CHECK_MODELS


@pytest.mark.filterwarnings("ignore::multimodal_clf.exceptions.TruncationWarning")
@parametrize_with_checks(CHECKED, expected_failed_checks=expected_failed_checks)
def test_sklearn_estimator_checks(estimator, check, check_models):
    check(estimator)


# --- tags and the checks that need no data -----------------------------------
def _both(bert, clip):
    return [
        TextClassifier(bert, epochs=1, verbose=0),
        MultimodalClassifier(clip, epochs=1, verbose=0),
    ]


def test_tags_tell_the_truth(bert, clip):
    for estimator in _both(bert, clip):
        tags = get_tags(estimator)
        assert tags.estimator_type == "classifier"
        assert tags.input_tags.string is True
        assert tags.input_tags.dict is True
        assert tags.input_tags.two_d_array is False
        assert tags.input_tags.sparse is False
        assert tags.input_tags.allow_nan is False
        assert tags.requires_fit is True
        assert tags.target_tags.required is True
        assert tags.classifier_tags.multi_class is True
        assert tags.non_deterministic is True
        assert get_tags(estimator.set_params(random_state=0)).non_deterministic is False


def test_sklearn_skips_numeric_checks_for_the_real_estimators(bert):
    with pytest.warns(SkipTestWarning, match="Can't test estimator TextClassifier"):
        results = check_estimator(TextClassifier(bert), on_fail=None)
    assert [r["check_name"] for r in results] == ["check_estimator_cloneable"]
    assert results[0]["status"] == "passed"


@pytest.mark.parametrize(
    "check",
    [
        check_estimator_cloneable,
        check_estimator_repr,
        check_no_attributes_set_in_init,
        check_get_params_invariance,
        check_set_params,
        check_parameters_default_constructible,
        check_do_not_raise_errors_in_init_or_set_params,
        check_mixin_order,
        check_valid_tag_types,
    ],
)
def test_api_checks_on_the_real_estimators(check, bert, clip):
    for estimator in _both(bert, clip):
        check(type(estimator).__name__, estimator)


def test_prediction_methods_agree(bert, clip, text_data, pair_data):
    for estimator, (X, y) in zip(_both(bert, clip), (text_data, pair_data)):
        estimator.set_params(random_state=0).fit(X, y)
        proba = estimator.predict_proba(X)
        assert proba.shape == (len(X), 2)
        np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-6)
        assert list(estimator.classes_) == ["neg", "pos"]
        np.testing.assert_array_equal(
            estimator.predict(X), estimator.classes_[proba.argmax(axis=1)]
        )
        np.testing.assert_allclose(
            estimator.predict_log_proba(X), np.log(proba), rtol=1e-5, atol=1e-6
        )
        assert estimator.score(X, y) == np.mean(estimator.predict(X) == np.array(y))

        restored = pickle.loads(pickle.dumps(estimator))
        np.testing.assert_array_equal(restored.predict_proba(X), proba)


# --- sample_weight through metadata routing ----------------------------------
@pytest.fixture
def recorded_weights(monkeypatch):
    """Record the targets and row weights of every training run."""
    seen = []
    original = Trainer.fit

    def fit(self, train, valid=None):
        weights = None if train.weights is None else np.array(train.weights)
        seen.append((np.array(train.targets), weights))
        return original(self, train, valid)

    monkeypatch.setattr(Trainer, "fit", fit)
    return seen


WEIGHTS = np.array([1.0, 2.0, 0.5, 3.0, 1.5, 0.25, 4.0, 1.0])


def test_grid_search_routes_sample_weight(bert, text_data, recorded_weights):
    X, y = text_data
    cv = KFold(n_splits=2)
    with sklearn.config_context(enable_metadata_routing=True):
        estimator = TextClassifier(bert, epochs=1, verbose=0, random_state=0)
        estimator.set_fit_request(sample_weight=True)
        estimator.set_score_request(sample_weight=True)
        search = GridSearchCV(
            estimator, {"learning_rate": [1e-4]}, cv=cv, error_score="raise"
        )
        search.fit(X, y, sample_weight=WEIGHTS)

    expected = [WEIGHTS[train] for train, _ in cv.split(X)] + [WEIGHTS]
    assert len(recorded_weights) == len(expected)
    for (_, weights), want in zip(recorded_weights, expected):
        np.testing.assert_array_equal(weights, want)


def test_cross_validate_routes_sample_weight(bert, text_data, recorded_weights):
    X, y = text_data
    cv = KFold(n_splits=2)
    with sklearn.config_context(enable_metadata_routing=True):
        estimator = TextClassifier(bert, epochs=1, verbose=0, random_state=0)
        estimator.set_fit_request(sample_weight=True).set_score_request(
            sample_weight=False
        )
        result = cross_validate(
            estimator, X, y, cv=cv, params={"sample_weight": WEIGHTS}
        )
    assert result["test_score"].shape == (2,)
    expected = [WEIGHTS[train] for train, _ in cv.split(X)]
    assert [len(w) for _, w in recorded_weights] == [4, 4]
    for (_, weights), want in zip(recorded_weights, expected):
        np.testing.assert_array_equal(weights, want)


def test_unrequested_sample_weight_is_an_error(bert, text_data):
    X, y = text_data
    with sklearn.config_context(enable_metadata_routing=True):
        search = GridSearchCV(TextClassifier(bert, verbose=0), {"epochs": [1]}, cv=2)
        with pytest.raises(UnsetMetadataPassedError, match="sample_weight"):
            search.fit(X, y, sample_weight=WEIGHTS)


def test_balanced_class_weight_matches_compute_class_weight(
    bert, text_data, recorded_weights
):
    X, _ = text_data
    y = ["a", "b", "b", "b", "c", "c", "b", "b"]
    sample_weight = np.linspace(0.5, 2.0, len(y))
    TextClassifier(bert, epochs=1, verbose=0, class_weight="balanced").fit(
        X, y, sample_weight=sample_weight
    )
    ((targets, weights),) = recorded_weights
    classes = np.array(["a", "b", "c"])
    per_class = compute_class_weight("balanced", classes=classes, y=np.array(y))
    np.testing.assert_allclose(per_class, [8 / 3, 8 / 15, 8 / 6])
    expected = per_class[np.searchsorted(classes, y)] * sample_weight
    np.testing.assert_array_equal(targets, np.searchsorted(classes, y))
    np.testing.assert_allclose(weights, expected)


def test_dict_class_weight_scales_rows(bert, text_data, recorded_weights):
    X, y = text_data
    TextClassifier(bert, epochs=1, verbose=0, class_weight={"pos": 3}).fit(X, y)
    ((_, weights),) = recorded_weights
    np.testing.assert_array_equal(weights, [3.0 if v == "pos" else 1.0 for v in y])


@pytest.mark.parametrize("how", ["sample_weight", "class_weight"])
def test_upweighting_a_class_raises_its_probability(bert, text_data, how):
    X, y = text_data
    params = dict(epochs=3, head_learning_rate=0.01, verbose=0, random_state=0)
    plain = TextClassifier(bert, **params).fit(X, y)
    if how == "sample_weight":
        weights = [10.0 if label == "pos" else 1.0 for label in y]
        weighted = TextClassifier(bert, **params).fit(X, y, sample_weight=weights)
    else:
        weighted = TextClassifier(bert, class_weight={"pos": 10.0}, **params)
        weighted.fit(X, y)
    pos = list(plain.classes_).index("pos")
    before = plain.predict_proba(X)[:, pos]
    after = weighted.predict_proba(X)[:, pos]
    assert np.all(after > before)
    assert after.mean() > before.mean() + 0.05


# --- meta-estimators ---------------------------------------------------------
def _binary(bert, clip, text_data, pair_data):
    return [
        (TextClassifier(bert, epochs=1, verbose=0, random_state=0), *text_data),
        (MultimodalClassifier(clip, epochs=1, verbose=0, random_state=0), *pair_data),
    ]


def test_calibrated_classifier_cv(bert, clip, text_data, pair_data):
    for estimator, X, y in _binary(bert, clip, text_data, pair_data):
        calibrated = CalibratedClassifierCV(estimator, cv=2).fit(X, y)
        proba = calibrated.predict_proba(X)
        assert proba.shape == (len(X), 2)
        np.testing.assert_allclose(proba.sum(axis=1), 1.0)
        assert len(calibrated.calibrated_classifiers_) == 2
        assert set(calibrated.predict(X)) <= {"neg", "pos"}


def test_tuned_threshold_classifier_cv(bert, clip, text_data, pair_data):
    for estimator, X, y in _binary(bert, clip, text_data, pair_data):
        tuned = TunedThresholdClassifierCV(
            estimator, cv=2, scoring="balanced_accuracy"
        ).fit(X, y)
        assert 0.0 <= tuned.best_threshold_ <= 1.0
        proba = tuned.predict_proba(X)
        assert proba.shape == (len(X), 2)
        expected = np.where(proba[:, 1] >= tuned.best_threshold_, "pos", "neg")
        np.testing.assert_array_equal(tuned.predict(X), expected)


# --- repeated fits and memory ------------------------------------------------
def _rss():
    gc.collect()
    return psutil.Process().memory_info().rss


def test_ten_fits_in_a_row_do_not_grow_memory(bert, text_data):
    X, y = text_data
    X, y = X * 4, y * 4
    sizes = {}
    for fit in range(1, 11):
        estimator = TextClassifier(bert, epochs=1, verbose=0, random_state=fit)
        estimator.fit(X, y).predict_proba(X)
        del estimator
        if fit in (3, 10):
            sizes[fit] = _rss()
    growth = sizes[10] - sizes[3]
    assert growth < 200 * 2**20, f"RSS grew by {growth / 2**20:.0f} MB"


def test_gpu_cache_is_released_after_cuda_fits_only(monkeypatch):
    calls = []
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: calls.append("empty"))
    estimator_module._release_device_memory(torch.device("cpu"))
    assert calls == []
    estimator_module._release_device_memory(torch.device("cuda", 0))
    assert calls == ["empty"]


def test_fit_releases_device_memory(bert, text_data, monkeypatch):
    released = []
    monkeypatch.setattr(estimator_module, "_release_device_memory", released.append)
    TextClassifier(bert, epochs=1, verbose=0, device="cpu").fit(*text_data)
    assert released == [torch.device("cpu")]


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_ten_cuda_fits_keep_the_cache_bounded(bert, text_data):
    X, y = text_data
    reserved = []
    for i in range(10):
        estimator = TextClassifier(bert, epochs=1, verbose=0, device="cuda")
        estimator.set_params(random_state=i).fit(X, y)
        del estimator
        gc.collect()
        reserved.append(torch.cuda.memory_reserved())
    assert reserved[-1] <= reserved[2] + 64 * 2**20


# --- parallel search and CUDA ------------------------------------------------
@pytest.mark.slow
@pytest.mark.multiprocess
def test_grid_search_with_two_jobs_on_cpu(bert, text_data):
    X, y = text_data
    estimator = TextClassifier(bert, epochs=1, verbose=0, device="cpu", random_state=0)
    grid = {"learning_rate": [1e-4, 1e-3]}
    parallel = GridSearchCV(estimator, grid, cv=2, n_jobs=2, error_score="raise")
    serial = GridSearchCV(estimator, grid, cv=2, n_jobs=1, error_score="raise")
    parallel.fit(X, y)
    serial.fit(X, y)
    np.testing.assert_allclose(
        parallel.cv_results_["mean_test_score"], serial.cv_results_["mean_test_score"]
    )
    assert parallel.best_params_ == serial.best_params_
    assert parallel.predict(X).shape == (len(X),)


def test_fork_after_cuda_fails_at_once_with_advice(bert, text_data, monkeypatch):
    monkeypatch.setattr(torch.cuda, "_is_in_bad_fork", lambda: True)
    loaded = []
    monkeypatch.setattr(estimator_module, "load_backbone", loaded.append)
    for device in ("auto", "cuda", "cuda:1", torch.device("cuda")):
        estimator = TextClassifier(bert, device=device, verbose=0)
        with pytest.raises(RuntimeError, match=r"forked.*\n?.*n_jobs=1") as error:
            estimator.fit(*text_data)
        assert "device='cpu'" in str(error.value)
    assert loaded == []


def test_cpu_fits_work_in_a_forked_child(bert, text_data, monkeypatch):
    monkeypatch.setattr(torch.cuda, "_is_in_bad_fork", lambda: True)
    estimator = TextClassifier(bert, epochs=1, device="cpu", verbose=0).fit(*text_data)
    assert estimator.predict_proba(text_data[0]).shape == (8, 2)


def test_predict_in_a_forked_child_fails_with_advice(bert, text_data, monkeypatch):
    estimator = TextClassifier(bert, epochs=1, device="cpu", verbose=0)
    estimator.fit(*text_data).set_params(device="auto")
    monkeypatch.setattr(torch.cuda, "_is_in_bad_fork", lambda: True)
    with pytest.raises(RuntimeError, match="n_jobs=1"):
        estimator.predict(text_data[0])


@pytest.mark.gpu
@pytest.mark.multiprocess
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_grid_search_on_cuda(bert, text_data):
    import joblib

    X, y = text_data
    torch.zeros(1, device="cuda")  # CUDA is now initialised in this process
    search = GridSearchCV(
        TextClassifier(bert, epochs=1, verbose=0, device="cuda"),
        {"learning_rate": [1e-4, 1e-3]},
        cv=2,
        n_jobs=2,
        error_score="raise",
    )
    search.fit(X, y)  # loky starts fresh processes: CUDA works there
    with joblib.parallel_backend("multiprocessing"):
        with pytest.raises(RuntimeError, match="n_jobs=1"):
            search.fit(X, y)


CUDA_ENTRY_POINTS = ("is_available", "device_count", "init", "_lazy_init")


def test_construction_never_touches_cuda(bert, clip, monkeypatch):
    calls = []
    for name in CUDA_ENTRY_POINTS:
        monkeypatch.setattr(
            torch.cuda, name, lambda *a, _name=name, **k: calls.append(_name)
        )
    for estimator in _both(bert, clip) + [TextClassifier(bert, device="cuda")]:
        clone(estimator).set_params(epochs=2).get_params()
        repr(estimator)
        get_tags(estimator)
        pickle.loads(pickle.dumps(estimator))
    assert calls == []
    assert not torch.cuda.is_initialized()


IMPORT_PROBE = f"""
import torch
calls = []
for name in {CUDA_ENTRY_POINTS!r}:
    setattr(torch.cuda, name, lambda *a, _n=name, **k: calls.append(_n))
import multimodal_clf
import multimodal_clf.backbones, multimodal_clf.data, multimodal_clf.datasets
import multimodal_clf.engine, multimodal_clf.heads
multimodal_clf.TextClassifier("model", device="cuda")
multimodal_clf.MultimodalClassifier("model")
print(calls, torch.cuda.is_initialized())
"""


@pytest.mark.slow
def test_import_never_touches_cuda():
    result = subprocess.run(
        [sys.executable, "-c", IMPORT_PROBE],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).parent.parent,
    )
    assert result.stdout.strip().splitlines()[-1] == "[] False"
