"""Fit several models on one split over several seeds, and compare them."""

import logging
import math
import numbers
import os
import sys
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.base import clone
from tqdm.auto import tqdm

from multimodal_clf._cache import feature_cache
from multimodal_clf.engine._progress import Progress
from multimodal_clf.research._measure import measure
from multimodal_clf.research._report import Comparison
from multimodal_clf.research._stats import (
    METRICS,
    _check_bootstrap_params,
    _encode_labels,
    _metric_is_defined,
    greater_is_better,
    paired_bootstrap,
    score_probabilities,
)

__all__ = ["KINDS", "compare"]

logger = logging.getLogger(__name__)

#: The kinds of model a comparison distinguishes.
KINDS = ("text", "image", "multimodal")

_MODALITY_KINDS = {
    frozenset({"text"}): "text",
    frozenset({"image"}): "image",
    frozenset({"text", "image"}): "multimodal",
}

# Columns of the per-seed table that the summary averages over seeds.
_MEASURED_COLUMNS = (
    *METRICS,
    "fit_seconds",
    "predict_seconds",
    "fit_samples_per_s",
    "predict_samples_per_s",
    "cached_feature_seconds",
    "peak_memory_mb",
    "memory_increase_mb",
)
_RUN_COLUMNS = ("model", "kind", "seed", *_MEASURED_COLUMNS, "memory_kind")

# Seed of the bootstrap row draws, fixed so that a report can be reproduced.
_BOOTSTRAP_SEED = 0
_CONFIDENCE = 0.95


