"""Safe, atomic storage of tensors and settings, and checkpoints during training.

Everything is written as safetensors (tensors) and JSON (everything else), so that
reading a folder back can never run code: there is no pickle anywhere. JSON values
that plain JSON cannot express (tuples, dicts with non-string keys, non-finite
floats, paths, devices, NumPy random states, references to tensors) are written
as one-key objects whose key starts with ``$``; reading refuses any other object
key that starts with ``$`` or ``__``.

Folders are written beside their target under a temporary name and renamed into
place once complete, so an interrupted write never damages an earlier one.
"""

import contextlib
import errno
import json
import logging
import math
import os
import re
import reprlib
import shutil
import tempfile
import uuid
import warnings
from pathlib import Path

import numpy as np
import torch

from multimodal_clf._version import __version__
from multimodal_clf.engine import _distributed as D
from multimodal_clf.exceptions import CheckpointError

logger = logging.getLogger(__name__)

__all__ = [
    "CheckpointCallback",
    "atomic_folder",
    "from_json",
    "load_tensors",
    "make_folder",
    "read_json",
    "save_tensors",
    "to_json",
    "write_json",
]

#: Version of the training-checkpoint layout; readers refuse newer ones.
CHECKPOINT_FORMAT = 1

_LATEST = "latest.json"
_STATE = "state.json"
_TENSORS = "tensors.safetensors"
_EPOCH_FOLDER = re.compile(r"epoch-\d{4,}")
_DEVICE = re.compile(r"cpu|mps|cuda(:\d+)?")
_NON_FINITE = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}
_ALLOWED = (
    "None, bool, int, float, str, a path, torch.device, numpy.random.RandomState, "
    "or tuples, lists and dicts of these"
)


# --- JSON ---------------------------------------------------------------------
def _plain_key(key):
    return isinstance(key, str) and not key.startswith(("$", "__"))


def to_json(value, *, where="value", tensors=None):
    """Turn a value into plain JSON data, tagging what JSON cannot express.

    Parameters
    ----------
    value : object
        Built from the types in the error message below.
    where : str, default="value"
        Names the value in error messages.
    tensors : dict, optional
        When given, tensors are moved into it (under their path in ``value``) and
        replaced by references; otherwise a tensor is an error.

    Raises
    ------
    TypeError
        For a value of any other type.
    """
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        value = float(value)
        return value if math.isfinite(value) else {"$float": repr(value)}
    if isinstance(value, tuple):
        return {
            "$tuple": [
                to_json(v, where=f"{where}[{i}]", tensors=tensors)
                for i, v in enumerate(value)
            ]
        }
    if isinstance(value, list):
        return [
            to_json(v, where=f"{where}[{i}]", tensors=tensors)
            for i, v in enumerate(value)
        ]
    if isinstance(value, dict):
        if all(_plain_key(k) for k in value):
            return {
                k: to_json(v, where=f"{where}[{k!r}]", tensors=tensors)
                for k, v in value.items()
            }
        return {
            "$dict": [
                [
                    to_json(k, where=f"{where} key", tensors=None),
                    to_json(v, where=f"{where}[{k!r}]", tensors=tensors),
                ]
                for k, v in value.items()
            ]
        }
    if isinstance(value, os.PathLike):
        return {"$path": os.fspath(value)}
    if isinstance(value, torch.device):
        return {"$device": str(value)}
    if isinstance(value, np.random.RandomState):
        _, keys, position, has_gauss, gauss = value.get_state(legacy=True)
        return {"$random_state": [keys.tolist(), position, has_gauss, gauss]}
    if isinstance(value, torch.Tensor) and tensors is not None:
        name = where
        while name in tensors:
            name += "+"
        tensors[name] = value
        return {"$tensor": name}
    raise TypeError(
        f"{where} is a {type(value).__name__} ({value!r:.60}), which cannot be "
        f"stored as JSON; allowed: {_ALLOWED}."
    )


def _bad(where, what):
    return CheckpointError(
        f"{where}: {what}. The file was not written by multimodal-clf or has been "
        "edited; it is refused rather than trusted."
    )


def _decode_random_state(payload, where):
    try:
        keys, position, has_gauss, gauss = payload
        keys = np.asarray(keys, dtype=np.uint32)
        state = np.random.RandomState()
        state.set_state(("MT19937", keys, int(position), int(has_gauss), float(gauss)))
    except (TypeError, ValueError, OverflowError) as error:
        raise _bad(where, f"malformed random state ({error})") from error
    return state


