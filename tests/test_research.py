"""Tests of multimodal_clf.research: bootstrap, measurement and comparisons."""

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, f1_score, log_loss, roc_auc_score

from multimodal_clf.research import (
    BootstrapResult,
    measure,
    paired_bootstrap,
    score_probabilities,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


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
    assert score_probabilities(y, proba, "log_loss", 3) == log_loss(y, proba)


def test_score_probabilities_rejects_unknown_metric():
    with pytest.raises(ValueError, match=r"metric must be one of .*'auroc'"):
        score_probabilities([0, 1], np.eye(2), "auroc", 2)


def test_bootstrap_identical_scores_give_zero():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    proba = random_proba(rng, 200, 2)

    result = paired_bootstrap(y, proba, proba, metric="roc_auc", n_resamples=200)

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
            y, random_scores, perfect, metric=metric, n_resamples=200
        )
        expected = score_probabilities(y, perfect, metric, 2) - score_probabilities(
            y, random_scores, metric, 2
        )
        assert result.delta == pytest.approx(expected)
        assert 0 < result.low <= result.delta <= result.high
        assert result.p_value < 0.01
        assert result.n_resamples == 200 and result.n_skipped == 0


def test_bootstrap_is_deterministic_for_a_seed():
    rng = np.random.default_rng(2)
    y = rng.integers(0, 3, 120)
    a, b = random_proba(rng, 120, 3), random_proba(rng, 120, 3)

    first = paired_bootstrap(y, a, b, metric="accuracy", n_resamples=200)
    again = paired_bootstrap(y, a, b, metric="accuracy", n_resamples=200)
    other = paired_bootstrap(
        y, a, b, metric="accuracy", n_resamples=200, random_state=1
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
        paired_bootstrap(y, a, b, metric="accuracy", n_resamples=100).delta
        for b in b_seeds
    ]
    assert stacked.delta == pytest.approx(np.mean(per_seed))

    # A stack of copies of one seed is that seed, resample by resample.
    copies = paired_bootstrap(
        y, np.stack([a, a]), np.stack([b_seeds[0]] * 2), metric="f1", n_resamples=100
    )
    single = paired_bootstrap(y, a, b_seeds[0], metric="f1", n_resamples=100)
    assert copies.delta == pytest.approx(single.delta)
    assert copies.low == pytest.approx(single.low)
    assert copies.high == pytest.approx(single.high)


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