def compare(
    models,
    X_train,
    y_train,
    X_test,
    y_test,
    *,
    seeds=(0, 1, 2),
    kinds=None,
    metric="auto",
    n_resamples=1000,
    output_dir=None,
    dataset_name="dataset",
    verbose=1,
):
    """Fit each model with each seed on the same split, and report the image's gain.

    Every model is cloned, given ``random_state=seed`` and fitted on the same
    training rows, then scored on the same test rows. Each image or
    multimodal model is compared with the best text-only model by a paired
    bootstrap over the test rows, and a one-line verdict says whether adding
    the image helps and at what cost in time and memory.

    Parameters
    ----------
    models : dict of str to estimator
        Unfitted scikit-learn style classifiers by display name. Each needs
        ``fit``, ``predict_proba``, ``classes_`` after fitting and a
        ``random_state`` parameter.
    X_train, y_train : array-like
        Training inputs and labels, as the estimators' ``fit`` accepts them.
    X_test, y_test : array-like
        Test inputs and labels; every label must appear in ``y_train``.
    seeds : sequence of int, default=(0, 1, 2)
        One run per model and seed; the seed is set as ``random_state``.
    kinds : dict of str to {"text", "image", "multimodal"}, default=None
        Kind of each model. Models not listed are inferred from their
        ``modalities`` parameter: ``("text",)`` is text, ``("image",)`` is image,
        both are multimodal; a model without that parameter is text.
    metric : {"auto", "accuracy", "f1", "roc_auc", "log_loss"}, default="auto"
        Primary metric: picks the best text model, measures the gains and is
        drawn in the chart. ``"auto"`` is ``"roc_auc"`` for two classes and
        ``"accuracy"`` for more.
    n_resamples : int, default=1000
        Bootstrap resamples for each gain's confidence interval.
    output_dir : str or path-like, default=None
        Where to write ``results.md``, ``results.csv``, ``summary.csv``,
        ``results.json`` and ``chart.png``. None writes nothing.
    dataset_name : str, default="dataset"
        Name used in the verdict and the report.
    verbose : int, default=1
        0 is silent; 1 or more prints a line per finished run and, on a
        terminal or in a notebook, shows a progress bar over the runs.

    Returns
    -------
    comparison : Comparison
        Per-seed runs, summary, gains and verdict.

    Raises
    ------
    ValueError
        If a parameter is invalid, or if the fitted estimators disagree on
        their classes or return probabilities of the wrong shape.

    Notes
    -----
    Runs go seed by seed: every model with the first seed, then every model
    with the next one, so that an early stop leaves comparable results.

    With ``output_dir``, the files are rewritten after every finished run
    (without the gains, which need the bootstrap) and once more at the end
    with the gains and the verdict.

    A ``KeyboardInterrupt`` (Ctrl-C) during a run stops the comparison: a
    warning is logged, the unfinished run is dropped, the files are written
    from the finished runs, gains included, and the partial result is
    returned with ``interrupted=True``.

    Timing: ``fit_seconds`` and ``predict_seconds`` are the wall times of
    ``fit`` and ``predict_proba``, plus the cost of the frozen-tower features
    they read from the shared feature cache instead of computing
    (``cached_feature_seconds``, as measured when an earlier run computed
    them). So every run is charged what it would cost alone, whichever run
    came first. ``fit_samples_per_s`` is the number of training rows divided
    by ``fit_seconds`` (all epochs together), ``predict_samples_per_s`` the
    number of test rows divided by ``predict_seconds``. Memory
    is the peak during fit and predict: CUDA memory allocated by PyTorch when
    the model ran on a GPU, otherwise the process's peak resident set size
    (see :func:`measure`).

    Examples
    --------
    >>> from sklearn.datasets import make_classification
    >>> from sklearn.linear_model import LogisticRegression
    >>> X, y = make_classification(n_samples=200, random_state=0)
    >>> result = compare(
    ...     {"logistic": LogisticRegression()}, X[:150], y[:150], X[150:], y[150:],
    ...     seeds=(0, 1), verbose=0,
    ... )
    >>> result.summary["n_seeds"].tolist()
    [2]
    """
    seeds = _check_seeds(seeds)
    kinds = _resolve_kinds(_check_models(models), kinds)
    n_train, n_test = _check_data(X_train, y_train, X_test, y_test)
    primary = _resolve_metric(metric, y_train, y_test)
    _check_bootstrap_params(n_resamples, _CONFIDENCE)
    if not isinstance(dataset_name, str) or not dataset_name:
        raise ValueError(
            f"dataset_name must be a non-empty string; got {dataset_name!r}."
        )
    _check_output_dir(output_dir)

    plan = [(name, seed) for seed in seeds for name in models]
    log = _RunLog(dataset_name, primary, kinds, np.asarray(y_test), len(plan))
    progress = Progress(
        desc="compare", total=len(plan), unit="run", enabled=bool(verbose)
    )
    try:
        for number, (name, seed) in enumerate(plan, start=1):
            progress.set_postfix(f"{name}, seed {seed}")
            classes, proba, record = _fit_and_predict(
                models[name], seed, X_train, y_train, X_test, n_train, n_test
            )
            score = log.add(name, seed, classes, proba, record)
            progress.update()
            if verbose:
                tqdm.write(
                    f"compare {number}/{len(plan)}: {name}, seed {seed}: "
                    f"{primary}={score:.4f}, fit {record['fit_seconds']:.1f} s",
                    file=sys.stderr,
                )
            if output_dir is not None:
                log.build().save(output_dir)
    except KeyboardInterrupt:
        log.interrupted = True
        logger.warning(
            "Interrupted: reporting the %d of %d runs that finished.",
            len(log.records),
            len(plan),
        )
    finally:
        progress.close()

    comparison = log.build(n_resamples=n_resamples)
    if output_dir is not None:
        comparison.save(output_dir)
    return comparison


def _fit_and_predict(template, seed, X_train, y_train, X_test, n_train, n_test):
    """Fit a fresh clone with ``random_state=seed``; time and measure it."""
    estimator = clone(template).set_params(random_state=seed)
    # Frozen-tower features that an earlier run computed are read from the
    # shared cache; charge their measured cost to this run as well, so that
    # every run costs what it would alone, whatever ran before it.
    saved = feature_cache.seconds_saved
    fit = measure(estimator.fit, X_train, y_train)
    fit_cached = feature_cache.seconds_saved - saved
    if getattr(estimator, "interrupted_", False):
        # The estimator caught Ctrl-C itself and stopped training early: the
        # run is unfinished, so stop the comparison as if it had propagated.
        raise KeyboardInterrupt
    predict = measure(estimator.predict_proba, X_test)
    predict_cached = feature_cache.seconds_saved - saved - fit_cached

    peak, increase = fit.peak_memory_bytes, fit.memory_increase_bytes
    if predict.memory_kind == fit.memory_kind:
        peak = max(peak, predict.peak_memory_bytes)
        increase = max(increase, predict.memory_increase_bytes)
    fit_seconds = fit.wall_seconds + fit_cached
    predict_seconds = predict.wall_seconds + predict_cached
    record = {
        "fit_seconds": fit_seconds,
        "predict_seconds": predict_seconds,
        "fit_samples_per_s": _rate(n_train, fit_seconds),
        "predict_samples_per_s": _rate(n_test, predict_seconds),
        "cached_feature_seconds": fit_cached + predict_cached,
        "peak_memory_mb": peak / 2**20,
        "memory_increase_mb": increase / 2**20,
        "memory_kind": fit.memory_kind,
    }
    return np.asarray(estimator.classes_), predict.result, record


