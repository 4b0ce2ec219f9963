"""Any Hugging Face text encoder that ``AutoModel`` loads."""

from multimodal_clf.backbones._base import Backbone, pool_text
from multimodal_clf.backbones._loading import (
    load_model,
    load_tokenizer,
    text_token_limit,
)


class TextBackbone(Backbone):
    """A text encoder (BERT, RoBERTa, MiniLM, ...) with mean pooling.

    Parameters
    ----------
    source : str
        Resolved checkpoint (local folder or hub id).
    parameter : str, default="backbone"
        Name used in error messages.
    """

    family = "text"

    def __init__(self, source, *, parameter="backbone"):
        super().__init__(("text",))
        self.source = source
        self.encoder = load_model(source, parameter=parameter)
        self.tokenizer = load_tokenizer(source, parameter=parameter)
        self.text_limit = text_token_limit(self.encoder.config, self.tokenizer)
        self.feature_dims = {"text": self.encoder.config.hidden_size}

    def towers(self):
        return {"text": [self.encoder]}

    def feature_inputs(self, name):
        return ("text",)

    def forward(self, batch, names):
        output = self.encoder(
            input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]
        )
        return {"text": pool_text(output, batch["attention_mask"])}
