"""Metrics from predicted probabilities and a paired bootstrap between two models."""

import logging
import numbers
import warnings
from dataclasses import dataclass

import numpy as np
import sklearn
from sklearn.metrics import accuracy_score, f1_score, log_loss, roc_auc_score

__all__ = ["METRICS", "BootstrapResult", "paired_bootstrap", "score_probabilities"]

logger = logging.getLogger(__name__)

#: The metric names understood by :func:`score_probabilities`.
METRICS = ("accuracy", "f1", "roc_auc", "log_loss")

# Direction of each metric: a larger value is better unless listed here.
_LOWER_IS_BETTER = frozenset({"log_loss"})


def greater_is_better(metric):
    """Return whether a larger value of ``metric`` means a better model."""
    return metric not in _LOWER_IS_BETTER


def _check_metric(metric, *, parameter="metric"):
    if metric not in METRICS:
        raise ValueError(f"{parameter} must be one of {list(METRICS)}; got {metric!r}.")


def _metric_is_defined(y_true_encoded, metric, n_classes):
    """Return whether ``metric`` can be computed on these labels.

    ROC AUC needs every class among the labels (both classes for a binary task,
    every class for the one-vs-rest average); the other metrics are always
    defined.
    """
    if metric != "roc_auc":
        return True
    return np.unique(y_true_encoded).size == n_classes


def score_probabilities(y_true_encoded, proba, metric, n_classes):
    """Compute one metric from predicted class probabilities with scikit-learn.

    Parameters
    ----------
    y_true_encoded : array-like of shape (n_rows,)
        True labels as column indices of ``proba``, integers in
        ``[0, n_classes)``.
    proba : array-like of shape (n_rows, n_classes)
        Predicted probabilities, one column per class, in the order of the
        encoded labels.
    metric : {"accuracy", "f1", "roc_auc", "log_loss"}
        ``"accuracy"`` of the most probable class; ``"f1"`` is the binary F1 of
        the positive class (column 1) for two classes and the macro average of
        the per-class F1 for more, over the classes that are true or predicted
        labels of some row (a class that is neither has no F1 and is left
        out); ``"roc_auc"`` is computed on column 1 for two
        classes and as the one-vs-rest macro average for more; ``"log_loss"``
        is the mean cross-entropy (lower is better).
    n_classes : int
        Number of classes, the number of columns of ``proba``.

    Returns
    -------
    score : float
        The metric value.

    Raises
    ------
    ValueError
        If ``metric`` is unknown, or if it is undefined on these labels (ROC
        AUC when a class is missing from ``y_true_encoded``).

    Examples
    --------
    >>> import numpy as np
    >>> y = np.array([0, 1, 1, 0])
    >>> proba = np.array([[0.8, 0.2], [0.3, 0.7], [0.6, 0.4], [0.9, 0.1]])
    >>> score_probabilities(y, proba, "accuracy", 2)
    0.75
    """
    _check_metric(metric)
    y_true_encoded = np.asarray(y_true_encoded)
    proba = np.asarray(proba, dtype=float)
    labels = np.arange(n_classes)

    if metric == "accuracy":
        return float(accuracy_score(y_true_encoded, proba.argmax(axis=1)))

    if metric == "f1":
        y_pred = proba.argmax(axis=1)
        if n_classes == 2:
            return float(
                f1_score(y_true_encoded, y_pred, pos_label=1, zero_division=0.0)
            )
        # Macro over the classes among the true or predicted labels: a class
        # absent from both has no F1, and counting it as 0 would cap a perfect
        # model's score at the share of classes present.
        return float(
            f1_score(y_true_encoded, y_pred, average="macro", zero_division=0.0)
        )

    if metric == "roc_auc":
        if not _metric_is_defined(y_true_encoded, metric, n_classes):
            raise ValueError(
                "ROC AUC is undefined: y_true_encoded holds "
                f"{np.unique(y_true_encoded).size} of the {n_classes} classes; "
                "every class must be present."
            )
        if n_classes == 2:
            return float(roc_auc_score(y_true_encoded, proba[:, 1]))
        return float(
            roc_auc_score(
                y_true_encoded,
                proba,
                multi_class="ovr",
                average="macro",
                labels=labels,
            )
        )

    # Float32 probabilities sum to 1 only within ~1e-7, which log_loss's float64
    # check would warn about; renormalising changes nothing else.
    proba = proba / proba.sum(axis=1, keepdims=True)
    return float(log_loss(y_true_encoded, proba, labels=labels))