def _rate(n_rows, seconds):
    return n_rows / seconds if seconds > 0 else float("nan")


class _RunLog:
    """The finished runs of one comparison, and what is derived from them."""

    def __init__(self, dataset_name, metric, kinds, y_test, n_planned):
        self.dataset_name = dataset_name
        self.metric = metric
        self.kinds = kinds
        self.y_test = y_test
        self.n_planned = n_planned
        self.records = []
        self.probabilities = {}
        self.classes = None
        self.y_encoded = None
        self.interrupted = False
        self.undefined_metrics = set()

    def add(self, name, seed, classes, proba, record):
        """Check and score one finished run, keep it; return its primary score."""
        self._check_classes(name, seed, classes)
        proba = np.asarray(proba, dtype=float)
        expected = (self.y_encoded.shape[0], self.classes.shape[0])
        if proba.shape != expected:
            raise ValueError(
                f"Model {name!r} (seed {seed}) returned probabilities of shape "
                f"{proba.shape} from predict_proba; expected {expected}, one row "
                "per test row and one column per class."
            )

        scores = {metric: self._score(proba, metric) for metric in METRICS}
        row = {"model": name, "kind": self.kinds[name], "seed": seed}
        self.records.append({**row, **scores, **record})
        self.probabilities.setdefault(name, []).append(proba)
        logger.debug("%s, seed %d: %s", name, seed, scores)
        return scores[self.metric]

    def _check_classes(self, name, seed, classes):
        if self.classes is None:
            self.classes = classes
            try:
                self.y_encoded = _encode_labels(self.y_test, classes, classes.shape[0])
            except ValueError as error:
                raise ValueError(
                    f"y_test holds labels that model {name!r} never saw in "
                    f"fitting (classes_={classes.tolist()}): {error}"
                ) from error
        elif not np.array_equal(classes, self.classes):
            first = self.records[0]["model"] if self.records else name
            raise ValueError(
                f"Model {name!r} (seed {seed}) has classes_={classes.tolist()} but "
                f"model {first!r} has {self.classes.tolist()}; every model must "
                "predict the same classes in the same order. Fit them on the same "
                "y_train."
            )

    def _score(self, proba, metric):
        n_classes = self.classes.shape[0]
        if not _metric_is_defined(self.y_encoded, metric, n_classes):
            if metric not in self.undefined_metrics:
                self.undefined_metrics.add(metric)
                logger.warning(
                    "%s is undefined: y_test lacks some classes; it is reported "
                    "as NaN.",
                    metric,
                )
            return float("nan")
        return score_probabilities(self.y_encoded, proba, metric, n_classes)

    def build(self, n_resamples=None):
        """Return a Comparison of the finished runs.

        Without ``n_resamples`` the gains are left out and the verdict says
        that the comparison is in progress.
        """
        runs = pd.DataFrame(self.records, columns=list(_RUN_COLUMNS))
        summary = _summarise(runs)
        gains = []
        verdict = (
            f"{self.dataset_name}: in progress, {len(runs)} of {self.n_planned} "
            "runs finished"
        )
        if n_resamples is not None:
            gains = self._gains(summary, n_resamples)
            verdict = _verdict(self.dataset_name, summary, gains)
            if self.interrupted:
                verdict += f" (interrupted after {len(runs)} of {self.n_planned} runs)"
        return Comparison(
            dataset_name=self.dataset_name,
            metric=self.metric,
            classes=[] if self.classes is None else self.classes.tolist(),
            runs=runs,
            summary=summary,
            gains=gains,
            verdict=verdict,
            interrupted=self.interrupted,
            probabilities={
                name: np.stack(stack) for name, stack in self.probabilities.items()
            },
            n_runs_planned=self.n_planned,
        )

    def _gains(self, summary, n_resamples):
        """Paired-bootstrap gain of each image or multimodal model over the
        best text model."""
        baseline = _best_model(summary, "text", self.metric)
        if baseline is None:
            return []
        base = summary.set_index("model").loc[baseline]
        gains = []
        for row in summary.to_dict(orient="records"):
            if row["kind"] not in ("image", "multimodal"):
                continue
            seeds, result = self._bootstrap(
                baseline, row["model"], n_resamples, _CONFIDENCE
            )
            same_memory = row["memory_kind"] == base["memory_kind"]
            gains.append(
                {
                    "model": row["model"],
                    "kind": row["kind"],
                    "baseline": baseline,
                    "metric": self.metric,
                    "delta": result.delta,
                    "low": result.low,
                    "high": result.high,
                    "p_value": result.p_value,
                    "confidence": result.confidence,
                    "n_resamples": result.n_resamples,
                    "n_skipped": result.n_skipped,
                    "n_seeds": row["n_seeds"],
                    "baseline_n_seeds": int(base["n_seeds"]),
                    "paired_seeds": seeds,
                    "time_ratio": _ratio(
                        row["fit_seconds_mean"], base["fit_seconds_mean"]
                    ),
                    "predict_time_ratio": _ratio(
                        row["predict_seconds_mean"], base["predict_seconds_mean"]
                    ),
                    "memory_ratio": _ratio(
                        row["peak_memory_mb_mean"], base["peak_memory_mb_mean"]
                    )
                    if same_memory
                    else float("nan"),
                    "memory_kind": row["memory_kind"],
                }
            )
        self._correct_for_selection(gains, n_resamples)
        return gains

    def _correct_for_selection(self, gains, n_resamples):
        """Give the verdict's gain an interval corrected for choosing it.

        The verdict reports the best of ``k`` candidate models; its interval is
        drawn at Bonferroni's level ``1 - (1 - confidence) / k``, from the same
        resamples, so that with no model better than the text the verdict says
        "adds" about as rarely as for a single model.
        """
        chosen, n_compared = _verdict_gain(gains)
        if chosen is None:
            return
        confidence = _CONFIDENCE
        if n_compared > 1:
            confidence = 1 - (1 - _CONFIDENCE) / n_compared
            _, result = self._bootstrap(
                chosen["baseline"], chosen["model"], n_resamples, confidence
            )
            low, high = result.low, result.high
        else:
            low, high = chosen["low"], chosen["high"]
        chosen.update(
            verdict_low=low,
            verdict_high=high,
            verdict_confidence=confidence,
            n_compared=n_compared,
        )

    def _bootstrap(self, baseline, name, n_resamples, confidence):
        """The seeds both models finished, and the paired bootstrap on them."""
        seeds, base_stack, stack = self._paired_stacks(baseline, name)
        result = paired_bootstrap(
            self.y_encoded,
            base_stack,
            stack,
            metric=self.metric,
            classes=np.arange(self.classes.shape[0]),
            n_resamples=n_resamples,
            confidence=confidence,
            random_state=_BOOTSTRAP_SEED,
        )
        return seeds, result

    def _paired_stacks(self, baseline, name):
        """Seeds finished by both models, and their probabilities, seed by seed.

        Every model finishes the same seeds unless the comparison was
        interrupted; then the gain compares the two models on their common
        seeds only, so that a seed's luck (its subsample, its initialisation)
        counts for both or for neither.
        """
        seeds = {model: [] for model in (baseline, name)}
        for record in self.records:
            if record["model"] in seeds:
                seeds[record["model"]].append(record["seed"])
        common = [seed for seed in seeds[baseline] if seed in seeds[name]]
        stacks = [
            np.stack([self.probabilities[model][seeds[model].index(s)] for s in common])
            for model in (baseline, name)
        ]
        return common, *stacks