def from_json(value, *, where="value", tensors=None):
    """Inverse of :func:`to_json`; refuses anything :func:`to_json` never writes.

    Parameters
    ----------
    value : JSON data
    where : str, default="value"
        Names the value in error messages.
    tensors : dict, optional
        Tensors that ``{"$tensor": name}`` references resolve to.

    Raises
    ------
    CheckpointError
        For an unknown tag, an object key starting with ``$`` or ``__``, or a
        malformed tagged value.
    """
    if isinstance(value, list):
        return [
            from_json(v, where=f"{where}[{i}]", tensors=tensors)
            for i, v in enumerate(value)
        ]
    if not isinstance(value, dict):
        return value
    if all(_plain_key(k) for k in value):
        return {
            k: from_json(v, where=f"{where}[{k!r}]", tensors=tensors)
            for k, v in value.items()
        }
    if len(value) != 1:
        key = next(k for k in value if not _plain_key(k))
        raise _bad(where, f"unexpected key {key!r} in a JSON object")
    ((tag, payload),) = value.items()
    if tag == "$tuple" and isinstance(payload, list):
        return tuple(from_json(payload, where=where, tensors=tensors))
    if tag == "$dict" and isinstance(payload, list):
        out = {}
        for item in payload:
            if not (isinstance(item, list) and len(item) == 2):
                raise _bad(where, "a $dict entry is not a [key, value] pair")
            key = from_json(item[0], where=f"{where} key")
            if isinstance(key, (dict, list)):
                raise _bad(where, f"unhashable dict key {key!r:.60}")
            out[key] = from_json(item[1], where=f"{where}[{key!r}]", tensors=tensors)
        return out
    if tag == "$float" and payload in _NON_FINITE:
        return _NON_FINITE[payload]
    if tag == "$path" and isinstance(payload, str):
        return Path(payload)
    if tag == "$device" and isinstance(payload, str) and _DEVICE.fullmatch(payload):
        return torch.device(payload)
    if tag == "$random_state" and isinstance(payload, list):
        return _decode_random_state(payload, where)
    if tag == "$tensor" and tensors is not None and payload in tensors:
        return tensors[payload]
    raise _bad(where, f"unknown or malformed tagged value {tag!r}: {payload!r:.60}")


def _reject_constant(name):
    raise ValueError(f"non-standard JSON constant {name}")


def write_json(path, data):
    """Write JSON data (already passed through :func:`to_json`) to a file."""
    text = json.dumps(data, indent=1, allow_nan=False, ensure_ascii=False)
    Path(path).write_text(text + "\n", encoding="utf-8")


def read_json(path, *, what):
    """Read a JSON file, turning every failure into a :class:`CheckpointError`."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{what} is missing: {path} does not exist.")
    try:
        return json.loads(
            path.read_text(encoding="utf-8"), parse_constant=_reject_constant
        )
    except (UnicodeDecodeError, ValueError) as error:
        raise CheckpointError(f"{what} {path} is not valid JSON: {error}") from error
    except OSError as error:
        raise CheckpointError(f"{what} {path} cannot be read: {error}") from error


# --- tensors ------------------------------------------------------------------
def save_tensors(path, tensors, metadata=None):
    """Write named tensors to a safetensors file on the CPU.

    Tensors that are the same view of the same memory (tied weights) are written
    once; the others are made contiguous and given their own memory.

    Returns
    -------
    aliases : dict of str to str
        ``{name: name written in its place}``; pass it to :func:`load_tensors`.
    """
    from safetensors.torch import save_file

    written, aliases, views, storages = {}, {}, {}, set()
    for name, tensor in tensors.items():
        tensor = tensor.detach()
        storage = tensor.untyped_storage().data_ptr()
        view = (
            storage,
            tensor.storage_offset(),
            tuple(tensor.shape),
            tensor.stride(),
            tensor.dtype,
            tensor.device,
        )
        if tensor.numel() and view in views:
            aliases[name] = views[view]
            continue
        views[view] = name
        owns = (
            tensor.is_contiguous()
            and tensor.storage_offset() == 0
            and tensor.untyped_storage().nbytes()
            == tensor.numel() * tensor.element_size()
        )
        tensor = tensor.to("cpu")
        if storage in storages or not owns:
            tensor = tensor.clone(memory_format=torch.contiguous_format)
        storages.add(storage)
        written[name] = tensor
    save_file(written, str(path), metadata={"format": "pt", **(metadata or {})})
    _default_mode(path)
    return aliases


def _default_mode(path):
    """Give ``path`` the permissions a new file gets here (safetensors uses 0600)."""
    path = Path(path)
    probe = path.with_name(f".{path.name}.mode-{uuid.uuid4().hex[:8]}")
    probe.touch()
    try:
        os.chmod(path, probe.stat().st_mode & 0o777)
    finally:
        probe.unlink()


def load_tensors(path, aliases=None, *, what="weights file"):
    """Read a safetensors file onto the CPU, restoring the names in ``aliases``.

    Raises
    ------
    CheckpointError
        When the file is missing or not a safetensors file.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"the {what} is missing: {path} does not exist.")
    try:
        tensors = load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError) as error:
        raise CheckpointError(
            f"the {what} {path} cannot be read as safetensors: {error}"
        ) from error
    for name, target in (aliases or {}).items():
        if target not in tensors:
            raise CheckpointError(
                f"the {what} {path} has no tensor {target!r}, which {name!r} "
                "shares; the file is incomplete or does not belong here."
            )
        tensors[name] = tensors[target]
    return tensors


