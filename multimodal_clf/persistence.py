"""Save fitted estimators to a folder and load them back, safely and offline.

A saved folder holds only safetensors and JSON files (see the persistence page
of the documentation for the layout). Loading rebuilds the architecture from the
saved configs, so neither the original backbone checkpoint nor the network is
needed, and it never runs code from the folder: no pickle, no ``torch.load``, no
``trust_remote_code``.
"""

import logging
import os
import warnings
from pathlib import Path

import numpy as np
import torch

from multimodal_clf._version import __version__
from multimodal_clf.engine import _distributed as D
from multimodal_clf.engine._checkpoint import (
    atomic_folder,
    from_json,
    load_tensors,
    read_json,
    save_tensors,
    to_json,
    write_json,
)
from multimodal_clf.exceptions import CheckpointError, NotFittedError

logger = logging.getLogger(__name__)

__all__ = ["FORMAT_VERSION", "load", "save"]

#: Version of the saved-folder layout; :func:`load` refuses newer ones.
FORMAT_VERSION = 1

MANIFEST = "multimodal_clf.json"
WEIGHTS = "model.safetensors"
_FORMAT_NAME = "multimodal-clf estimator"

#: Backbone side (None: one checkpoint; 0, 1: text, image of a pair) -> folder.
_PART_FOLDERS = {None: "backbone", 0: "backbone-text", 1: "backbone-image"}

#: Fitted attributes stored in the manifest besides the weights and classes.
_FITTED = ("n_iter_", "history_", "interrupted_")

_LABEL_KINDS = "biufU"


def _estimator_classes():
    from multimodal_clf.multimodal import MultimodalClassifier
    from multimodal_clf.text import TextClassifier

    return {cls.__name__: cls for cls in (TextClassifier, MultimodalClassifier)}


# --- save -------------------------------------------------------------------------
def _encode_params(estimator):
    params = estimator.get_params(deep=False)
    encoded = {}
    for name, value in params.items():
        try:
            encoded[name] = to_json(value, where=f"{name}")
        except TypeError as error:
            raise TypeError(
                f"cannot save {type(estimator).__name__}: parameter {error} Set "
                f"it to such a value with set_params({name}=...) before saving."
            ) from None
    return encoded


def _encode_classes(classes):
    classes = np.asarray(classes)
    if classes.dtype.kind not in _LABEL_KINDS:
        raise TypeError(
            f"cannot save classes_ of dtype {classes.dtype}: saved labels must be "
            "strings, integers, floats or booleans. Encode the labels as one of "
            "those before fit."
        )
    return {"dtype": classes.dtype.str, "values": to_json(classes.tolist())}


def save(estimator, path):
    """Save a fitted estimator to the folder ``path``.

    The folder is written beside ``path`` under a temporary name and renamed
    into place when complete; an earlier save at ``path`` is replaced only then,
    and stays intact when saving fails.

    Parameters
    ----------
    estimator : TextClassifier or MultimodalClassifier
        A fitted estimator.
    path : str or path-like
        The folder to write. An existing folder is replaced only when it holds a
        saved estimator (or nothing).

    Returns
    -------
    pathlib.Path
        The folder written.

    Raises
    ------
    NotFittedError
        When the estimator is not fitted.
    TypeError
        When a parameter or the labels cannot be stored as JSON.
    FileExistsError
        When ``path`` exists and is not a saved estimator or an empty folder.
    OSError
        When the folder cannot be written (a parent is a file, permissions,
        free space); an earlier save at ``path`` is then left as it was.

    Notes
    -----
    Under ``torchrun`` only rank 0 writes; every rank returns once the folder
    is complete, so any rank may load it next (on a file system they share).
    """
    if not hasattr(estimator, "model_"):
        raise NotFittedError(
            f"This {type(estimator).__name__} instance is not fitted yet. Call "
            "'fit' before saving it."
        )
    path = Path(os.fspath(path)).expanduser()
    model = estimator.model_
    manifest = {
        "format": _FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "library_version": __version__,
        "estimator": type(estimator).__name__,
        "params": _encode_params(estimator),
        "classes": _encode_classes(estimator.classes_),
        "fitted": {
            name: to_json(getattr(estimator, name), where=name)
            for name in _FITTED
            if hasattr(estimator, name)
        },
        "versions": _versions(),
    }
    # Under torchrun every rank holds the same model: rank 0 writes it once, and
    # the other ranks return when the folder is complete.
    D.on_main_process("saving", _write_folder, path, model, manifest)
    return path


