"""Tests of multimodal_clf.research: bootstrap, measurement and comparisons."""

import json
import sys
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score, log_loss, roc_auc_score

from multimodal_clf import feature_cache
from multimodal_clf.research import (
    BootstrapResult,
    Comparison,
    compare,
    measure,
    paired_bootstrap,
    score_probabilities,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


# --------------------------------------------------------------------------
# Stand-ins for the real estimators: logistic regression on chosen columns.
# --------------------------------------------------------------------------


class ColumnsClassifier(ClassifierMixin, BaseEstimator):
    """Logistic regression on the columns named by ``modalities``.

    Each seed fits on a different 90% subsample, so that seeds differ.
    """

    def __init__(self, modalities=("text",), random_state=None, drop_class=None):
        self.modalities = modalities
        self.random_state = random_state
        self.drop_class = drop_class

    def fit(self, X, y):
        y = np.asarray(y)
        rng = np.random.default_rng(self.random_state)
        keep = rng.random(len(y)) < 0.9
        if self.drop_class is not None:
            keep &= y != self.drop_class
        columns = list(self.modalities)
        self.model_ = LogisticRegression().fit(X[columns][keep], y[keep])
        self.classes_ = self.model_.classes_
        return self

    def predict_proba(self, X):
        return self.model_.predict_proba(X[list(self.modalities)])


class InterruptedClassifier(ColumnsClassifier):
    """Raises KeyboardInterrupt on the third fit across all instances."""

    fits = 0

    def fit(self, X, y):
        type(self).fits += 1
        if type(self).fits == 3:
            raise KeyboardInterrupt
        return super().fit(X, y)


class CachedFeatureClassifier(ColumnsClassifier):
    """Reads a feature per row through the shared feature cache, as a frozen
    tower does; computing one (a cache miss) is recorded as costing
    ``ROW_SECONDS``."""

    ROW_SECONDS = 0.5

    def _features(self, X):
        for value in X["image"]:
            key = f"test-feature|{value!r}"
            if feature_cache.get(key) is None:
                feature_cache.put(key, np.zeros(2), seconds=self.ROW_SECONDS)

    def fit(self, X, y):
        self._features(X)
        return super().fit(X, y)

    def predict_proba(self, X):
        self._features(X)
        return super().predict_proba(X)


def make_split(image_informative=True, n_train=300, n_test=300, seed=0):
    """A text-like and an image-like feature; the label needs the image when
    ``image_informative``."""
    rng = np.random.default_rng(seed)
    n = n_train + n_test
    X = pd.DataFrame({"text": rng.normal(size=n), "image": rng.normal(size=n)})
    signal = X["text"] + (3 * X["image"] if image_informative else 0)
    y = np.where(signal + 0.5 * rng.normal(size=n) > 0, "pos", "neg")
    return X[:n_train], y[:n_train], X[n_train:], y[n_train:]


def two_models():
    return {
        "text-lr": ColumnsClassifier(modalities=("text",)),
        "text+image-lr": ColumnsClassifier(modalities=("text", "image")),
    }


# --------------------------------------------------------------------------
# score_probabilities and paired_bootstrap
# --------------------------------------------------------------------------


def random_proba(rng, n_rows, n_classes):
    return rng.dirichlet(np.ones(n_classes), size=n_rows)


def test_score_probabilities_matches_sklearn_binary():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 100)
    proba = random_proba(rng, 100, 2)
    pred = proba.argmax(axis=1)

    assert score_probabilities(y, proba, "accuracy", 2) == accuracy_score(y, pred)
    assert score_probabilities(y, proba, "f1", 2) == f1_score(y, pred)
    assert score_probabilities(y, proba, "roc_auc", 2) == roc_auc_score(y, proba[:, 1])
    assert score_probabilities(y, proba, "log_loss", 2) == log_loss(y, proba)