@dataclass(frozen=True)
class BootstrapResult:
    """The outcome of :func:`paired_bootstrap`.

    Attributes
    ----------
    delta : float
        Metric of model B minus metric of model A on all the test rows.
    low, high : float
        Bounds of the percentile confidence interval of ``delta``.
    p_value : float
        Two-sided bootstrap p-value of ``delta`` being zero (see
        :func:`paired_bootstrap`).
    n_resamples : int
        Number of resamples that entered the interval.
    n_skipped : int
        Number of resamples skipped because the metric was undefined on them.
    confidence : float
        Confidence level of the interval.
    """

    delta: float
    low: float
    high: float
    p_value: float
    n_resamples: int = 0
    n_skipped: int = 0
    confidence: float = 0.95


def _as_seed_stack(scores, name):
    """Return ``scores`` as an array of shape (n_seeds, n_rows, n_classes)."""
    scores = np.asarray(scores, dtype=float)
    if scores.ndim == 2:
        return scores[np.newaxis]
    if scores.ndim == 3:
        return scores
    raise ValueError(
        f"{name} must be probabilities of shape (n_rows, n_classes) or "
        f"(n_seeds, n_rows, n_classes); got an array of shape {scores.shape}."
    )


def _encode_labels(y_true, classes, n_classes):
    """Map ``y_true`` to column indices of the score arrays."""
    if classes is None:
        classes = np.unique(y_true)
        if classes.size != n_classes:
            raise ValueError(
                f"y_true holds {classes.size} distinct labels but the scores have "
                f"{n_classes} columns; pass classes=..., the labels of the score "
                "columns in order."
            )
    classes = np.asarray(classes)
    if classes.shape != (n_classes,):
        raise ValueError(
            f"classes must list one label per score column ({n_classes}); got "
            f"{classes.shape[0] if classes.ndim else 'a scalar'}."
        )
    order = np.argsort(classes, kind="stable")
    positions = np.searchsorted(classes, y_true, sorter=order)
    positions = np.clip(positions, 0, n_classes - 1)
    encoded = order[positions]
    unknown = classes[encoded] != y_true
    if np.any(unknown):
        raise ValueError(
            f"y_true holds labels that are not in classes: "
            f"{np.unique(y_true[unknown])[:5].tolist()}."
        )
    return encoded


def _mean_score(y_encoded, stack, metric, n_classes):
    """Metric of each seed's probabilities, averaged over seeds."""
    return float(
        np.mean([score_probabilities(y_encoded, p, metric, n_classes) for p in stack])
    )


def _check_bootstrap_params(n_resamples, confidence):
    if (
        not isinstance(n_resamples, numbers.Integral)
        or isinstance(n_resamples, bool)
        or n_resamples < 1
    ):
        raise ValueError(
            f"n_resamples must be a positive integer; got {n_resamples!r}."
        )
    if not isinstance(confidence, numbers.Real) or not 0 < confidence < 1:
        raise ValueError(
            f"confidence must be a number strictly between 0 and 1; got {confidence!r}."
        )