def _write_folder(path, model, manifest):
    parts = model.backbone.pretrained_parts()
    purpose = f"save to {path}"
    with atomic_folder(path, marker=MANIFEST, purpose=purpose) as folder:
        files = {}
        for side, (config, preprocessors) in parts.items():
            part = folder / _PART_FOLDERS[side]
            config.save_pretrained(part)
            for preprocessor in preprocessors:
                preprocessor.save_pretrained(part)
            files[_PART_FOLDERS[side]] = sorted(
                f.relative_to(part).as_posix() for f in part.rglob("*") if f.is_file()
            )
        aliases = save_tensors(folder / WEIGHTS, model.state_dict())
        manifest["backbone"] = {
            "family": model.backbone.family,
            "spec": _saved_spec(parts),
            "files": files,
        }
        manifest["weights"] = {"file": WEIGHTS, "aliases": aliases}
        # Written last: a folder with a manifest is complete.
        write_json(folder / MANIFEST, manifest)
    logger.info("saved %s to %s", manifest["estimator"], path)


def _saved_spec(parts):
    if None in parts:
        return _PART_FOLDERS[None]
    return [_PART_FOLDERS[side] if side in parts else None for side in (0, 1)]


def _versions():
    import transformers

    return {"torch": torch.__version__, "transformers": transformers.__version__}


# --- load -------------------------------------------------------------------------
def _bad(folder, what):
    return CheckpointError(
        f"{folder} is not a valid saved estimator: {what}. It was not written by "
        "multimodal-clf's save or has been edited or damaged; it is refused."
    )


def _read_manifest(folder):
    if not folder.exists():
        raise CheckpointError(f"cannot load {folder}: it does not exist.")
    if not folder.is_dir():
        raise CheckpointError(
            f"cannot load {folder}: it is a file, not a folder written by save()."
        )
    if not (folder / MANIFEST).is_file():
        raise CheckpointError(
            f"{folder} is not a saved multimodal-clf estimator: it has no "
            f"{MANIFEST}. Load a folder written by est.save(path)."
        )
    manifest = read_json(folder / MANIFEST, what="the manifest")
    if not isinstance(manifest, dict) or manifest.get("format") != _FORMAT_NAME:
        raise _bad(folder, f"{MANIFEST} does not describe a multimodal-clf estimator")
    version = manifest.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise _bad(folder, "format_version is missing")
    if version > FORMAT_VERSION:
        raise CheckpointError(
            f"{folder} was saved by multimodal-clf "
            f"{manifest.get('library_version', '?')} in format {version}; this "
            f"multimodal-clf {__version__} reads formats up to {FORMAT_VERSION}. "
            "Upgrade multimodal-clf (pip install -U multimodal-clf) to load it."
        )
    return manifest


def _estimator_class(name, expected):
    known = _estimator_classes()
    if not isinstance(name, str):
        raise CheckpointError(
            f"the manifest names no estimator class (estimator={name!r:.60}); it "
            "was not written by multimodal-clf's save or has been edited."
        )
    if expected is not None:
        if name == expected.__name__:
            return expected
        hint = (
            f"{name}.load(path) or multimodal_clf.load(path)"
            if name in known
            else f"{name}.load(path)"
        )
        raise CheckpointError(
            f"the folder holds a saved {name!r:.60}, not a {expected.__name__}; "
            f"load it with {hint}."
        )
    if name not in known:
        raise CheckpointError(
            f"the folder holds a saved {name!r:.60}, which multimodal_clf.load "
            f"does not know (it loads {', '.join(sorted(known))}). If it is a "
            "subclass of one of them, load it with YourClass.load(path)."
        )
    return known[name]


def _check_backbone_param(value):
    def one(v):
        return isinstance(v, (str, os.PathLike))

    if one(value) or (
        isinstance(value, (tuple, list)) and len(value) == 2 and all(map(one, value))
    ):
        return
    raise CheckpointError(
        f"the saved backbone parameter {value!r:.80} is neither a checkpoint name "
        "nor a (text, image) pair of them; the manifest is refused."
    )


def _decode_params(folder, data, cls):
    from multimodal_clf import _params as P

    if not isinstance(data, dict):
        raise _bad(folder, "params is not a JSON object")
    params = from_json(data, where="params")
    allowed = set(cls._get_param_names())
    unknown = sorted(set(params) - allowed)
    if unknown:
        raise CheckpointError(
            f"{folder} stores parameters {unknown!r:.120} that {cls.__name__} does "
            "not have; it was saved by another version of multimodal-clf or "
            "edited. Load it with the version that saved it."
        )
    if "backbone" not in params:
        raise _bad(folder, "the backbone parameter is missing")
    _check_backbone_param(params["backbone"])
    estimator = cls(**params)
    try:
        P.check_parameters(estimator, estimator._rules)
    except ValueError as error:
        raise CheckpointError(f"{folder} holds invalid parameters. {error}") from None
    return estimator