# --- atomic folders -------------------------------------------------------------
def _fsync(path):
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _fsync_tree(folder):
    for root, _, files in os.walk(folder):
        for name in files:
            _fsync(os.path.join(root, name))
        _fsync(root)


def make_folder(path, *, purpose):
    """Create the folder ``path`` and its parents, or raise a clear OSError.

    Parameters
    ----------
    path : path-like
    purpose : str
        What the folder is for, completing "cannot ...", for example
        ``"save to /runs/model"``.

    Raises
    ------
    NotADirectoryError
        When ``path`` or one of its parents is a file.
    OSError
        When the folder cannot be created (permissions, a read-only disk, ...).
    """
    path = Path(path)
    for folder in (path, *path.parents):
        if folder.exists() or folder.is_symlink():
            if not folder.is_dir():
                raise NotADirectoryError(
                    errno.ENOTDIR,
                    f"cannot {purpose}: {folder} is a file, not a folder. Choose "
                    "another path.",
                )
            break
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise _os_error(
            error,
            f"cannot {purpose}: creating the folder {path} failed "
            f"({error.strerror or error}). Choose a folder this process can "
            "write to.",
        ) from error


def _os_error(error, message):
    """An OSError of the same kind as ``error`` (same errno) with ``message``."""
    if error.errno is None:
        return OSError(message)
    return OSError(error.errno, message)  # the subclass that errno maps to


@contextlib.contextmanager
def atomic_folder(target, *, marker=None, purpose=None):
    """Yield a fresh folder beside ``target`` that replaces it once complete.

    When the ``with`` block raises, the new folder is removed and ``target`` is
    left as it was.

    Parameters
    ----------
    target : path-like
    marker : str, optional
        A file name that an existing ``target`` must hold to be replaced, so that
        a folder of other files is never deleted. Without it, an existing
        non-empty ``target`` is never replaced.
    purpose : str, optional
        What is being written, completing "cannot ..." in errors; by default
        ``"write <target>"``.

    Raises
    ------
    FileExistsError
        When ``target`` exists and may not be replaced.
    OSError
        When the folder cannot be written, with ``target`` and the reason (not
        the temporary folder's name) in the message; ``target`` is unchanged.
    """
    target = Path(target)
    purpose = purpose or f"write {target}"
    if target.exists() and not _replaceable(target, marker):
        raise FileExistsError(
            f"{target} already exists and is not "
            + (
                f"a folder written by save (it has no {marker})"
                if marker
                else "an empty folder"
            )
            + "; it is left untouched. Choose another path or remove it first."
        )
    make_folder(target.parent, purpose=purpose)
    tag = uuid.uuid4().hex[:12]
    scratch = target.with_name(f".{target.name}.tmp-{tag}")
    try:
        scratch.mkdir()
        yield scratch
        _fsync_tree(scratch)
        _swap_in(scratch, target, tag)
    except OSError as error:
        shutil.rmtree(scratch, ignore_errors=True)
        raise _os_error(
            error,
            f"cannot {purpose}: writing failed ({error.strerror or error}); "
            f"nothing was changed at {target}. Check the free space and the "
            "permissions of its folder.",
        ) from error
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise
    _fsync(target.parent)


