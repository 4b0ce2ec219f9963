"""CLIP and other dual encoders with a text and a vision tower."""

from multimodal_clf.backbones._base import Backbone
from multimodal_clf.backbones._loading import (
    load_image_processor,
    load_model,
    load_tokenizer,
    text_token_limit,
)


class ClipBackbone(Backbone):
    """CLIP's projected text and image embeddings, fused by the head.

    Parameters
    ----------
    source : str
        Resolved checkpoint of a ``CLIPModel``.
    modalities : tuple of str
        ``("text", "image")`` or one of them for an ablation.
    """

    family = "clip"

    def __init__(self, source, modalities, *, parameter="backbone"):
        super().__init__(modalities)
        self.source = source
        model = load_model(source, parameter=parameter)
        if "text" in modalities:
            self.text_model = model.text_model
            self.text_projection = model.text_projection
            self.tokenizer = load_tokenizer(source, parameter=parameter)
            self.text_limit = text_token_limit(model.config.text_config, self.tokenizer)
            self.feature_dims["text"] = model.text_projection.out_features
        if "image" in modalities:
            self.vision_model = model.vision_model
            self.visual_projection = model.visual_projection
            self.image_processor = load_image_processor(source, parameter=parameter)
            self.feature_dims["image"] = model.visual_projection.out_features
        self.config = model.config

    def pretrained_models(self):
        return [
            getattr(self, name)
            for name in ("text_model", "vision_model")
            if hasattr(self, name)
        ]

    def towers(self):
        towers = {}
        if "text" in self.modalities:
            towers["text"] = [self.text_model, self.text_projection]
        if "image" in self.modalities:
            towers["image"] = [self.vision_model, self.visual_projection]
        return towers

    def feature_inputs(self, name):
        return (name,)

    def forward(self, batch, names):
        features = {}
        if "text" in names:
            out = self.text_model(
                input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]
            )
            features["text"] = self.text_projection(out.pooler_output)
        if "image" in names:
            out = self.vision_model(pixel_values=batch["pixel_values"])
            features["image"] = self.visual_projection(out.pooler_output)
        return features
