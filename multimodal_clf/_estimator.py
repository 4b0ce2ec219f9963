"""The shared scikit-learn base of :class:`TextClassifier` and
:class:`MultimodalClassifier`.

Everything an estimator does happens in ``fit``: parameters are checked, inputs
coerced, the backbone loaded and the engine run. ``__init__`` only stores.
"""

import functools
import logging
import warnings

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.model_selection import train_test_split
from sklearn.utils import check_random_state
from sklearn.utils.class_weight import compute_class_weight
from sklearn.utils.validation import check_is_fitted

from multimodal_clf import _params as P
from multimodal_clf._model import (
    ClassifierModel,
    compute_frozen_features,
    freeze_parameters,
    train_used_embeddings,
)
from multimodal_clf.backbones import load_backbone
from multimodal_clf.data._batching import Rows
from multimodal_clf.data._columns import (
    check_labels,
    check_texts,
    check_unseen_labels,
    split_columns,
)
from multimodal_clf.engine import PRECISIONS, Trainer, check_device, resolve_device
from multimodal_clf.engine._precision import resolve_precision
from multimodal_clf.exceptions import NotFittedError
from multimodal_clf.heads import make_head

logger = logging.getLogger(__name__)

#: Parameters that every estimator shares, with their rules.
SHARED_RULES = {
    "max_length": P.optional(P.integer(1)),
    "batch_size": P.integer(1),
    "epochs": P.integer(1),
    "learning_rate": P.real(0, low_open=True),
    "head_learning_rate": P.optional(P.real(0, low_open=True)),
    "weight_decay": P.real(0),
    "warmup_ratio": P.real(0, 1),
    "class_weight": P.custom(
        lambda v: v is None or v == "balanced" or isinstance(v, dict),
        "None, 'balanced' or a dict {label: weight}",
    ),
    "validation_fraction": P.real(0, 1, high_open=True),
    "early_stopping": P.boolean(),
    "patience": P.integer(1),
    "precision": P.one_of(*PRECISIONS),
    "gradient_checkpointing": P.boolean(),
    "gradient_accumulation_steps": P.integer(1),
    "freeze_backbone": P.boolean(),
    "freeze": P.custom(
        lambda v: (
            v is None
            or (isinstance(v, int) and not isinstance(v, bool) and v >= 0)
            or isinstance(v, str)
            or (isinstance(v, (list, tuple)) and all(isinstance(s, str) for s in v))
        ),
        "None, a number of layers >= 0, or parameter-name prefixes (str or list)",
    ),
    "device": P.custom(
        lambda v: check_device(v) is None,
        "'auto', 'cpu', 'cuda', 'cuda:<index>' or 'mps'",
    ),
    "cache_features": P.boolean(),
    "warm_start": P.boolean(),
    "random_state": P.custom(
        lambda v: (
            v is None
            or (isinstance(v, int) and not isinstance(v, bool))
            or isinstance(v, np.random.RandomState)
        ),
        "None, an int or a numpy RandomState",
    ),
    "verbose": P.integer(0),
    "text_column": P.string(),
}

#: The head learning rate used with ``head_learning_rate=None`` and a frozen backbone.
FROZEN_HEAD_LEARNING_RATE = 1e-3


