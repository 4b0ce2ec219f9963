"""Backbone adapters, chosen from the checkpoint's config.

Adding a family is one adapter class and one line in :data:`FAMILIES`.
"""

from multimodal_clf.backbones._base import Backbone
from multimodal_clf.backbones._clip import ClipBackbone
from multimodal_clf.backbones._joint import FlavaBackbone, ViltBackbone
from multimodal_clf.backbones._loading import (
    architecture_only,
    load_config,
    resolve_checkpoint,
)
from multimodal_clf.backbones._pair import PairBackbone
from multimodal_clf.backbones._text import TextBackbone

__all__ = [
    "FAMILIES",
    "Backbone",
    "ClipBackbone",
    "FlavaBackbone",
    "PairBackbone",
    "TextBackbone",
    "ViltBackbone",
    "load_backbone",
]

#: config ``model_type`` -> adapter for one-checkpoint backbones.
FAMILIES = {
    "clip": ClipBackbone,
    "flava": FlavaBackbone,
    "vilt": ViltBackbone,
}


def load_backbone(spec, modalities, *, from_config=False):
    """Build the adapter for a backbone specification.

    Parameters
    ----------
    spec : str, path-like, or (text, image) pair of them
        One checkpoint of a joint or dual-encoder model, a text encoder, or a pair.
    modalities : tuple of str
        The inputs to use.
    from_config : bool, default=False
        Build every model from the config in its folder, with fresh weights for
        the caller to replace, as for folders written from
        :meth:`Backbone.pretrained_parts`. The side of a pair that ``modalities``
        leave out may then be None.

    Returns
    -------
    Backbone
    """
    if from_config:
        with architecture_only():
            return _load_backbone(spec, modalities, optional_sides=True)
    return _load_backbone(spec, modalities)


def _load_backbone(spec, modalities, optional_sides=False):
    if isinstance(spec, (tuple, list)):
        if len(spec) != 2:
            raise ValueError(
                f"backbone as a pair must hold exactly 2 checkpoints (text, image); "
                f"got {len(spec)}."
            )
        text, image = (
            None
            if optional_sides and side is None
            else resolve_checkpoint(side, parameter=f"backbone[{i}]")
            for i, side in enumerate(spec)
        )
        if text is not None and "text" in modalities:
            _check_reads_text(text, "backbone[0]", swap_with=image)
        return PairBackbone(text, image, modalities)
    source = resolve_checkpoint(spec)
    model_type = load_config(source).model_type
    if model_type in FAMILIES:
        return FAMILIES[model_type](source, modalities)
    if tuple(modalities) != ("text",):
        raise ValueError(
            f"backbone {spec!r} is a {model_type!r} model, which reads text only; "
            f"modalities={tuple(modalities)!r} needs images. Pass a joint checkpoint "
            f"({', '.join(sorted(FAMILIES))}) or a (text, image) pair of checkpoints."
        )
    _check_reads_text(source, "backbone")
    return TextBackbone(source)


def _reads_text(config):
    return getattr(config, "vocab_size", None) is not None


def _check_reads_text(source, parameter, swap_with=None):
    """Refuse a checkpoint with no vocabulary where a text encoder is needed."""
    config = load_config(source, parameter=parameter)
    if _reads_text(config):
        return
    hint = "Pass a text encoder such as a BERT or MiniLM checkpoint"
    if swap_with is not None and _reads_text(load_config(swap_with)):
        hint = "The pair is (text, image): swap the two checkpoints"
    raise ValueError(
        f"{parameter} {source!r} is a {config.model_type!r} model with no text "
        f"vocabulary, so it cannot read text. {hint}."
    )