def _decode_classes(folder, data):
    if not isinstance(data, dict):
        raise _bad(folder, "classes is not a JSON object")
    if not isinstance(data.get("dtype"), str):
        raise _bad(folder, "classes has no dtype")
    try:
        dtype = np.dtype(data["dtype"])
    except (TypeError, ValueError) as error:
        raise _bad(folder, f"classes has a bad dtype ({error})") from None
    values = from_json(data.get("values"), where="classes")
    if dtype.kind not in _LABEL_KINDS or not isinstance(values, list):
        raise _bad(folder, f"classes of dtype {dtype} cannot be loaded")
    if not all(isinstance(v, (str, int, float, bool)) for v in values):
        raise _bad(folder, "classes holds values other than plain labels")
    try:
        classes = np.array(values, dtype=dtype)
    except (TypeError, ValueError, OverflowError) as error:
        raise _bad(folder, f"classes do not fit their dtype ({error})") from None
    if classes.ndim != 1 or len(classes) < 2:
        raise _bad(folder, "classes must list at least 2 labels")
    return classes


def _backbone_spec(folder, manifest):
    info = manifest.get("backbone")
    if not isinstance(info, dict):
        raise _bad(folder, "the backbone section is missing")
    spec, files = info.get("spec"), info.get("files")
    names = [spec] if not isinstance(spec, list) else spec
    allowed = set(_PART_FOLDERS.values())
    if (
        not names
        or len(names) > 2
        or not all(n is None or n in allowed for n in names)
        or not isinstance(files, dict)
    ):
        raise _bad(folder, f"unexpected backbone layout {spec!r:.80}")
    for name in names:
        if name is None:
            continue
        part = folder / name
        listed = files.get(name)
        if not isinstance(listed, list) or "config.json" not in listed:
            raise _bad(folder, f"no file list with config.json for {name}/")
        missing = [f for f in listed if not (part / str(f)).is_file()]
        if missing:
            raise CheckpointError(
                f"cannot load {folder}: files are missing from {name}/: "
                f"{', '.join(map(str, missing))}. Copy the whole saved folder."
            )
    if isinstance(spec, list):
        return tuple(None if n is None else str(folder / n) for n in spec)
    return str(folder / spec)


def _check_sides(folder, spec, modalities):
    """A saved pair must hold the side of every modality it reads."""
    if not isinstance(spec, tuple):
        return
    for side, modality in zip(spec, ("text", "image")):
        if (side is None) == (modality in modalities):
            raise _bad(
                folder,
                f"the backbone folders {spec!r:.120} do not match "
                f"modalities={tuple(modalities)!r}",
            )


def _check_device(estimator, device):
    """Use ``device`` if given; else fall back to this machine's when needed.

    Either way, fp16 (CUDA only) becomes ``"auto"`` on a device without CUDA.
    """
    from multimodal_clf.engine import check_device, resolve_device

    if device is not None:
        problem = check_device(device)
        if problem is not None:
            raise ValueError(f"load(device=...): {problem}.")
        try:
            resolved = resolve_device(device)
        except ValueError as error:
            raise ValueError(f"load(device={device!r}): {error}") from None
        estimator.set_params(device=device)
    else:
        resolved = _saved_device(estimator)
    if estimator.precision == "fp16" and resolved.type != "cuda":
        warnings.warn(
            "the estimator was saved with precision='fp16', which needs a CUDA "
            "GPU; it now uses precision='auto'.",
            UserWarning,
            stacklevel=3,
        )
        estimator.set_params(precision="auto")


def _saved_device(estimator):
    """The saved device, or ``"auto"`` (with a warning) where this machine lacks it."""
    from multimodal_clf.engine import resolve_device

    try:
        return resolve_device(estimator.device)
    except ValueError:
        warnings.warn(
            f"the estimator was saved with device={estimator.device!r}, which this "
            "machine does not have; it now uses device='auto'. Pass device=... "
            "to load to choose.",
            UserWarning,
            stacklevel=4,
        )
        estimator.set_params(device="auto")
        return resolve_device("auto")