def test_score_probabilities_matches_sklearn_multiclass():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 3, 150)
    proba = random_proba(rng, 150, 3)
    pred = proba.argmax(axis=1)

    assert score_probabilities(y, proba, "f1", 3) == f1_score(y, pred, average="macro")
    assert score_probabilities(y, proba, "roc_auc", 3) == roc_auc_score(
        y, proba, multi_class="ovr", average="macro"
    )
    assert score_probabilities(y, proba, "log_loss", 3) == pytest.approx(
        log_loss(y, proba), rel=1e-12
    )


def test_score_probabilities_macro_f1_leaves_out_absent_classes():
    # The test rows hold classes 0 and 1 of three; class 2 is neither a true nor
    # a predicted label, so it has no F1 and must not count as a zero.
    y = np.array([0, 1] * 10)
    perfect = np.eye(3)[y]
    assert score_probabilities(y, perfect, "f1", 3) == 1.0

    # A false prediction of the absent class still counts against the model.
    wrong = perfect.copy()
    wrong[0] = [0.1, 0.1, 0.8]
    pred = wrong.argmax(axis=1)
    expected = f1_score(y, pred, average="macro")
    assert score_probabilities(y, wrong, "f1", 3) == pytest.approx(expected)
    assert expected == pytest.approx((18 / 19 + 1 + 0) / 3)


def test_score_probabilities_rejects_unknown_metric():
    with pytest.raises(ValueError, match=r"metric must be one of .*'auroc'"):
        score_probabilities([0, 1], np.eye(2), "auroc", 2)


def test_bootstrap_identical_scores_give_zero():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    proba = random_proba(rng, 200, 2)

    result = paired_bootstrap(y, proba, proba, metric="roc_auc", n_resamples=100)

    assert isinstance(result, BootstrapResult)
    assert (result.delta, result.low, result.high) == (0.0, 0.0, 0.0)
    assert result.p_value == 1.0


def test_bootstrap_perfect_beats_random():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    random_scores = random_proba(rng, 200, 2)
    perfect = np.eye(2)[y]

    for metric in ("accuracy", "roc_auc", "f1"):
        result = paired_bootstrap(
            y, random_scores, perfect, metric=metric, n_resamples=100
        )
        expected = score_probabilities(y, perfect, metric, 2) - score_probabilities(
            y, random_scores, metric, 2
        )
        assert result.delta == pytest.approx(expected)
        assert 0 < result.low <= result.delta <= result.high
        assert result.p_value < 0.01
        assert result.n_resamples == 100 and result.n_skipped == 0


def test_bootstrap_is_deterministic_for_a_seed():
    rng = np.random.default_rng(2)
    y = rng.integers(0, 3, 120)
    a, b = random_proba(rng, 120, 3), random_proba(rng, 120, 3)

    first = paired_bootstrap(y, a, b, metric="accuracy", n_resamples=100)
    again = paired_bootstrap(y, a, b, metric="accuracy", n_resamples=100)
    other = paired_bootstrap(
        y, a, b, metric="accuracy", n_resamples=100, random_state=1
    )

    assert first == again
    assert first.delta == other.delta
    assert (first.low, first.high) != (other.low, other.high)


def test_bootstrap_averages_seeds():
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 150)
    a = random_proba(rng, 150, 2)
    b_seeds = np.stack([random_proba(rng, 150, 2) for _ in range(3)])

    stacked = paired_bootstrap(y, a, b_seeds, metric="accuracy", n_resamples=100)
    per_seed = [
        score_probabilities(y, b, "accuracy", 2)
        - score_probabilities(y, a, "accuracy", 2)
        for b in b_seeds
    ]
    assert stacked.delta == pytest.approx(np.mean(per_seed))

    # A stack of copies of one seed is that seed, resample by resample.
    copies = paired_bootstrap(
        y, np.stack([a, a]), np.stack([b_seeds[0]] * 2), metric="f1", n_resamples=50
    )
    single = paired_bootstrap(y, a, b_seeds[0], metric="f1", n_resamples=50)
    assert copies.delta == pytest.approx(single.delta)
    assert copies.low == pytest.approx(single.low)
    assert copies.high == pytest.approx(single.high)