def _ratio(value, reference):
    if not reference > 0:
        return float("nan")
    return float(value / reference)


def _summarise(runs):
    """One row per model: mean and sample std over seeds of each column."""
    rows = []
    for name, group in runs.groupby("model", sort=False):
        row = {"model": name, "kind": group["kind"].iloc[0], "n_seeds": len(group)}
        for column in _MEASURED_COLUMNS:
            values = group[column].astype(float)
            row[f"{column}_mean"] = float(values.mean())
            row[f"{column}_std"] = float(values.std(ddof=1))
        row["memory_kind"] = "+".join(sorted(group["memory_kind"].unique()))
        rows.append(row)
    columns = ["model", "kind", "n_seeds"]
    for column in _MEASURED_COLUMNS:
        columns += [f"{column}_mean", f"{column}_std"]
    return pd.DataFrame(rows, columns=[*columns, "memory_kind"])


def _best_model(summary, kind, metric):
    """Name of the model of ``kind`` with the best mean ``metric``, or None."""
    candidates = summary[summary["kind"] == kind].dropna(subset=[f"{metric}_mean"])
    if candidates.empty:
        return None
    means = candidates[f"{metric}_mean"]
    best = means.idxmax() if greater_is_better(metric) else means.idxmin()
    return candidates.loc[best, "model"]


