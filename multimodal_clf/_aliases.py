"""Short names of well-known checkpoints, and how the command line reads a model."""

import difflib
import os
from dataclasses import dataclass
from pathlib import Path

__all__ = ["ALIASES", "MODALITY_SUFFIXES", "ModelSpec", "SpecError", "parse_model"]

#: Short name -> (Hugging Face model id, family). The family says which estimator
#: a checkpoint becomes: "text" is a TextClassifier, the others a
#: MultimodalClassifier.
ALIASES = {
    "bert": ("bert-base-uncased", "text"),
    "roberta": ("roberta-base", "text"),
    "beto": ("dccuchile/bert-base-spanish-wwm-cased", "text"),
    "clip": ("openai/clip-vit-base-patch32", "clip"),
    "flava": ("facebook/flava-full", "flava"),
    "vilt": ("dandelin/vilt-b32-mlm", "vilt"),
}

#: ``:SUFFIX`` of a model spec -> the modalities the model reads.
MODALITY_SUFFIXES = {
    "text": ("text",),
    "image": ("image",),
    "text+image": ("text", "image"),
    "image+text": ("text", "image"),
}

# Families whose single checkpoint reads text and images together; their
# parameters form one "joint" tower.
_JOINT = ("flava", "vilt")
_IMAGE_AND_TEXT = ("clip", *_JOINT)


class SpecError(ValueError):
    """A model spec or ``--model-path`` option that cannot be understood."""


@dataclass(frozen=True)
class ModelSpec:
    """One model as the command line names it.

    Attributes
    ----------
    name : str
        The spec as given, used as the model's display name.
    checkpoints : tuple of str
        One checkpoint, or a (text, image) pair; hub ids or local folders.
    families : tuple of str
        The family of each checkpoint: ``"text"`` or ``"image"`` (an encoder
        of one modality), or ``"clip"``, ``"flava"``, ``"vilt"``.
    modalities : tuple of str
        The inputs the model reads.
    """

    name: str
    checkpoints: tuple
    families: tuple
    modalities: tuple

    @property
    def is_text_only(self):
        """Whether the model is a plain text encoder (a TextClassifier)."""
        return self.families == ("text",)

    @property
    def backbone(self):
        """The estimator's ``backbone`` argument."""
        return self.checkpoints[0] if len(self.checkpoints) == 1 else self.checkpoints

    def towers(self):
        """Names of the parts that ``freeze`` can name as a whole."""
        if self.is_text_only:
            return ("text",)
        if len(self.checkpoints) == 1 and self.families[0] in _JOINT:
            return ("joint",)
        return self.modalities


def parse_model_paths(options):
    """Read ``--model-path ALIAS=FOLDER`` options into a dict.

    Parameters
    ----------
    options : list of str or None

    Returns
    -------
    dict of str to str
        Alias -> absolute folder.
    """
    paths = {}
    for option in options or ():
        alias, sep, folder = option.partition("=")
        alias, folder = alias.strip(), folder.strip()
        if not sep or not alias or not folder:
            raise SpecError(
                f"--model-path {option!r} is not ALIAS=FOLDER; write for example "
                "--model-path minilm=/models/all-MiniLM-L6-v2."
            )
        if any(c in alias for c in "+:,"):
            raise SpecError(
                f"--model-path alias {alias!r} may not hold '+', ':' or ','; "
                "pick a plain name such as 'minilm'."
            )
        path = Path(folder).expanduser()
        if not path.is_dir():
            raise SpecError(
                f"--model-path {alias}={folder}: folder {str(path)!r} does not exist."
            )
        paths[alias.lower()] = str(path.absolute())
    return paths