def _load_weights(folder, model, manifest):
    info = manifest.get("weights")
    if not isinstance(info, dict) or info.get("file") != WEIGHTS:
        raise _bad(folder, "the weights section is missing")
    aliases = info.get("aliases", {})
    if not isinstance(aliases, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in aliases.items()
    ):
        raise _bad(folder, "malformed weight aliases")
    tensors = load_tensors(folder / WEIGHTS, aliases)
    current = model.state_dict(keep_vars=True)
    missing = sorted(set(current) - set(tensors))
    unexpected = sorted(set(tensors) - set(current))
    if missing or unexpected:
        raise CheckpointError(
            f"the weights in {folder / WEIGHTS} do not match the model its configs "
            f"describe: {len(missing)} missing (e.g. {missing[:3]}), "
            f"{len(unexpected)} unexpected (e.g. {unexpected[:3]}). The weights "
            "file and the configs come from different models."
        )
    for name, target in current.items():
        value = tensors[name]
        if value.shape != target.shape:
            raise CheckpointError(
                f"the weights in {folder / WEIGHTS} do not match the saved config: "
                f"{name} has shape {tuple(value.shape)} in the file but "
                f"{tuple(target.shape)} in the model the config describes."
            )
        if value.dtype != target.dtype and not (
            value.is_floating_point() and target.is_floating_point()
        ):
            raise CheckpointError(
                f"the weights in {folder / WEIGHTS}: {name} is {value.dtype} in "
                f"the file but {target.dtype} in the model."
            )
    _assign_weights(model, tensors)


def _assign_weights(model, tensors):
    """Make the loaded tensors the model's weights, without copying them.

    The freshly built weights were never initialised, so nothing is lost; the
    saved dtypes are kept. Weights tied before loading are tied again.
    """
    tied = {}
    for name, param in model.named_parameters(remove_duplicate=False):
        tied.setdefault(id(param), []).append(name)
    model.load_state_dict(tensors, strict=True, assign=True)
    for names in tied.values():
        first = model.get_parameter(names[0])
        for name in names[1:]:
            owner, _, attribute = name.rpartition(".")
            setattr(model.get_submodule(owner), attribute, first)


def load(path, *, device=None, estimator_class=None):
    """Load an estimator saved with ``save``, with no network access.

    The model is rebuilt from the saved configs (the original backbone
    checkpoint is not needed), its weights read from safetensors onto the CPU,
    and the tokenizer and image processor from the folder. Nothing in the folder
    can run code.

    Parameters
    ----------
    path : str or path-like
        A folder written by ``est.save(path)``.
    device : str or torch.device, default=None
        Sets the ``device`` parameter of the loaded estimator. ``None`` keeps the
        saved one, unless this machine lacks it (a model saved with
        ``device='cuda'`` on a CPU-only machine): it then becomes ``'auto'``,
        with a warning.
    estimator_class : type, default=None
        Accept only this class (used by ``TextClassifier.load`` and
        ``MultimodalClassifier.load``).

    Returns
    -------
    TextClassifier or MultimodalClassifier
        Fitted, ready to predict.

    Raises
    ------
    CheckpointError
        When the folder is not a saved estimator, misses files, was written in a
        newer format, or its weights do not match its configs.
    """
    folder = Path(os.fspath(path)).expanduser().resolve()
    manifest = _read_manifest(folder)
    cls = _estimator_class(manifest.get("estimator"), estimator_class)
    estimator = _decode_params(folder, manifest.get("params"), cls)
    classes = _decode_classes(folder, manifest.get("classes"))
    fitted = from_json(manifest.get("fitted", {}), where="fitted")
    if not isinstance(fitted, dict):
        raise _bad(folder, "the fitted section is not a JSON object")
    spec = _backbone_spec(folder, manifest)
    _check_sides(folder, spec, estimator._modalities())
    _check_device(estimator, device)

    with torch.random.fork_rng(devices=[]):
        try:
            model = estimator._build_model(len(classes), saved_backbone=spec)
        except (OSError, ValueError, TypeError, KeyError) as error:
            if isinstance(error, CheckpointError):
                raise
            raise CheckpointError(
                f"cannot rebuild the model from the configs in {folder}: {error}"
            ) from error
    _load_weights(folder, model, manifest)

    estimator.model_ = model
    estimator.classes_ = classes
    for name in _FITTED:
        if name in fitted:
            setattr(estimator, name, fitted[name])
    estimator.tokenizer_ = model.backbone.tokenizer
    estimator.image_processor_ = model.backbone.image_processor
    if D.is_main_process():
        logger.info("loaded %s from %s", cls.__name__, folder)
    return estimator