def test_bootstrap_interval_holds_the_seeds_fixed():
    # Accuracy averaged over seeds is the per-row average correctness, so two
    # seed stacks with the same per-row average give the same interval, however
    # far apart their seeds are: a 0.5 / 0.5 pair and a 1.0 / 0.0 pair.
    y = np.array([0, 1] * 50)
    right, wrong = np.eye(2)[y], np.eye(2)[1 - y]
    half = np.arange(100) < 50
    steady = np.stack(
        [np.where(half[:, None], right, wrong), np.where(half[:, None], wrong, right)]
    )
    erratic = np.stack([right, wrong])
    a = np.where((np.arange(100) % 4 == 0)[:, None], wrong, right)

    first = paired_bootstrap(y, a, steady, metric="accuracy", n_resamples=100)
    second = paired_bootstrap(y, a, erratic, metric="accuracy", n_resamples=100)

    assert first.delta == second.delta == pytest.approx(0.5 - 0.75)
    assert (first.low, first.high) == pytest.approx((second.low, second.high))


def test_bootstrap_uses_given_classes_for_string_labels():
    y = np.array(["cat", "dog"] * 30)
    perfect = np.eye(2)[(y == "dog").astype(int)]
    flipped = perfect[:, ::-1]

    result = paired_bootstrap(
        y, flipped, perfect, metric="accuracy", classes=["cat", "dog"], n_resamples=50
    )
    assert result.delta == 1.0
    with pytest.raises(ValueError, match="y_true holds labels that are not in"):
        paired_bootstrap(y, flipped, perfect, metric="accuracy", classes=["a", "b"])


def test_bootstrap_skips_undefined_resamples():
    y = np.array([1] + [0] * 9)
    rng = np.random.default_rng(0)
    a, b = random_proba(rng, 10, 2), random_proba(rng, 10, 2)

    with pytest.warns(UserWarning, match="resamples were skipped"):
        result = paired_bootstrap(y, a, b, metric="roc_auc", n_resamples=100)

    assert result.n_skipped > 10
    assert result.n_resamples + result.n_skipped == 100


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_resamples": 0}, "n_resamples must be a positive integer"),
        ({"confidence": 1.5}, "confidence must be a number strictly between"),
        ({"scores_b": np.ones(4)}, r"scores_b must be probabilities of shape"),
        ({"scores_b": np.ones((3, 2))}, "scores_b has 3 rows but y_true has 4"),
    ],
)
def test_bootstrap_rejects_bad_input(kwargs, message):
    params = {
        "y_true": [0, 1, 0, 1],
        "scores_a": np.full((4, 2), 0.5),
        "scores_b": np.full((4, 2), 0.5),
        "metric": "accuracy",
        **kwargs,
    }
    with pytest.raises(ValueError, match=message):
        paired_bootstrap(**params)


# --------------------------------------------------------------------------
# measure
# --------------------------------------------------------------------------