class BaseClassifier(ClassifierMixin, BaseEstimator):
    """Shared fit / predict skeleton; subclasses declare modalities and the head."""

    _rules = SHARED_RULES

    # --- what subclasses define ----------------------------------------------
    def _modalities(self):
        return ("text",)

    def _head_options(self):
        return {"fusion": "concat", "hidden": 0, "dropout": 0.1}

    def _image_options(self):
        return {}

    # --- sklearn plumbing ----------------------------------------------------
    def __sklearn_is_fitted__(self):
        return hasattr(self, "model_")

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.string = True
        tags.input_tags.two_d_array = False
        tags.input_tags.categorical = False
        tags.non_deterministic = self.random_state is None
        return tags

    def _check_fitted(self):
        check_is_fitted(self)

    # --- inputs --------------------------------------------------------------
    def _columns(self, X):
        """Split X and check each column; returns ``{modality: list}``."""
        modalities = self._modalities()
        columns = split_columns(
            X,
            modalities=modalities,
            text_column=self.text_column,
            image_column=getattr(self, "image_column", "image"),
        )
        if "text" in columns:
            columns["text"] = check_texts(columns["text"], column=self.text_column)
        if not len(next(iter(columns.values()))):
            raise ValueError("X has 0 rows; fit and predict need at least one row.")
        return columns

    def _load_images(self, values, positions=None):
        raise TypeError(f"{type(self).__name__} reads no images.")

    def _row_weights(self, y, classes, sample_weight):
        weights = np.ones(len(y), dtype=np.float64)
        if sample_weight is not None:
            sw = np.asarray(sample_weight, dtype=np.float64)
            if sw.shape != (len(y),):
                raise ValueError(
                    f"sample_weight has shape {sw.shape}; it needs one weight per row "
                    f"of X, shape ({len(y)},)."
                )
            bad = np.flatnonzero(~np.isfinite(sw) | (sw < 0))
            if bad.size:
                raise ValueError(
                    f"sample_weight must be finite and >= 0; rows {bad[:10].tolist()} "
                    "are not."
                )
            weights *= sw
        if self.class_weight == "balanced":
            per_class = compute_class_weight(
                "balanced", classes=np.arange(len(classes)), y=y
            )
            weights *= per_class[y]
        elif isinstance(self.class_weight, dict):
            unknown = [k for k in self.class_weight if k not in set(classes.tolist())]
            if unknown:
                raise ValueError(
                    f"class_weight names labels that are not in y: {unknown!r}. The "
                    f"labels are {classes.tolist()!r}."
                )
            per_class = np.array(
                [float(self.class_weight.get(c, 1.0)) for c in classes.tolist()]
            )
            weights *= per_class[y]
        return weights if (sample_weight is not None or self.class_weight) else None

    # --- fit -----------------------------------------------------------------
    def _seed(self):
        if isinstance(self.random_state, (int, np.integer)):
            return int(self.random_state)
        return int(check_random_state(self.random_state).randint(0, 2**31 - 1))

    def _build_model(self, n_classes):
        backbone = load_backbone(self.backbone, self._modalities())
        backbone.set_max_length(self.max_length)
        freeze_parameters(backbone, True if self.freeze_backbone else self.freeze)
        if self.gradient_checkpointing:
            backbone.enable_gradient_checkpointing()
        options = self._head_options()
        head = make_head(
            options["fusion"],
            backbone.feature_dims,
            n_classes,
            hidden=options["hidden"],
            dropout=options["dropout"],
        )
        return ClassifierModel(backbone, head)

    def _encode(self, model, columns, *, device, precision, use_cache):
        """Raw columns -> :class:`Rows`, with frozen towers' features computed."""
        frozen = set(model.frozen_features())
        encoded = {}
        for name in frozen:
            encoded[name] = compute_frozen_features(
                model,
                name,
                columns,
                load_images=self._load_images,
                device=device,
                precision=precision,
                batch_size=self.batch_size,
                use_cache=use_cache,
                image_root=getattr(self, "image_root", None),
            )
        needed = {
            m
            for name in model.backbone.feature_dims
            if name not in frozen
            for m in model.backbone.feature_inputs(name)
        }
        encoded.update(model.backbone.encode(columns, needed, self._load_images))
        return Rows(encoded)

    def _split_validation(self, rows, y, seed):
        if not self.early_stopping or self.validation_fraction == 0:
            return rows, None
        n_valid = int(round(self.validation_fraction * len(rows)))
        if n_valid < 1 or len(rows) - n_valid < 1:
            warnings.warn(
                f"validation_fraction={self.validation_fraction} leaves no "
                f"validation rows out of {len(rows)}; training without early "
                "stopping.",
                UserWarning,
                stacklevel=3,
            )
            return rows, None
        counts = np.bincount(y)
        stratify = (
            y if counts[counts > 0].min() >= 2 and n_valid >= len(counts) else None
        )
        train_idx, valid_idx = train_test_split(
            np.arange(len(rows)),
            test_size=n_valid,
            random_state=seed,
            stratify=stratify,
        )
        return rows.take(np.sort(train_idx)), rows.take(np.sort(valid_idx))

    def _make_trainer(self, model, device, seed, frozen):
        head_lr = self.head_learning_rate
        if head_lr is None:
            head_lr = FROZEN_HEAD_LEARNING_RATE if frozen else self.learning_rate
        return Trainer(
            model,
            device=device,
            epochs=self.epochs,
            batch_size=self.batch_size,
            learning_rate=self.learning_rate,
            head_learning_rate=head_lr,
            weight_decay=self.weight_decay,
            warmup_ratio=self.warmup_ratio,
            precision=self.precision,
            gradient_accumulation_steps=self.gradient_accumulation_steps,
            early_stopping=self.early_stopping,
            patience=self.patience,
            seed=seed,
            verbose=int(self.verbose),
        )

    def fit(self, X, y, sample_weight=None):
        """Fine-tune the backbone and a classification head on (X, y).

        Parameters
        ----------
        X : DataFrame, list or array of rows
            See the class documentation for the accepted layouts.
        y : array-like of shape (n_samples,)
            Class labels, all strings or all numbers.
        sample_weight : array-like of shape (n_samples,), default=None
            Per-row weights of the loss.

        Returns
        -------
        self
        """
        P.check_parameters(self, self._rules)
        device = resolve_device(self.device)
        precision = resolve_precision(self.precision, device)
        columns = self._columns(X)
        n_rows = len(next(iter(columns.values())))
        y_encoded, classes = check_labels(y, n_rows)
        weights = self._row_weights(y_encoded, classes, sample_weight)
        seed = self._seed()

        reuse = (
            self.warm_start
            and hasattr(self, "model_")
            and np.array_equal(getattr(self, "classes_", None), classes)
        )
        cuda = [device.index or 0] if device.type == "cuda" else []
        with torch.random.fork_rng(devices=cuda):
            torch.manual_seed(seed)
            model = self.model_ if reuse else self._build_model(len(classes))
            use_cache = self.cache_features and not reuse
            rows = self._encode(
                model, columns, device=device, precision=precision, use_cache=use_cache
            )
            rows.targets, rows.weights = y_encoded, weights
            train, valid = self._split_validation(rows, y_encoded, seed)
            all_frozen = len(model.frozen_features()) == len(
                model.backbone.feature_dims
            )
            trainer = self._make_trainer(model, device, seed, all_frozen)
            with train_used_embeddings(model, train, valid):
                self.history_ = trainer.fit(train, valid)
        self.model_ = model
        self.classes_ = classes
        self.n_iter_ = len(self.history_)
        self.interrupted_ = trainer.interrupted
        self.tokenizer_ = model.backbone.tokenizer
        self.image_processor_ = model.backbone.image_processor
        return self

    # --- predict -------------------------------------------------------------
    def _predict_logits(self, X):
        self._check_fitted()
        device = resolve_device(self.device)
        precision = resolve_precision(self.precision, device)
        columns = self._columns(X)
        self.model_.to(device)
        rows = self._encode(
            self.model_,
            columns,
            device=device,
            precision=precision,
            use_cache=self.cache_features and not self.warm_start,
        )
        from multimodal_clf.engine import predict_logits

        return predict_logits(
            self.model_,
            rows,
            device=device,
            precision=precision,
            batch_size=self.batch_size,
        )

    def predict_proba(self, X):
        """Class probabilities, one column per entry of ``classes_``.

        Returns
        -------
        ndarray of float32, shape (n_samples, n_classes)
        """
        logits = self._predict_logits(X)
        return torch.softmax(logits, dim=1).numpy().astype(np.float32)

    def predict_log_proba(self, X):
        """Logarithm of :meth:`predict_proba`."""
        logits = self._predict_logits(X)
        return torch.log_softmax(logits, dim=1).numpy().astype(np.float32)

    def predict(self, X):
        """Predicted labels, of the same type as the labels given to ``fit``."""
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]

    def score(self, X, y, sample_weight=None):
        """Mean accuracy on (X, y); labels unseen during fit are an error."""
        self._check_fitted()
        check_unseen_labels(y, self.classes_)
        return super().score(X, y, sample_weight=sample_weight)


def fitted_only(method):
    """Raise :class:`NotFittedError` from ``method`` until the estimator is fitted."""

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        if not hasattr(self, "model_"):
            raise NotFittedError(
                f"This {type(self).__name__} instance is not fitted yet. Call "
                "'fit' with appropriate arguments before using this estimator."
            )
        return method(self, *args, **kwargs)

    return wrapper