def _replaceable(target, marker):
    if not target.is_dir():
        return False
    if marker is not None and (target / marker).is_file():
        return True
    return not any(target.iterdir())


def _swap_in(scratch, target, tag):
    if not target.exists():
        os.replace(scratch, target)
        return
    old = target.with_name(f".{target.name}.old-{tag}")
    os.replace(target, old)
    try:
        os.replace(scratch, target)
    except BaseException:
        os.replace(old, target)
        raise
    shutil.rmtree(old, ignore_errors=True)


# --- training checkpoints -------------------------------------------------------
def write_checkpoint(directory, name, state, metadata):
    """Write ``state`` (nested dicts, lists, tensors, numbers) as ``name``."""
    directory = Path(directory)
    tensors = {}
    tree = to_json(state, where="state", tensors=tensors)
    purpose = f"write a checkpoint to {directory}"
    with atomic_folder(directory / name, marker=_STATE, purpose=purpose) as folder:
        aliases = save_tensors(folder / _TENSORS, tensors)
        write_json(
            folder / _STATE,
            {
                "format_version": CHECKPOINT_FORMAT,
                "library_version": __version__,
                "metadata": to_json(metadata, where="metadata"),
                "aliases": aliases,
                "state": tree,
            },
        )
    pointer = directory / f".{_LATEST}.tmp-{uuid.uuid4().hex[:12]}"
    write_json(pointer, {"format_version": CHECKPOINT_FORMAT, "checkpoint": name})
    _fsync(pointer)
    os.replace(pointer, directory / _LATEST)
    _fsync(directory)
    for old in directory.iterdir():
        if old.name != name and _EPOCH_FOLDER.fullmatch(old.name) and old.is_dir():
            shutil.rmtree(old, ignore_errors=True)


def read_checkpoint(directory, *, tensors=True):
    """Read the latest complete checkpoint in ``directory``, or None if none.

    Returns
    -------
    dict or None
        ``{"name", "metadata", "state"}``; the state's tensors are left as
        ``None`` when ``tensors=False``.
    """
    directory = Path(directory)
    if not (directory / _LATEST).exists():
        return None
    pointer = read_json(directory / _LATEST, what="the checkpoint pointer")
    _check_format(pointer, directory / _LATEST)
    name = pointer.get("checkpoint")
    if not isinstance(name, str) or not _EPOCH_FOLDER.fullmatch(name):
        raise _bad(directory / _LATEST, f"bad checkpoint name {name!r:.60}")
    folder = directory / name
    info = read_json(folder / _STATE, what="the checkpoint state")
    _check_format(info, folder / _STATE)
    aliases = info.get("aliases")
    if not isinstance(aliases, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in aliases.items()
    ):
        raise _bad(folder / _STATE, "malformed tensor aliases")
    if tensors:
        stored = load_tensors(folder / _TENSORS, aliases, what="checkpoint tensors")
    else:
        stored = _Placeholders()
    return {
        "name": name,
        "metadata": from_json(info.get("metadata"), where="metadata"),
        "state": from_json(info.get("state"), where="state", tensors=stored),
    }


class _Placeholders(dict):
    """Resolves every tensor reference to None, to read settings alone."""

    def __contains__(self, key):
        return True

    def __getitem__(self, key):
        return None


def _check_format(info, path):
    version = info.get("format_version") if isinstance(info, dict) else None
    if not isinstance(version, int) or isinstance(version, bool):
        raise _bad(path, "no format_version")
    if version > CHECKPOINT_FORMAT:
        raise CheckpointError(
            f"{path} has checkpoint format {version}, newer than this "
            f"multimodal-clf {__version__} reads (up to {CHECKPOINT_FORMAT}). "
            "Upgrade multimodal-clf to resume from it."
        )