def test_measure_sees_a_200_mb_allocation():
    def allocate():
        return np.ones(200 * 2**20 // 8)

    result, seconds, peak, kind, increase = measure(allocate)

    assert result.nbytes == 200 * 2**20
    assert kind == "rss"
    assert seconds > 0
    assert increase >= 150 * 2**20
    assert peak >= increase


class FakeCuda:
    """Just enough of ``torch.cuda`` for measure(): one device whose allocator
    holds 10 bytes, and a call that peaks at 110."""

    def __init__(self):
        self.allocated, self.peak, self.resets = 10, 500, 0

    def is_initialized(self):
        return True

    def synchronize(self):
        pass

    def device_count(self):
        return 1

    def reset_peak_memory_stats(self, device):
        self.resets += 1
        self.peak = self.allocated

    def memory_allocated(self, device):
        return self.allocated

    def max_memory_allocated(self, device):
        return self.peak


def test_measure_reports_cuda_peak_when_the_call_uses_cuda(monkeypatch):
    fake = FakeCuda()
    monkeypatch.setitem(sys.modules, "torch", SimpleNamespace(cuda=fake))

    def train_on_gpu():
        fake.peak = 110
        return "done"

    measurement = measure(train_on_gpu)
    assert fake.resets == 1
    assert measurement.memory_kind == "cuda"
    assert measurement.peak_memory_bytes == 110
    assert measurement.memory_increase_bytes == 100

    # A call that allocates nothing on the GPU is measured by its RSS.
    assert measure(lambda: None).memory_kind == "rss"


# --------------------------------------------------------------------------
# compare
# --------------------------------------------------------------------------


def test_compare_image_helps(tmp_path):
    X_train, y_train, X_test, y_test = make_split(image_informative=True)

    result = compare(
        two_models(),
        X_train,
        y_train,
        X_test,
        y_test,
        n_resamples=100,
        output_dir=tmp_path,
        dataset_name="toy",
        verbose=0,
    )

    assert isinstance(result, Comparison)
    assert result.metric == "roc_auc"
    assert result.classes == ["neg", "pos"]
    assert not result.interrupted
    assert len(result.runs) == 6
    assert result.runs["seed"].tolist() == [0, 0, 1, 1, 2, 2]

    # One summary row per model, with the per-seed means and stds.
    summary = result.summary.set_index("model")
    assert summary.index.tolist() == ["text-lr", "text+image-lr"]
    assert summary["kind"].tolist() == ["text", "multimodal"]
    per_seed = result.runs.groupby("model")
    for column in ("accuracy", "f1", "roc_auc", "fit_seconds", "peak_memory_mb"):
        means = per_seed[column].mean()
        stds = per_seed[column].std()
        for name in summary.index:
            assert summary.loc[name, f"{column}_mean"] == pytest.approx(means[name])
            assert summary.loc[name, f"{column}_std"] == pytest.approx(stds[name])
    assert summary.loc["text-lr", "accuracy_std"] > 0  # seeds differ

    # Per-run metrics are those of the stored probabilities.
    proba = result.probabilities["text+image-lr"]
    assert proba.shape == (3, 300, 2)
    y_encoded = (y_test == "pos").astype(int)
    mm_runs = result.runs[result.runs["model"] == "text+image-lr"]
    assert mm_runs["roc_auc"].tolist() == pytest.approx(
        [roc_auc_score(y_encoded, p[:, 1]) for p in proba]
    )

    (gain,) = result.gains
    assert gain["model"] == "text+image-lr" and gain["baseline"] == "text-lr"
    assert gain["delta"] == pytest.approx(
        summary.loc["text+image-lr", "roc_auc_mean"]
        - summary.loc["text-lr", "roc_auc_mean"]
    )
    assert 0 < gain["low"] < gain["delta"] < gain["high"]
    assert gain["time_ratio"] > 0 and gain["memory_ratio"] > 0
    assert result.verdict.startswith(f"toy: image adds {gain['delta']:+.3f} roc_auc [")
    assert result.verdict.endswith("(text+image-lr vs text-lr)")

    # Files.
    runs_csv = pd.read_csv(tmp_path / "results.csv")
    assert len(runs_csv) == 2 * 3
    assert len(pd.read_csv(tmp_path / "summary.csv")) == 2
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["verdict"] == result.verdict
    assert saved["gains"][0]["low"] == pytest.approx(gain["low"])
    assert len(saved["runs"]) == 6
    markdown = (tmp_path / "results.md").read_text()
    assert (
        result.verdict in markdown and "| text+image-lr | multimodal | 3 |" in markdown
    )
    assert markdown == result.to_markdown()
    assert (tmp_path / "chart.png").read_bytes()[:8] == PNG_SIGNATURE


def test_compare_charges_each_run_its_cached_features():
    X_train, y_train, X_test, y_test = make_split(n_train=40, n_test=20)
    models = {
        "text-lr": ColumnsClassifier(modalities=("text",)),
        "image-first": CachedFeatureClassifier(modalities=("image",)),
        "fused-second": CachedFeatureClassifier(modalities=("text", "image")),
    }
    feature_cache.clear()
    try:
        result = compare(
            models, X_train, y_train, X_test, y_test, n_resamples=10, verbose=0
        )
    finally:
        feature_cache.clear()

    runs = result.runs.set_index(["model", "seed"])
    cost = CachedFeatureClassifier.ROW_SECONDS
    # The first run over the tower computed every feature; every later run read
    # them all and is charged their cost: 40 training and 20 test rows.
    assert runs.loc[("image-first", 0), "cached_feature_seconds"] == 0.0
    for name, seed in [("fused-second", 0), ("image-first", 1), ("fused-second", 2)]:
        assert runs.loc[(name, seed), "cached_feature_seconds"] == 60 * cost
        assert runs.loc[(name, seed), "fit_seconds"] > 40 * cost
        assert runs.loc[(name, seed), "predict_seconds"] > 20 * cost
        assert runs.loc[(name, seed), "fit_samples_per_s"] < 40 / (40 * cost)
    assert (runs.loc["text-lr", "cached_feature_seconds"] == 0.0).all()
    assert runs.loc[("text-lr", 0), "fit_seconds"] < 40 * cost
    summary = result.summary.set_index("model")
    assert summary.loc["fused-second", "cached_feature_seconds_mean"] == 60 * cost


def test_compare_uninformative_image(tmp_path):
    X_train, y_train, X_test, y_test = make_split(image_informative=False)

    result = compare(
        two_models(),
        X_train,
        y_train,
        X_test,
        y_test,
        seeds=(0, 1),
        metric="accuracy",
        n_resamples=200,
        dataset_name="noise",
        verbose=0,
    )

    (gain,) = result.gains
    assert gain["low"] <= 0 <= gain["high"]
    assert result.verdict.startswith("noise: no significant gain from the image (")
    assert not list(tmp_path.iterdir())  # no output_dir, no files


def test_compare_keyboard_interrupt_keeps_finished_runs(tmp_path, caplog):
    X_train, y_train, X_test, y_test = make_split()
    InterruptedClassifier.fits = 0
    models = {
        "text": InterruptedClassifier(modalities=("text",)),
        "both": InterruptedClassifier(modalities=("image", "text")),
    }

    result = compare(
        models,
        X_train,
        y_train,
        X_test,
        y_test,
        seeds=(0, 1),
        n_resamples=50,
        output_dir=tmp_path,
        verbose=0,
    )

    assert result.interrupted
    assert "Interrupted: reporting the 2 of 4 runs" in caplog.text
    assert result.runs[["model", "seed"]].values.tolist() == [["text", 0], ["both", 0]]
    assert result.verdict.endswith("(interrupted after 2 of 4 runs)")
    assert len(result.gains) == 1 and result.gains[0]["n_seeds"] == 1
    assert len(pd.read_csv(tmp_path / "results.csv")) == 2
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["interrupted"] is True and saved["n_runs_finished"] == 2


class BadSecondSeedClassifier(ColumnsClassifier):
    """Predicts the reverse of its fitted model with seed 1, so that seed 1 is
    a bad seed for every model; raises KeyboardInterrupt on the fourth fit
    across all instances."""

    fits = 0

    def fit(self, X, y):
        type(self).fits += 1
        if type(self).fits == 4:
            raise KeyboardInterrupt
        return super().fit(X, y)

    def predict_proba(self, X):
        proba = super().predict_proba(X)
        return proba[:, ::-1] if self.random_state == 1 else proba


def test_compare_interrupted_gain_pairs_seeds():
    # Runs: text seed 0, both seed 0, text seed 1, then Ctrl-C. The text model
    # has its bad seed 1 and the multimodal one has not: comparing the text
    # mean over seeds 0 and 1 with the multimodal seed 0 would credit the image
    # with the bad seed. The gain must use the seeds both models finished.
    X_train, y_train, X_test, y_test = make_split(image_informative=False)
    BadSecondSeedClassifier.fits = 0
    models = {
        "text": BadSecondSeedClassifier(modalities=("text",)),
        "both": BadSecondSeedClassifier(modalities=("text", "image")),
    }

    result = compare(
        models,
        X_train,
        y_train,
        X_test,
        y_test,
        seeds=(0, 1),
        n_resamples=100,
        verbose=0,
    )

    assert result.interrupted
    runs = result.runs.set_index(["model", "seed"])["roc_auc"]
    assert runs.index.tolist() == [("text", 0), ("both", 0), ("text", 1)]
    assert runs[("text", 1)] < 0.5 < runs[("text", 0)]
    (gain,) = result.gains
    assert gain["delta"] == pytest.approx(runs[("both", 0)] - runs[("text", 0)])
    assert gain["paired_seeds"] == [0]
    assert (gain["n_seeds"], gain["baseline_n_seeds"]) == (1, 2)
    single = paired_bootstrap(
        y_test,
        result.probabilities["text"][0],
        result.probabilities["both"][0],
        metric="roc_auc",
        classes=result.classes,
        n_resamples=100,
    )
    assert (gain["low"], gain["high"]) == (single.low, single.high)
    assert result.verdict.startswith("dataset: no significant gain from the image")


def test_markdown_bounds_a_zero_p_value_by_two_over_n_resamples():
    gain = {
        "model": "both",
        "baseline": "text",
        "metric": "accuracy",
        "delta": 0.2,
        "low": 0.1,
        "high": 0.3,
        "p_value": 0.0,
        "confidence": 0.95,
        "n_resamples": 100,
        "time_ratio": 2.0,
        "memory_ratio": 1.5,
    }
    result = Comparison(
        "toy",
        "accuracy",
        [0, 1],
        pd.DataFrame(),
        pd.DataFrame(columns=["model", "kind", "n_seeds"]),
        gains=[gain],
    )

    # No resample below zero: the one-sided fraction is under 1 / 100, so the
    # two-sided p-value, twice that, is under 0.02.
    assert "| +0.200 | 95% [0.100, 0.300] | < 0.02 | 2.00x | 1.50x |" in (
        result.to_markdown()
    )


def test_compare_multiclass_and_explicit_kinds():
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"text": rng.normal(size=300), "image": rng.normal(size=300)})
    y = np.digitize(X["text"] + X["image"], [-0.5, 0.5])
    models = {
        "a": ColumnsClassifier(modalities=("text",)),
        "b": ColumnsClassifier(modalities=("text",)),
    }

    result = compare(
        models,
        X[:200],
        y[:200],
        X[200:],
        y[200:],
        seeds=[3],
        kinds={"b": "image"},
        n_resamples=50,
        verbose=0,
    )

    assert result.metric == "accuracy"
    assert result.summary["kind"].tolist() == ["text", "image"]
    assert result.probabilities["a"].shape == (1, 100, 3)
    assert np.isnan(result.summary["accuracy_std"]).all()  # one seed
    assert result.gains[0]["delta"] == 0.0
    assert "no significant difference between the image alone and the text" in (
        result.verdict
    )


