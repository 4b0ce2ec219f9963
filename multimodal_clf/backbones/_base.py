"""The interface every backbone adapter implements."""

import logging
import warnings

from torch import nn

from multimodal_clf.data._batching import ImageColumn, PixelCodec, TokenColumn
from multimodal_clf.exceptions import TruncationWarning

logger = logging.getLogger(__name__)

_IMAGE_CHUNK = 64


class Backbone(nn.Module):
    """Adapter between rows of text / images and feature vectors.

    A subclass wraps one model family. It turns raw rows into columns once per call
    (:meth:`encode_text`, :meth:`encode_images`) and turns a batch of tensors into
    named feature vectors (:meth:`forward`). Estimators and heads only see those
    names and sizes, so adding a family never touches them.

    Attributes
    ----------
    modalities : tuple of str
        The inputs used, a subset of ``("text", "image")``.
    feature_dims : dict of str to int
        Each feature's name and width.
    text_limit : int or None
        The longest token sequence the text side accepts.
    """

    family = "base"

    def __init__(self, modalities):
        super().__init__()
        self.modalities = tuple(modalities)
        self.feature_dims = {}
        self.text_limit = None
        self.tokenizer = None
        self.image_processor = None
        self.max_length = None
        self.source = None

    # --- what produces what -------------------------------------------------
    def towers(self):
        """Return ``{feature name: [modules that compute it]}``."""
        raise NotImplementedError

    def feature_inputs(self, name):
        """Return the modalities a feature reads, e.g. ``("text",)``."""
        raise NotImplementedError

    def pretrained_models(self):
        """Return the Hugging Face models inside, for checkpointing and saving."""
        return [m for m in self.children() if hasattr(m, "config")]

    def pretrained_parts(self):
        """Return what rebuilds this adapter without its original checkpoint.

        Returns
        -------
        dict
            ``{side: (config, preprocessors)}``: per checkpoint, the config of the
            model loaded from it and its tokenizer / image processor. The side is
            None for a one-checkpoint backbone, 0 (text) or 1 (image) for a pair.
            Written with ``save_pretrained`` to one folder per side, they form a
            specification that :func:`~multimodal_clf.backbones.load_backbone`
            builds with ``from_config=True``.
        """
        config = getattr(self, "config", None)
        if config is None:
            config = self.pretrained_models()[0].config
        preprocessors = [self.tokenizer, self.image_processor]
        return {None: (config, [p for p in preprocessors if p is not None])}

    # --- preprocessing ------------------------------------------------------
    def set_max_length(self, max_length):
        """Check and store the token limit used by :meth:`encode_text`."""
        if max_length is not None and self.text_limit is not None:
            if max_length > self.text_limit:
                raise ValueError(
                    f"max_length={max_length} is above this backbone's limit of "
                    f"{self.text_limit} tokens (read from its config). Pass "
                    f"max_length={self.text_limit} or less, or None for the limit."
                )
        self.max_length = max_length if max_length is not None else self.text_limit

    def encode(self, columns, modalities, load_images, positions=None):
        """Encode raw columns of the given modalities into batchable columns.

        Parameters
        ----------
        columns : dict
            ``{"text": [str, ...], "image": [raw image values, ...]}``.
        modalities : iterable of str
            Which of them to encode.
        load_images : callable
            ``load_images(values, positions=...)`` -> RGB images; ``positions``
            gives each row's position in the caller's data for error messages.
        positions : list of int, optional

        Returns
        -------
        dict of str to column
        """
        encoded = {}
        if "text" in modalities:
            encoded.update(self.encode_text(columns["text"]))
        if "image" in modalities:
            images = load_images(columns["image"], positions=positions)
            encoded.update(self.encode_images(images, positions=positions))
        return encoded

    def encode_text(self, texts, *, prefix=""):
        """Tokenize texts once, truncating to the limit with one warning.

        Returns
        -------
        columns : dict of str to column
        """
        limit = self.max_length
        tokens = self.tokenizer(
            list(texts),
            truncation=limit is not None,
            max_length=limit,
            return_attention_mask=False,
            return_token_type_ids=False,
        )["input_ids"]
        if limit is not None:
            full = [i for i, ids in enumerate(tokens) if len(ids) >= limit]
            cut = 0
            if full:
                # verbose=False: the tokenizer would log that these untruncated
                # ids are too long for the model; they are only counted.
                longer = self.tokenizer(
                    [texts[i] for i in full],
                    return_attention_mask=False,
                    return_token_type_ids=False,
                    verbose=False,
                )["input_ids"]
                cut = sum(len(ids) > limit for ids in longer)
            if cut:
                warnings.warn(
                    f"{cut} of {len(tokens)} texts are longer than {limit} tokens "
                    f"and were truncated to that limit (the backbone's maximum is "
                    f"{self.text_limit}).",
                    TruncationWarning,
                    stacklevel=2,
                )
        pad = self.tokenizer.pad_token_id
        if pad is None:
            pad = self.tokenizer.eos_token_id or 0
        return {f"{prefix}text": TokenColumn(tokens, pad, prefix=prefix)}

    def encode_images(self, images, *, name="pixel_values", positions=None):
        """Run the image processor once over RGB images, in bounded chunks.

        Parameters
        ----------
        images : list of PIL.Image.Image
            Already converted to RGB by :mod:`multimodal_clf.data`.
        name : str, default="pixel_values"
        positions : list of int, optional
            Each image's row in the caller's data, for error messages.
        """
        pixels, has_mask = [], False
        codec = PixelCodec(self.image_processor)
        for start in range(0, len(images), _IMAGE_CHUNK):
            chunk = images[start : start + _IMAGE_CHUNK]
            try:
                out = self.image_processor(images=chunk, return_tensors="pt")
            except (ValueError, RuntimeError, ZeroDivisionError) as error:
                rows = range(start, start + len(chunk))
                if positions is not None:
                    rows = [positions[row] for row in rows]
                problem = self._processor_error(chunk, rows)
                if problem is None:
                    raise
                raise problem from error
            values = out["pixel_values"]
            mask = out.get("pixel_mask")
            for row in range(len(chunk)):
                if mask is None:
                    pixels.append(codec.encode(values[row]))
                    continue
                has_mask = True
                height = int(mask[row].any(dim=1).sum())
                width = int(mask[row].any(dim=0).sum())
                pixels.append(codec.encode(values[row, :, :height, :width]))
        return {name: ImageColumn(pixels, name=name, pixel_mask=has_mask, codec=codec)}

    def _processor_error(self, images, rows):
        """Name the first image of a failed chunk that the processor refuses."""
        for row, image in zip(rows, images):
            try:
                self.image_processor(images=[image], return_tensors="pt")
            except (ValueError, RuntimeError, ZeroDivisionError) as exc:
                width, height = image.size
                return ValueError(
                    f"row {row}: the image processor of this backbone "
                    f"({type(self.image_processor).__name__}) cannot preprocess "
                    f"this {width} x {height} image ({exc}). Very thin images can "
                    "shrink to nothing when resized: crop or pad it closer to "
                    "square, or drop the row."
                )
        return None

    # --- training options ---------------------------------------------------
    def enable_gradient_checkpointing(self):
        """Turn on each inner model's own (non-reentrant) gradient checkpointing.

        Non-reentrant checkpointing gives gradients to every trainable layer even
        when the layers before it (the embeddings) are frozen, and works under
        DistributedDataParallel.
        """
        kwargs = {"use_reentrant": False}
        for model in self.pretrained_models():
            if getattr(model, "supports_gradient_checkpointing", False):
                if hasattr(model, "activation_checkpointing_enable"):
                    model.activation_checkpointing_enable(
                        activation_checkpointing_kwargs=kwargs
                    )
                else:
                    model.gradient_checkpointing_enable(
                        gradient_checkpointing_kwargs=kwargs
                    )
                # Encoders keep no cache; saying so avoids transformers' warning.
                if getattr(model.config, "use_cache", False):
                    model.config.use_cache = False
            else:
                logger.warning(
                    "%s does not support gradient checkpointing; it runs without.",
                    type(model).__name__,
                )

    def cache_key(self, inputs=("text", "image")):
        """Return a string that changes whenever features read from ``inputs``
        could change.

        Only the preprocessing of those inputs is part of the key, so that an
        image-only model and a text+image model with the same checkpoints share
        their image features.
        """
        parts = [self.family, str(self.source), ",".join(inputs)]
        preprocessors = []
        if "text" in inputs:
            parts.append(str(self.max_length))
            preprocessors.append(self.tokenizer)
        if "image" in inputs:
            preprocessors.append(self.image_processor)
        for part in preprocessors:
            if part is not None and hasattr(part, "to_json_string"):
                parts.append(part.to_json_string())
            elif part is not None:
                parts.append(
                    type(part).__name__ + str(getattr(part, "name_or_path", ""))
                )
        return "\n".join(parts)

    def forward(self, batch, names):
        """Compute the features in ``names`` from a batch of tensors."""
        raise NotImplementedError


