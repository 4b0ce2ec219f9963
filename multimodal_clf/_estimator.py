"""The shared scikit-learn base of :class:`TextClassifier` and
:class:`MultimodalClassifier`.

Everything an estimator does happens in ``fit``: parameters are checked, inputs
coerced, the backbone loaded and the engine run. ``__init__`` only stores.
"""

import gc
import hashlib
import logging
import os
import warnings

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.metrics import accuracy_score
from sklearn.model_selection import train_test_split
from sklearn.utils import check_random_state
from sklearn.utils.class_weight import compute_class_weight

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
from multimodal_clf.engine import (
    PRECISIONS,
    Trainer,
    check_device,
    predict_logits,
    resolve_device,
)
from multimodal_clf.engine import _distributed as D
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
    "checkpoint_dir": P.optional(P.path_like()),
}

#: Parameters that may differ between a checkpointed run and its resumption: they
#: change where and how fast it runs, not what it computes (``batch_size``,
#: ``epochs`` and ``gradient_accumulation_steps`` are checked as the number of
#: optimizer steps, the backbone as the model's weights, the seed is the run's).
_RESUMABLE_CHANGES = frozenset(
    {
        "backbone",
        "batch_size",
        "cache_features",
        "checkpoint_dir",
        "device",
        "epochs",
        "gradient_accumulation_steps",
        "gradient_checkpointing",
        "image_column",
        "image_root",
        "max_image_pixels",
        "precision",
        "random_state",
        "text_column",
        "verbose",
        "warm_start",
    }
)