def test_compare_rejects_disagreeing_classes():
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"text": rng.normal(size=120), "image": rng.normal(size=120)})
    y = np.arange(120) % 3
    models = {
        "full": ColumnsClassifier(),
        "partial": ColumnsClassifier(drop_class=2),
    }
    with pytest.raises(ValueError, match=r"Model 'partial' \(seed 0\) has classes_"):
        compare(models, X, y, X, y, seeds=[0], verbose=0)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"models": {}}, "models must be a non-empty dict"),
        (
            {"models": {"lr": LogisticRegression().fit([[0], [1]], [0, 1]).predict}},
            r"'lr' lacks fit, predict_proba",
        ),
        ({"seeds": 0}, r"seeds must be a non-empty sequence of distinct integers"),
        ({"seeds": (0, 1.5)}, r"seeds must be .*got \(0, 1.5\)"),
        ({"seeds": (1, 1)}, "seeds must be a non-empty sequence of distinct"),
        ({"y_train": ["neg"] * 299}, "X_train has 300 rows but y_train has 299"),
        ({"X_test": pd.DataFrame({"text": [0.0]})}, "X_test has 1 rows but y_test"),
        ({"metric": "auc"}, r"metric must be 'auto' or one of"),
        ({"kinds": {"text-lr": "audio"}}, r"kinds values must be one of"),
        ({"kinds": {"other": "text"}}, r"kinds names models that are not in models"),
        ({"y_train": ["neg"] * 300}, "y_train must hold at least two classes"),
        ({"n_resamples": -1}, "n_resamples must be a positive integer"),
    ],
)
def test_compare_rejects_bad_input(kwargs, message):
    X_train, y_train, X_test, y_test = make_split()
    params = {
        "models": two_models(),
        "X_train": X_train,
        "y_train": y_train,
        "X_test": X_test,
        "y_test": y_test,
        "verbose": 0,
        **kwargs,
    }
    with pytest.raises(ValueError, match=message):
        compare(**params)


