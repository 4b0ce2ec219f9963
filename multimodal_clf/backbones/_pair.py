"""Any text encoder paired with any vision encoder."""

from multimodal_clf.backbones._base import (
    Backbone,
    blank_image,
    has_class_token,
    pool_image,
    pool_text,
)
from multimodal_clf.backbones._loading import (
    load_config,
    load_image_processor,
    load_model,
    load_tokenizer,
    text_token_limit,
)


def _vision_width(config):
    width = getattr(config, "hidden_size", None)
    if width is None and getattr(config, "hidden_sizes", None):
        width = config.hidden_sizes[-1]
    if width is None and hasattr(config, "vision_config"):
        return _vision_width(config.vision_config)
    return width


def _vision_class(source):
    """The vision tower's class when ``source`` is a dual encoder such as CLIP.

    ``AutoModel`` loads the whole dual encoder, whose forward pass needs text;
    its vision tower alone is loaded instead. None for a vision model.
    """
    from transformers.models.auto.modeling_auto import MODEL_MAPPING

    config = load_config(source, parameter="backbone[1]")
    vision = getattr(config, "vision_config", None)
    if vision is None:
        return None
    return MODEL_MAPPING.get(type(vision), None)


class PairBackbone(Backbone):
    """A text encoder and a vision encoder, each with its own preprocessing.

    Parameters
    ----------
    text_source, image_source : str
        Resolved checkpoints for ``AutoModel``.
    modalities : tuple of str
    """

    family = "pair"

    def __init__(self, text_source, image_source, modalities):
        super().__init__(modalities)
        self.source = (text_source, image_source)
        if "text" in modalities:
            self.text_encoder = load_model(text_source, parameter="backbone[0]")
            self.tokenizer = load_tokenizer(text_source, parameter="backbone[0]")
            self.text_limit = text_token_limit(self.text_encoder.config, self.tokenizer)
            self.feature_dims["text"] = self.text_encoder.config.hidden_size
        if "image" in modalities:
            self.image_encoder = load_model(
                image_source,
                parameter="backbone[1]",
                model_class=_vision_class(image_source),
            )
            self.image_processor = load_image_processor(
                image_source, parameter="backbone[1]"
            )
            self.image_class_token = has_class_token(self.image_encoder)
            width = _vision_width(self.image_encoder.config)
            self.feature_dims["image"] = width or self._measured_image_width()

    def _measured_image_width(self):
        """The image feature's width, from one blank image, for a config that
        does not state it (MobileNet's last channels are computed in code)."""
        import torch

        pixels = self.image_processor(images=[blank_image()], return_tensors="pt")
        was_training = self.image_encoder.training
        self.image_encoder.eval()
        with torch.no_grad():
            out = self.image_encoder(pixel_values=pixels["pixel_values"])
        self.image_encoder.train(was_training)
        return int(pool_image(out, self.image_class_token).shape[-1])

    def pretrained_parts(self):
        parts = {}
        if "text" in self.modalities:
            parts[0] = (self.text_encoder.config, [self.tokenizer])
        if "image" in self.modalities:
            parts[1] = (self.image_encoder.config, [self.image_processor])
        return parts

    def towers(self):
        towers = {}
        if "text" in self.modalities:
            towers["text"] = [self.text_encoder]
        if "image" in self.modalities:
            towers["image"] = [self.image_encoder]
        return towers

    def feature_inputs(self, name):
        return (name,)

    def forward(self, batch, names):
        features = {}
        if "text" in names:
            out = self.text_encoder(
                input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]
            )
            features["text"] = pool_text(out, batch["attention_mask"])
        if "image" in names:
            out = self.image_encoder(pixel_values=batch["pixel_values"])
            features["image"] = pool_image(out, self.image_class_token)
        return features
