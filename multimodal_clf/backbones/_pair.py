"""Any text encoder paired with any vision encoder."""

from multimodal_clf.backbones._base import Backbone, pool_image, pool_text
from multimodal_clf.backbones._loading import (
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
            self.image_encoder = load_model(image_source, parameter="backbone[1]")
            self.image_processor = load_image_processor(
                image_source, parameter="backbone[1]"
            )
            self.feature_dims["image"] = _vision_width(self.image_encoder.config)

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
            features["image"] = pool_image(out)
        return features