def test_compare_cannot_infer_kind_without_modalities_value():
    X_train, y_train, X_test, y_test = make_split()
    models = {"mm": ColumnsClassifier(modalities=None)}
    with pytest.raises(ValueError, match=r"pass kinds=\{'mm': 'multimodal'\}"):
        compare(models, X_train, y_train, X_test, y_test, verbose=0)


def test_compare_without_modalities_param_is_text():
    X_train, y_train, X_test, y_test = make_split()

    class PlainLogistic(LogisticRegression):
        def fit(self, X, y):
            return super().fit(X[["text"]], y)

        def predict_proba(self, X):
            return super().predict_proba(X[["text"]])

    result = compare(
        {"plain": PlainLogistic()},
        X_train,
        y_train,
        X_test,
        y_test,
        seeds=[0],
        verbose=0,
    )
    assert result.summary["kind"].tolist() == ["text"]
    assert result.gains == []
    assert result.verdict == "dataset: no image or multimodal model to compare"


def test_compare_refuses_a_file_as_output_dir_before_any_run(tmp_path):
    (tmp_path / "taken").write_text("x")
    X = pd.DataFrame({"text": np.arange(20.0), "image": np.arange(20.0)})
    y = np.arange(20) % 2
    fitted = []

    class Recording(ColumnsClassifier):
        def fit(self, X, y):
            fitted.append(True)
            return super().fit(X, y)

    with pytest.raises(ValueError, match="is a file, so the report folder"):
        compare({"m": Recording()}, X, y, X, y, output_dir=tmp_path / "taken" / "sub")
    assert not fitted