def parse_model(spec, model_paths=None, *, read_family=None):
    """Read a model spec: ``MODEL[:MODALITIES]`` with ``MODEL`` one checkpoint
    or ``TEXT+IMAGE``.

    Parameters
    ----------
    spec : str
        For example ``"bert"``, ``"clip:image"``, ``"minilm+dinov2"``,
        ``"org/model"`` or a local folder.
    model_paths : dict of str to str, default=None
        Aliases mapped to local folders (``--model-path``); they take precedence
        over the built-in aliases.
    read_family : callable, default=None
        ``checkpoint -> family`` for checkpoints that are not aliases; by
        default their ``config.json`` is read with ``AutoConfig``.

    Returns
    -------
    ModelSpec

    Raises
    ------
    SpecError
        For an unknown alias, a missing folder, or modalities the model cannot
        read; the message names the part at fault.
    """
    model_paths = model_paths or {}
    read_family = read_family or _read_family
    text = spec.strip()
    if not text:
        raise SpecError("empty model spec; name a model such as 'bert' or 'clip'.")

    body, modalities = text, None
    head, sep, suffix = text.rpartition(":")
    if sep and suffix.lower() in MODALITY_SUFFIXES:
        body, modalities = head, MODALITY_SUFFIXES[suffix.lower()]
    elif sep and not Path(text).expanduser().exists():
        raise SpecError(
            f"model {spec!r}: unknown modalities suffix ':{suffix}'; use one of "
            f"{', '.join(':' + s for s in list(MODALITY_SUFFIXES)[:3])}."
        )

    parts = [body] if Path(body).expanduser().exists() else body.split("+")
    if len(parts) > 2 or not all(p.strip() for p in parts):
        raise SpecError(
            f"model {spec!r}: a pair is written TEXT+IMAGE, with exactly two "
            "non-empty parts, e.g. 'minilm+dinov2'."
        )
    resolved = [_resolve(p.strip(), model_paths, read_family) for p in parts]
    checkpoints = tuple(c for c, _ in resolved)
    families = tuple(f for _, f in resolved)

    if len(parts) == 2:
        if families != ("text", "image"):
            raise SpecError(
                f"model {spec!r}: a pair is TEXT+IMAGE, a text encoder then an "
                f"image encoder; {parts[0]!r} is a {families[0]} model and "
                f"{parts[1]!r} a {families[1]} model."
            )
        return ModelSpec(text, checkpoints, families, modalities or ("text", "image"))

    if families[0] in _IMAGE_AND_TEXT:
        return ModelSpec(text, checkpoints, families, modalities or ("text", "image"))
    if families[0] == "image":
        raise SpecError(
            f"model {spec!r}: {parts[0]!r} is an image encoder, which needs a text "
            f"encoder beside it: write TEXT+{parts[0]}:image for an image-only "
            f"model, or TEXT+{parts[0]} for both."
        )
    if modalities not in (None, ("text",)):
        raise SpecError(
            f"model {spec!r}: {parts[0]!r} is a text encoder, so it cannot read "
            "images. Use a joint model (clip, flava, vilt) or a pair TEXT+IMAGE "
            "such as 'bert+dinov2:image'."
        )
    return ModelSpec(text, checkpoints, families, ("text",))


def _resolve(name, model_paths, read_family):
    """Return ``(checkpoint, family)`` for one checkpoint name."""
    key = name.lower()
    if key in model_paths:
        folder = model_paths[key]
        family = ALIASES[key][1] if key in ALIASES else read_family(folder)
        return folder, family
    if key in ALIASES:
        return ALIASES[key]
    path = Path(name).expanduser()
    if path.is_dir():
        return str(path.absolute()), read_family(str(path))
    known_ids = {hub_id for hub_id, _ in ALIASES.values()}
    if name in known_ids:
        return name, next(f for i, f in ALIASES.values() if i == name)
    if name.count("/") == 1 and not name.startswith((".", "/", "~")):
        return name, read_family(name)
    raise SpecError(_unknown_message(name, model_paths))


def _unknown_message(name, model_paths):
    names = sorted({*ALIASES, *model_paths})
    message = (
        f"unknown model {name!r}: it is not an alias ({', '.join(names)}), not an "
        "existing folder, and not a hub id of the form owner/name."
    )
    close = difflib.get_close_matches(name.lower(), names, n=2)
    if close:
        message += f" Did you mean {' or '.join(map(repr, close))}?"
    elif os.sep in name or name.startswith("."):
        message += " Check the folder path."
    else:
        message += f" Map it to a folder with --model-path {name}=FOLDER."
    return message


def _read_family(checkpoint):
    """Family of a checkpoint from its config (local folder or hub id): a joint
    family, ``"image"`` for a vision encoder, otherwise ``"text"``."""
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(checkpoint)
    except (OSError, ValueError) as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise SpecError(
            f"cannot read the config of model {checkpoint!r} ({reason}). Pass a "
            "local folder that holds config.json, or map an alias to one with "
            "--model-path."
        ) from None
    model_type = getattr(config, "model_type", "")
    if model_type in _IMAGE_AND_TEXT:
        return model_type
    is_vision = hasattr(config, "image_size") and not hasattr(config, "vocab_size")
    return "image" if is_vision else "text"