def pool_text(output, attention_mask):
    """Mean of the token states over real (unpadded) tokens, in float32.

    Under bf16 or fp16 autocast the states come in reduced precision, whose sums
    over hundreds of tokens (and counts above 256, in bf16) are inexact.
    """
    states = output.last_hidden_state.float()
    mask = attention_mask.unsqueeze(-1).float()
    return (states * mask).sum(1) / mask.sum(1).clamp(min=1.0)


def has_class_token(model):
    """True when a vision model prepends a class token to its patch tokens.

    ViT, DeiT, DINOv2, BEiT and CLIP's vision tower learn one (``cls_token``,
    ``class_embedding``); Swin, SigLIP and LeViT have patch tokens only.
    """
    return any(
        name.rsplit(".", 1)[-1] in ("cls_token", "class_embedding")
        for name, _ in model.named_parameters()
    )


def pool_image(output, class_token=True):
    """One vector per image: the class token for ViT-like models, else the pool.

    Parameters
    ----------
    output : transformers model output
        With ``last_hidden_state`` and, for most models, ``pooler_output``.
    class_token : bool, default=True
        Whether the first of a token sequence is a class token. Without one, the
        first state is one patch's (the top-left window's, in Swin), so the
        model's pooled output, or else the mean over tokens, is used.
    """
    states = output.last_hidden_state
    if states.dim() == 3 and class_token:
        return states[:, 0]
    pooled = getattr(output, "pooler_output", None)
    if pooled is not None:
        return pooled.flatten(1)
    if states.dim() == 3:
        return states.mean(dim=1)
    return states.mean(dim=(-2, -1))


def blank_image(size=224):
    """A white RGB image, the stand-in for images in text-only joint runs."""
    from PIL import Image

    return Image.new("RGB", (size, size), (255, 255, 255))


def module_params(modules):
    """All parameters of a list of modules, without repeats."""
    seen, params = set(), []
    for module in modules:
        for param in module.parameters():
            if id(param) not in seen:
                seen.add(id(param))
                params.append(param)
    return params


def frozen(modules):
    """True when no parameter of ``modules`` will be trained."""
    params = module_params(modules)
    return bool(params) and not any(p.requires_grad for p in params)