def paired_bootstrap(
    y_true,
    scores_a,
    scores_b,
    *,
    metric,
    classes=None,
    n_resamples=1000,
    confidence=0.95,
    random_state=0,
):
    """Compare two models on the same test rows with a paired bootstrap.

    Each resample draws ``n_rows`` row indices with replacement and scores both
    models on those same rows, so that the variation shared by the two models
    (easy or hard rows) cancels in their difference.

    Parameters
    ----------
    y_true : array-like of shape (n_rows,)
        True labels of the test rows.
    scores_a, scores_b : array-like of shape (n_rows, n_classes) or \
            (n_seeds, n_rows, n_classes)
        Predicted probabilities of model A (the reference) and model B. With
        three dimensions, each slice along the first axis is one training seed
        and the metric is averaged over seeds inside each resample. A and B may
        have different numbers of seeds.
    metric : {"accuracy", "f1", "roc_auc", "log_loss"}
        The metric, as computed by :func:`score_probabilities`.
    classes : array-like of shape (n_classes,), default=None
        Labels of the score columns, in order. None means the sorted distinct
        values of ``y_true``, which must then number ``n_classes``.
    n_resamples : int, default=1000
        Number of bootstrap resamples.
    confidence : float, default=0.95
        Confidence level of the percentile interval.
    random_state : int, numpy.random.Generator or None, default=0
        Seed of the row draws; a fixed value gives the same result every call.

    Returns
    -------
    result : BootstrapResult
        ``delta`` is the metric of B minus that of A on all the rows; ``low``
        and ``high`` are the ``(1 - confidence) / 2`` and
        ``(1 + confidence) / 2`` quantiles of the resampled deltas. For
        ``"log_loss"``, a negative delta means B is better.

    Notes
    -----
    The p-value is two-sided: twice the fraction of resampled deltas that lie
    on the other side of zero from the observed ``delta`` (a resampled delta of
    exactly zero counts as the other side), capped at 1. It is 1 when the
    observed delta is zero.

    Resamples on which the metric is undefined for the drawn rows (ROC AUC when
    a class is missing) are skipped, not redrawn: the interval uses the
    remaining resamples and ``n_skipped`` counts the others. A warning is
    issued when more than 10% are skipped.

    Examples
    --------
    >>> import numpy as np
    >>> y = np.array([0, 1] * 50)
    >>> a = np.full((100, 2), 0.5)
    >>> b = np.eye(2)[y]
    >>> result = paired_bootstrap(y, a, b, metric="accuracy", n_resamples=200)
    >>> result.delta, result.low > 0
    (0.5, True)
    """
    _check_metric(metric)
    _check_bootstrap_params(n_resamples, confidence)
    y_true = np.asarray(y_true)
    if y_true.ndim != 1:
        raise ValueError(
            f"y_true must be one-dimensional; got an array of shape {y_true.shape}."
        )
    stack_a = _as_seed_stack(scores_a, "scores_a")
    stack_b = _as_seed_stack(scores_b, "scores_b")
    n_rows = y_true.shape[0]
    for name, stack in (("scores_a", stack_a), ("scores_b", stack_b)):
        if stack.shape[1] != n_rows:
            raise ValueError(
                f"{name} has {stack.shape[1]} rows but y_true has {n_rows}; both "
                "must describe the same test rows."
            )
    if stack_a.shape[2] != stack_b.shape[2]:
        raise ValueError(
            f"scores_a has {stack_a.shape[2]} class columns and scores_b has "
            f"{stack_b.shape[2]}; both must use the same classes."
        )
    n_classes = stack_a.shape[2]
    y_encoded = _encode_labels(y_true, classes, n_classes)
    if not _metric_is_defined(y_encoded, metric, n_classes):
        raise ValueError(
            f"metric={metric!r} is undefined on these test rows: every class must "
            "be present in y_true. Use another metric or a larger test set."
        )

    delta = _mean_score(y_encoded, stack_b, metric, n_classes) - _mean_score(
        y_encoded, stack_a, metric, n_classes
    )

    rng = np.random.default_rng(random_state)
    deltas = []
    n_skipped = 0
    # Inputs were checked above; skipping sklearn's per-call checks makes the
    # thousands of metric calls noticeably faster.
    with sklearn.config_context(skip_parameter_validation=True):
        for _ in range(n_resamples):
            rows = rng.integers(0, n_rows, size=n_rows)
            y_rows = y_encoded[rows]
            if not _metric_is_defined(y_rows, metric, n_classes):
                n_skipped += 1
                continue
            deltas.append(
                _mean_score(y_rows, stack_b[:, rows], metric, n_classes)
                - _mean_score(y_rows, stack_a[:, rows], metric, n_classes)
            )

    if not deltas:
        raise ValueError(
            f"metric={metric!r} was undefined on all {n_resamples} resamples; "
            "use another metric or a larger test set."
        )
    if n_skipped > 0.1 * n_resamples:
        warnings.warn(
            f"{n_skipped} of {n_resamples} bootstrap resamples were skipped "
            f"because {metric} was undefined on them; the interval rests on the "
            "others. A larger test set avoids this.",
            UserWarning,
            stacklevel=2,
        )
    logger.debug("paired bootstrap: %d resamples, %d skipped", len(deltas), n_skipped)

    deltas = np.asarray(deltas)
    alpha = 1.0 - confidence
    low, high = np.quantile(deltas, [alpha / 2, 1 - alpha / 2])
    return BootstrapResult(
        delta=float(delta),
        low=float(low),
        high=float(high),
        p_value=_two_sided_p_value(delta, deltas),
        n_resamples=int(deltas.size),
        n_skipped=n_skipped,
        confidence=float(confidence),
    )


def _two_sided_p_value(delta, deltas):
    """Twice the fraction of resampled deltas on the other side of zero."""
    if delta == 0:
        return 1.0
    other_side = deltas <= 0 if delta > 0 else deltas >= 0
    return float(min(1.0, 2.0 * np.mean(other_side)))