def test_verdict_on_the_best_of_several_models_widens_its_interval():
    X_train, y_train, X_test, y_test = make_split()
    models = {
        "text-lr": ColumnsClassifier(modalities=("text",)),
        "mm-a": ColumnsClassifier(modalities=("text", "image")),
        "mm-b": ColumnsClassifier(modalities=("image", "text")),
        "image-lr": ColumnsClassifier(modalities=("image",)),
    }

    result = compare(
        models, X_train, y_train, X_test, y_test, seeds=(0,), metric="accuracy",
        n_resamples=200, dataset_name="toy", verbose=0,
    )  # fmt: skip

    chosen = max(
        (g for g in result.gains if g["kind"] == "multimodal"),
        key=lambda g: g["delta"],
    )
    assert [g["model"] for g in result.gains if "n_compared" in g] == [chosen["model"]]
    # Two multimodal candidates: Bonferroni's 97.5% interval, from the same
    # resamples as a direct paired bootstrap at that level.
    assert chosen["n_compared"] == 2
    assert chosen["verdict_confidence"] == pytest.approx(0.975)
    direct = paired_bootstrap(
        y_test, result.probabilities["text-lr"], result.probabilities[chosen["model"]],
        metric="accuracy", classes=["neg", "pos"], n_resamples=200,
        confidence=0.975, random_state=0,
    )  # fmt: skip
    assert (chosen["verdict_low"], chosen["verdict_high"]) == (direct.low, direct.high)
    assert chosen["verdict_low"] <= chosen["low"] < chosen["high"]
    assert chosen["high"] <= chosen["verdict_high"]
    assert result.verdict == (
        f"toy: image adds {chosen['delta']:+.3f} accuracy [{direct.low:.3f}, "
        f"{direct.high:.3f}] at {chosen['time_ratio']:.1f}x time and "
        f"{chosen['memory_ratio']:.1f}x memory ({chosen['model']} vs text-lr; 97.5% "
        "interval, the best of 2 models)"
    )
