"""Joint (fusion) models: FLAVA and ViLT fuse text and image inside the backbone."""

from multimodal_clf.backbones._base import Backbone, blank_image
from multimodal_clf.backbones._loading import (
    load_image_processor,
    load_model,
    load_tokenizer,
    text_token_limit,
)


class _JointBackbone(Backbone):
    """Shared set-up: one model, its tokenizer and image processor, one feature.

    Both inputs are always encoded, so that single-modality ablations keep the same
    backbone and preprocessing: a text-only run shows every row a white image and
    an image-only run gives every row an empty text.
    """

    def __init__(self, source, modalities, *, parameter="backbone"):
        super().__init__(modalities)
        self.source = source
        self.model = load_model(source, parameter=parameter)
        self.tokenizer = load_tokenizer(source, parameter=parameter)
        self.image_processor = load_image_processor(source, parameter=parameter)
        self.text_limit = text_token_limit(self._text_config(), self.tokenizer)
        self.feature_dims = {"joint": self._width()}

    def _text_config(self):
        return self.model.config

    def _width(self):
        return self.model.config.hidden_size

    def towers(self):
        return {"joint": [self.model]}

    def feature_inputs(self, name):
        return self.modalities

    def encode(self, columns, modalities, load_images, positions=None):
        """Encode both inputs, standing in for the one an ablation leaves out."""
        encoded = super().encode(columns, modalities, load_images, positions)
        if not modalities:
            # Nothing to compute (the joint feature comes precomputed): no stand-ins.
            return encoded
        n_rows = len(next(iter(columns.values())))
        if "text" not in modalities:
            encoded.update(self.encode_text([""] * n_rows))
        if "image" not in modalities:
            column = self.encode_images([blank_image()])["pixel_values"]
            column.pixels = column.pixels * n_rows
            encoded["pixel_values"] = column
        return encoded


class FlavaBackbone(_JointBackbone):
    """FLAVA: the multimodal encoder's pooled output; a unimodal encoder's in an
    ablation (text-only uses the text encoder, image-only the image encoder)."""

    family = "flava"

    def _text_config(self):
        return self.model.config.text_config

    def _width(self):
        config = self.model.config
        if self.modalities == ("text",):
            return config.text_config.hidden_size
        if self.modalities == ("image",):
            return config.image_config.hidden_size
        return config.multimodal_config.hidden_size

    def forward(self, batch, names):
        if self.modalities == ("text",):
            out = self.model.text_model(
                input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]
            )
            return {"joint": out.pooler_output}
        if self.modalities == ("image",):
            out = self.model.image_model(pixel_values=batch["pixel_values"])
            return {"joint": out.pooler_output}
        out = self.model(
            input_ids=batch["input_ids"],
            attention_mask=batch["attention_mask"],
            pixel_values=batch["pixel_values"],
        )
        return {"joint": out.multimodal_output.pooler_output}


class ViltBackbone(_JointBackbone):
    """ViLT: single-stream transformer over word and patch tokens, pooled."""

    family = "vilt"

    def forward(self, batch, names):
        out = self.model(
            input_ids=batch["input_ids"],
            attention_mask=batch["attention_mask"],
            pixel_values=batch["pixel_values"],
            pixel_mask=batch.get("pixel_mask"),
        )
        return {"joint": out.pooler_output}