def _difference(key, saved, value):
    """What differs between the checkpoint's ``key`` and this run's, in words."""
    if key == "rows":
        return (
            "its training rows differ from this run's (texts, images, labels or "
            "sample weights, or their order)"
        )
    if isinstance(saved, list) and isinstance(value, list):
        only_saved = [item for item in saved if item not in value]
        only_here = [item for item in value if item not in saved]
        if not only_saved and not only_here:
            return f"its {key} are the same but in another order"
        parts = []
        if only_saved:
            parts.append(f"only the checkpoint has {reprlib.repr(only_saved)}")
        if only_here:
            parts.append(f"only this run has {reprlib.repr(only_here)}")
        return f"its {key} differ: " + "; ".join(parts)
    return f"its {key} is {reprlib.repr(saved)}, this run's is {reprlib.repr(value)}"


class CheckpointCallback:
    """Save the trainer's whole state after every epoch; optionally resume first.

    The folder keeps the latest complete epoch only (``epoch-NNNN/`` with
    ``state.json`` and ``tensors.safetensors``) and ``latest.json`` naming it;
    each epoch is written beside the previous one and the pointer is replaced
    atomically, so an interruption at any moment leaves a complete checkpoint.

    Parameters
    ----------
    directory : path-like
    resume : bool, default=False
        Load the latest checkpoint into the trainer when the run starts
        (:meth:`on_fit_start`).
    metadata : dict, optional
        JSON-able facts about the run (labels, row count) written with every
        checkpoint; resuming refuses a checkpoint whose facts differ.
    """

    def __init__(self, directory, *, resume=False, metadata=None):
        self.directory = Path(directory)
        self.resume = resume
        self.metadata = dict(metadata or {})
        self.resumed_from = None

    def prepare(self):
        """Create the folder now, so that a bad path fails before training.

        Raises
        ------
        OSError
            When ``checkpoint_dir`` is a file or cannot be created.
        """
        purpose = f"use checkpoint_dir={str(self.directory)!r}"
        make_folder(self.directory, purpose=purpose)
        try:  # a folder that exists may still refuse new files
            with tempfile.TemporaryFile(dir=self.directory):
                pass
        except OSError as error:
            raise _os_error(
                error,
                f"cannot {purpose}: no file can be written there "
                f"({error.strerror or error}). Choose a folder this process can "
                "write to.",
            ) from error

    def saved_seed(self):
        """The seed of the run in the folder, or None when there is none."""
        found = read_checkpoint(self.directory, tensors=False)
        return None if found is None else found["state"].get("seed")

    def on_fit_start(self, trainer):
        """Resume from the latest checkpoint when asked; warn about stale ones."""
        if not self.resume:
            if (self.directory / _LATEST).exists():
                warnings.warn(
                    f"checkpoint_dir {str(self.directory)!r} holds a checkpoint of "
                    "an earlier run, which this fit replaces as it goes. Pass "
                    "resume=True to continue that run instead.",
                    UserWarning,
                    stacklevel=2,
                )
            return
        found = read_checkpoint(self.directory)
        if found is None:
            warnings.warn(
                f"resume=True but checkpoint_dir {str(self.directory)!r} holds no "
                "checkpoint yet; training starts from the beginning.",
                UserWarning,
                stacklevel=2,
            )
            return
        saved_metadata = found["metadata"] or {}
        for key, value in self.metadata.items():
            if key not in saved_metadata and key not in ("estimator", "classes"):
                # Written by an earlier version, which did not record it.
                continue
            saved = saved_metadata.get(key)
            if to_json(saved) != to_json(value):
                raise CheckpointError(
                    f"the checkpoint in {str(self.directory)!r} belongs to another "
                    f"run: {_difference(key, saved, value)}. Resume with the same "
                    "data and settings, or use another checkpoint_dir (or "
                    "resume=False) to start again."
                )
        try:
            trainer.load_state_dict(found["state"])
        except (KeyError, TypeError, AttributeError) as error:
            raise _bad(
                self.directory / found["name"], f"malformed training state ({error})"
            ) from error
        self.resumed_from = found["name"]
        logger.info(
            "resumed from %s after epoch %d",
            self.directory / found["name"],
            trainer.epoch,
        )

    def on_epoch_end(self, trainer, record):
        """Write the state after this epoch, then drop the previous one."""
        name = f"epoch-{trainer.epoch:04d}"
        D.on_main_process(
            "writing a checkpoint",
            write_checkpoint,
            self.directory,
            name,
            trainer.state_dict(),
            self.metadata,
        )
        logger.debug("checkpoint written to %s", self.directory / name)