def _verdict_gain(gains):
    """The gain the verdict is about, and the number of models it was chosen from.

    The multimodal model (text plus image) with the best delta; image-only
    models only when there is no multimodal one.
    """
    if not gains:
        return None, 0
    multimodal = [gain for gain in gains if gain["kind"] == "multimodal"]
    candidates = multimodal or gains
    sign = 1 if greater_is_better(candidates[0]["metric"]) else -1
    return max(candidates, key=lambda g: sign * g["delta"]), len(candidates)


def _verdict(dataset_name, summary, gains):
    """One line: does the image help, by how much, and at what cost."""
    if summary.empty:
        return f"{dataset_name}: no run finished"
    if not (summary["kind"] == "text").any():
        return f"{dataset_name}: no text-only model to compare the image against"
    if not gains:
        return f"{dataset_name}: no image or multimodal model to compare"

    gain, n_compared = _verdict_gain(gains)
    sign = 1 if greater_is_better(gain["metric"]) else -1
    low, high = gain["verdict_low"], gain["verdict_high"]

    metric = gain["metric"]
    numbers_ = f"{gain['delta']:+.3f} {metric} [{low:.3f}, {high:.3f}]"
    names = f"{gain['model']} vs {gain['baseline']}"
    if n_compared > 1:
        names += (
            f"; {gain['verdict_confidence']:.1%} interval, the best of "
            f"{n_compared} models"
        )
    cost = f"at {gain['time_ratio']:.1f}x time"
    if not math.isnan(gain["memory_ratio"]):
        cost += f" and {gain['memory_ratio']:.1f}x memory"

    better = low > 0 if sign > 0 else high < 0
    worse = high < 0 if sign > 0 else low > 0
    alone = gain["kind"] == "image"
    if better:
        lead = "the image alone beats the text by" if alone else "image adds"
        return f"{dataset_name}: {lead} {numbers_} {cost} ({names})"
    if worse:
        lead = (
            "the image alone is worse than the text:" if alone else "the image hurts:"
        )
        return f"{dataset_name}: {lead} {numbers_} {cost} ({names})"
    lead = (
        "no significant difference between the image alone and the text"
        if alone
        else "no significant gain from the image"
    )
    return f"{dataset_name}: {lead} ({numbers_}; {names})"


def _check_output_dir(output_dir):
    """Refuse, before any run, an ``output_dir`` that is a file."""
    if output_dir is None:
        return
    path = Path(os.fspath(output_dir)).expanduser()
    for folder in (path, *path.parents):
        if folder.exists():
            if not folder.is_dir():
                raise ValueError(
                    f"output_dir={os.fspath(output_dir)!r}: {folder} is a file, so "
                    "the report folder cannot be created there. Pass a folder path."
                )
            return


def _check_seeds(seeds):
    message = (
        "seeds must be a non-empty sequence of distinct integers, e.g. "
        f"(0, 1, 2); got {seeds!r}."
    )
    if isinstance(seeds, str | bytes) or not hasattr(seeds, "__iter__"):
        raise ValueError(message)
    seeds = list(seeds)
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(message)
    for seed in seeds:
        if not isinstance(seed, numbers.Integral) or isinstance(seed, bool):
            raise ValueError(message)
    return [int(seed) for seed in seeds]