#: What ``fit`` sets, all of which a failed continued fit removes.
_FITTED_ATTRIBUTES = (
    "model_",
    "classes_",
    "history_",
    "n_iter_",
    "interrupted_",
    "tokenizer_",
    "image_processor_",
)

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
        # Rows are texts (and images), a list of row dicts or a DataFrame of
        # named columns; never a numeric matrix, sparse or not.
        tags.input_tags.string = True
        tags.input_tags.dict = True
        tags.input_tags.two_d_array = False
        tags.input_tags.sparse = False
        tags.input_tags.categorical = False
        tags.input_tags.allow_nan = False
        tags.non_deterministic = self.random_state is None
        return tags

    def _check_fitted(self):
        if not self.__sklearn_is_fitted__():
            raise NotFittedError(
                f"This {type(self).__name__} instance is not fitted yet. Call "
                "fit(X, y) before predict, predict_proba, predict_log_proba or "
                "score."
            )

    # --- inputs --------------------------------------------------------------
    def _columns(self, X):
        """Split X and check each column; returns ``{modality: list}``."""
        modalities = self._modalities()
        columns = split_columns(
            X,
            modalities=modalities,
            text_column=self.text_column,
            image_column=getattr(self, "image_column", "image"),
            pairs=hasattr(self, "image_column"),
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
            sw = _check_sample_weight(sample_weight, len(y))
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
                    f"labels are {classes.tolist()!r}; use them as the keys of "
                    "class_weight, or drop the others."
                )
            per_class = np.array(
                [_class_weight_value(self.class_weight, c) for c in classes.tolist()]
            )
            weights *= per_class[y]
        if not weights.any():
            source = "sample_weight" if sample_weight is not None else ""
            if self.class_weight is not None:
                source += (" times " if source else "") + "class_weight"
            raise ValueError(
                f"Every row weight is zero ({source}), so there is nothing to learn "
                "from. Give at least one row of at least one class a positive weight."
            )
        return weights if (sample_weight is not None or self.class_weight) else None

    # --- fit -----------------------------------------------------------------
    def _seed(self):
        if isinstance(self.random_state, (int, np.integer)):
            return int(self.random_state)
        return int(check_random_state(self.random_state).randint(0, 2**31 - 1))

    def _build_model(self, n_classes, *, saved_backbone=None):
        """Backbone + head; from the configs of a saved folder if given."""
        if saved_backbone is None:
            backbone = load_backbone(self.backbone, self._modalities())
        else:
            backbone = load_backbone(
                saved_backbone, self._modalities(), from_config=True
            )
        backbone.set_max_length(self.max_length)
        # Loading a saved model rebuilds it quietly: fit has warned already.
        fitting = saved_backbone is None
        freeze_parameters(
            backbone, True if self.freeze_backbone else self.freeze, warn=fitting
        )
        if self.gradient_checkpointing:
            backbone.enable_gradient_checkpointing()
        options = self._head_options()
        fusion = options.pop("fusion")
        if fitting and fusion != "concat" and len(backbone.feature_dims) == 1:
            (feature,) = backbone.feature_dims
            warnings.warn(
                f"fusion={fusion!r} has nothing to fuse: this {backbone.family} "
                f"backbone with modalities={self._modalities()!r} gives the head "
                f"the single feature {feature!r}. The head reads it alone; leave "
                "fusion at its default, 'concat'.",
                UserWarning,
                stacklevel=3,
            )
        head = make_head(fusion, backbone.feature_dims, n_classes, **options)
        return ClassifierModel(backbone, head)

    def _resolve_devices(self):
        """This process's device and, for DataParallel, its GPUs.

        Under ``torchrun`` this starts the process group (once per process).
        """
        device = D.start_process_group(resolve_device(self.device))
        return device, D.data_parallel_ids(self.device, device)

    def _encode(self, model, columns, *, device, precision, use_cache, device_ids=None):
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
                max_image_pixels=getattr(self, "max_image_pixels", None),
                device_ids=device_ids,
                verbose=int(self.verbose),
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
        # Stratifying needs two rows of every class and room for each class on
        # both sides of the split; otherwise the split is drawn at random.
        counts = np.bincount(y)
        n_classes = np.count_nonzero(counts)
        stratify = (
            y
            if counts[counts > 0].min() >= 2
            and min(n_valid, len(rows) - n_valid) >= n_classes
            else None
        )
        train_idx, valid_idx = train_test_split(
            np.arange(len(rows)),
            test_size=n_valid,
            random_state=seed,
            stratify=stratify,
        )
        return rows.take(np.sort(train_idx)), rows.take(np.sort(valid_idx))

    def _make_trainer(self, model, device, seed, frozen, device_ids=None):
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
            device_ids=device_ids,
        )

    def _checkpointer(self, classes, n_rows, resume, rows=None):
        """The callback that writes (and with ``resume`` reads) checkpoints.

        Its metadata identifies the run, so that ``resume`` refuses a checkpoint
        of other data (``rows``: the columns, encoded labels and row weights,
        fingerprinted) or of other settings.
        """
        if self.checkpoint_dir is None:
            if resume:
                raise ValueError(
                    "resume=True needs checkpoint_dir: set checkpoint_dir to the "
                    "folder of the interrupted run's checkpoints."
                )
            return None
        from multimodal_clf.engine._checkpoint import CheckpointCallback

        metadata = {
            "estimator": type(self).__name__,
            "classes": classes.tolist(),
            "n_rows": n_rows,
        }
        if rows is not None:
            metadata["rows"] = _fingerprint(*rows)
        params = self.get_params(deep=False)
        metadata.update(
            {
                name: params[name]
                for name in sorted(params)
                if name not in _RESUMABLE_CHANGES
            }
        )
        callback = CheckpointCallback(
            self.checkpoint_dir, resume=resume, metadata=metadata
        )
        callback.prepare()
        return callback

    def fit(self, X, y, sample_weight=None, *, resume=False):
        """Fine-tune the backbone and a classification head on (X, y).

        Parameters
        ----------
        X : DataFrame, list or array of rows
            See the class documentation for the accepted layouts.
        y : array-like of shape (n_samples,)
            Class labels, all strings or all numbers.
        sample_weight : array-like of shape (n_samples,), default=None
            Per-row weights of the loss.
        resume : bool, default=False
            Continue the run whose checkpoints are in ``checkpoint_dir`` from its
            last complete epoch, with the same X, y and parameters; on the CPU
            the result equals that of an uninterrupted fit. Without a checkpoint
            there yet, training starts from the beginning (with a warning).

        Returns
        -------
        self
        """
        # Under torchrun, warnings and log lines are shown once, by rank 0.
        with D.quiet_on_other_ranks():
            P.check_parameters(self, self._rules)
            _check_not_forked_from_cuda(self)
            device, device_ids = self._resolve_devices()
            precision = resolve_precision(self.precision, device)
            columns = self._columns(X)
            n_rows = len(next(iter(columns.values())))
            y_encoded, classes = check_labels(y, n_rows)
            weights = self._row_weights(y_encoded, classes, sample_weight)
            seed = D.broadcast_seed(self._seed())
            checkpointer = self._checkpointer(
                classes, n_rows, resume, rows=(columns, y_encoded, weights)
            )
            if resume and checkpointer is not None:
                saved = checkpointer.saved_seed()
                seed = seed if saved is None else saved

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
                    model,
                    columns,
                    device=device,
                    precision=precision,
                    use_cache=use_cache,
                    device_ids=device_ids,
                )
                rows.targets, rows.weights = y_encoded, weights
                train, valid = self._split_validation(rows, y_encoded, seed)
                all_frozen = len(model.frozen_features()) == len(
                    model.backbone.feature_dims
                )
                trainer = self._make_trainer(
                    model, device, seed, all_frozen, device_ids=device_ids
                )
                if checkpointer is not None:
                    trainer.callbacks.append(checkpointer)
                # Checkpoints written during fit must hold the whole token table.
                compact = checkpointer is None
                with train_used_embeddings(model, train, valid, enabled=compact):
                    try:
                        self.history_ = trainer.fit(train, valid)
                    except BaseException:
                        # Training failed: a continued fit has left model_
                        # half-trained, and a refit's attributes would describe
                        # the fit before with other data or parameters, so the
                        # estimator is left unfitted.
                        self._forget_fit()
                        raise
            self.model_ = model
            self.classes_ = classes
            self.n_iter_ = len(self.history_)
            self.interrupted_ = trainer.interrupted
            # The optimizer state and encoded rows die here; give their GPU memory
            # back so that the next fit of a search starts from an empty cache.
            del trainer, rows, train, valid
            _release_device_memory(device)
            self.tokenizer_ = model.backbone.tokenizer
            self.image_processor_ = model.backbone.image_processor
            return self

    def _forget_fit(self):
        """Remove every fitted attribute, leaving the estimator unfitted."""
        for name in _FITTED_ATTRIBUTES:
            self.__dict__.pop(name, None)

    # --- persistence ---------------------------------------------------------
    def save(self, path):
        """Save the fitted estimator to a folder: safetensors and JSON, no pickle.

        The folder is complete before it replaces an earlier save at ``path``.
        Load it with :meth:`load` or :func:`multimodal_clf.load`, on any machine,
        without the original backbone checkpoint or network access.

        Parameters
        ----------
        path : str or path-like

        Returns
        -------
        pathlib.Path
        """
        from multimodal_clf.persistence import save

        return save(self, path)

    @classmethod
    def load(cls, path, *, device=None):
        """Load an estimator of this class saved with :meth:`save`.

        Parameters
        ----------
        path : str or path-like
        device : str or torch.device, default=None
            Overrides the saved ``device``; see :func:`multimodal_clf.load`.

        Returns
        -------
        estimator
        """
        from multimodal_clf.persistence import load

        return load(path, device=device, estimator_class=cls)

    def __getstate__(self):
        # Pickles (joblib, GridSearchCV workers) carry CPU weights so they load
        # on machines without the training GPU; predict moves them back.
        model = self.__dict__.get("model_")
        if model is not None:
            model.to("cpu")
        return super().__getstate__()

    # --- predict -------------------------------------------------------------
    def _predict_logits(self, X):
        with D.quiet_on_other_ranks():
            self._check_fitted()
            # set_params after fit can change what prediction reads (batch_size,
            # device, precision): check the values as fit does.
            P.check_parameters(self, self._rules)
            _check_not_forked_from_cuda(self)
            device, device_ids = self._resolve_devices()
            precision = resolve_precision(self.precision, device)
            columns = self._columns(X)
            self.model_.to(device)
            # Some backbones draw random numbers even in eval mode (ViLT shuffles its
            # image patches): a fixed seed keeps predictions reproducible and leaves
            # the caller's random state alone.
            cuda = [device.index or 0] if device.type == "cuda" else []
            with torch.random.fork_rng(devices=cuda):
                torch.manual_seed(0)
                rows = self._encode(
                    self.model_,
                    columns,
                    device=device,
                    precision=precision,
                    use_cache=self.cache_features and not self.warm_start,
                    device_ids=device_ids,
                )
                return predict_logits(
                    self.model_,
                    rows,
                    device=device,
                    precision=precision,
                    batch_size=self.batch_size,
                    device_ids=device_ids,
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
        proba = self.predict_proba(X)
        return self.classes_[np.argmax(proba, axis=1)]

    def score(self, X, y, sample_weight=None):
        """Mean accuracy on (X, y); labels unseen during fit are an error."""
        self._check_fitted()
        labels = check_unseen_labels(y, self.classes_)
        predicted = self.predict(X)
        if len(labels) != len(predicted):
            raise ValueError(
                f"X and y have different lengths: X has {len(predicted)} rows, y has "
                f"{len(labels)} labels. Pass one label per row."
            )
        if sample_weight is not None:
            sample_weight = _check_sample_weight(sample_weight, len(labels))
        return accuracy_score(labels, predicted, sample_weight=sample_weight)


def _check_sample_weight(sample_weight, n_rows):
    """Per-row weights as floats, checked: one per row, finite and >= 0."""
    try:
        weights = np.asarray(sample_weight, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise TypeError(
            f"sample_weight must hold numbers, one weight per row of X; converting "
            f"it failed ({error}). Pass a list or array of floats."
        ) from None
    if weights.shape != (n_rows,):
        raise ValueError(
            f"sample_weight has shape {weights.shape}; it needs one weight per row "
            f"of X, shape ({n_rows},)."
        )
    bad = np.flatnonzero(~np.isfinite(weights) | (weights < 0))
    if bad.size:
        rows = "\n".join(f"  row {row}: {weights[row].item()!r}" for row in bad[:10])
        more = f"\n  ... and {bad.size - 10} more rows" if bad.size > 10 else ""
        raise ValueError(
            f"sample_weight must be finite and >= 0; {bad.size} rows are not:\n"
            f"{rows}{more}\nFix those weights or drop the rows."
        )
    return weights


def _class_weight_value(class_weight, label):
    """The weight ``class_weight`` gives ``label`` (1 when absent), checked."""
    value = class_weight.get(label, 1.0)
    if (
        not isinstance(value, (int, float, np.integer, np.floating))
        or isinstance(value, (bool, np.bool_))
        or not np.isfinite(value)
        or value < 0
    ):
        raise ValueError(
            f"class_weight[{label!r}] is {value!r}; class weights must be finite "
            "numbers >= 0. Fix the dict passed as class_weight."
        )
    return float(value)


def _check_not_forked_from_cuda(estimator):
    """Refuse CUDA in a child process forked after its parent initialised CUDA.

    CUDA cannot be initialised again in such a child: without this check the
    first CUDA call deep inside PyTorch fails with a message that names neither
    the cause nor the fix.
    """
    device = estimator.device
    kind = device.type if isinstance(device, torch.device) else str(device)
    if kind != "auto" and not kind.startswith("cuda"):
        return
    in_bad_fork = getattr(torch.cuda, "_is_in_bad_fork", lambda: False)
    if in_bad_fork():
        raise RuntimeError(
            f"{type(estimator).__name__}(device={device!r}) cannot use CUDA in this "
            "process: it was forked from a parent that had already initialised "
            "CUDA, and CUDA cannot start again in a forked child. This happens "
            "with n_jobs > 1 under a fork-based backend (joblib's "
            "'multiprocessing', or multiprocessing's 'fork' start method). Use "
            "n_jobs=1 (one GPU runs one fit at a time anyway), joblib's default "
            "'loky' backend or the 'spawn' start method, or device='cpu'."
        )


def _release_device_memory(device):
    """Return cached GPU memory to the driver once a fit's tensors are freed."""
    if device.type != "cuda":
        return
    gc.collect()
    torch.cuda.empty_cache()


def _fingerprint(columns, labels, weights):
    """A short hash of the training rows, for telling one run's data from another's.

    Texts and labels count by value; images by their path, or by their pixels
    when given as arrays or PIL images; everything in row order.
    """
    digest = hashlib.sha256()
    for name in sorted(columns):
        digest.update(name.encode())
        for value in columns[name]:
            digest.update(b"\0")
            if isinstance(value, (str, os.PathLike)):
                digest.update(os.fsencode(value))
            elif isinstance(value, bytes):
                digest.update(value)
            else:
                digest.update(np.ascontiguousarray(np.asarray(value)).tobytes())
    digest.update(np.asarray(labels, dtype=np.int64).tobytes())
    digest.update(np.asarray(weights, dtype=np.float64).tobytes())
    return digest.hexdigest()[:16]