def _check_models(models):
    if not isinstance(models, Mapping) or not models:
        raise ValueError(
            "models must be a non-empty dict of name -> unfitted estimator, e.g. "
            f"{{'text': TextClassifier(...)}}; got {models!r}."
        )
    problems = []
    for name, estimator in models.items():
        if not isinstance(name, str):
            problems.append(f"name {name!r} is not a string")
            continue
        missing = [
            method
            for method in ("fit", "predict_proba", "get_params", "set_params")
            if not callable(getattr(estimator, method, None))
        ]
        if missing:
            problems.append(f"{name!r} lacks {', '.join(missing)}")
        elif "random_state" not in estimator.get_params(deep=False):
            problems.append(
                f"{name!r} ({type(estimator).__name__}) has no random_state "
                "parameter, which compare sets to each seed"
            )
    if problems:
        raise ValueError(
            "models must map names to scikit-learn style classifiers with fit, "
            f"predict_proba and a random_state parameter: {'; '.join(problems)}."
        )
    return models


def _resolve_kinds(models, kinds):
    """Return the kind of every model: given in ``kinds`` or inferred."""
    if kinds is None:
        kinds = {}
    if not isinstance(kinds, Mapping):
        raise ValueError(
            f"kinds must be a dict of model name -> kind or None; got {kinds!r}."
        )
    unknown = sorted(set(kinds) - set(models), key=str)
    if unknown:
        raise ValueError(
            f"kinds names models that are not in models: {unknown}; the models "
            f"are {list(models)}."
        )
    bad = {name: kind for name, kind in kinds.items() if kind not in KINDS}
    if bad:
        raise ValueError(f"kinds values must be one of {list(KINDS)}; got {bad}.")
    return {
        name: kinds[name] if name in kinds else _infer_kind(name, estimator)
        for name, estimator in models.items()
    }


def _infer_kind(name, estimator):
    """Kind of a model from its ``modalities`` parameter; text when absent."""
    params = estimator.get_params(deep=False)
    if "modalities" not in params:
        return "text"
    modalities = params["modalities"]
    if isinstance(modalities, str):
        modalities = (modalities,)
    try:
        kind = _MODALITY_KINDS.get(frozenset(modalities))
    except TypeError:
        kind = None
    if kind is None:
        raise ValueError(
            f"Cannot infer the kind of model {name!r} from "
            f"modalities={params['modalities']!r}; pass "
            f"kinds={{{name!r}: 'multimodal'}} (or 'text', 'image')."
        )
    return kind


def _num_rows(data, name):
    try:
        return data.shape[0] if hasattr(data, "shape") else len(data)
    except TypeError:
        raise ValueError(
            f"{name} must be array-like with one entry per row; got "
            f"{type(data).__name__}."
        ) from None


def _check_data(X_train, y_train, X_test, y_test):
    sizes = {
        name: _num_rows(data, name)
        for name, data in (
            ("X_train", X_train),
            ("y_train", y_train),
            ("X_test", X_test),
            ("y_test", y_test),
        )
    }
    for X_name, y_name in (("X_train", "y_train"), ("X_test", "y_test")):
        if sizes[X_name] != sizes[y_name]:
            raise ValueError(
                f"{X_name} has {sizes[X_name]} rows but {y_name} has "
                f"{sizes[y_name]}; they must describe the same rows."
            )
        if sizes[X_name] == 0:
            raise ValueError(f"{X_name} and {y_name} are empty; pass some rows.")
    return sizes["X_train"], sizes["X_test"]


def _resolve_metric(metric, y_train, y_test):
    """The primary metric, checked against the labels."""
    if metric != "auto" and metric not in METRICS:
        raise ValueError(
            f"metric must be 'auto' or one of {list(METRICS)}; got {metric!r}."
        )
    train_classes = np.unique(np.asarray(y_train))
    if train_classes.size < 2:
        raise ValueError(
            f"y_train must hold at least two classes; got {train_classes.tolist()}."
        )
    test_classes = np.unique(np.asarray(y_test))
    unseen = np.setdiff1d(test_classes, train_classes)
    if unseen.size:
        raise ValueError(
            f"y_test holds labels absent from y_train: {unseen[:5].tolist()}; "
            "every test label must be learnt in training."
        )
    if metric == "auto":
        metric = "roc_auc" if train_classes.size == 2 else "accuracy"
    if metric == "roc_auc" and test_classes.size < train_classes.size:
        raise ValueError(
            "metric='roc_auc' needs every class in y_test, which holds "
            f"{test_classes.size} of {train_classes.size}; pass metric='accuracy' "
            "(--metric accuracy on the command line) or use a stratified test "
            "split."
        )
    return metric
