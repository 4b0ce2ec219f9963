"""Fine-tune a Hugging Face text encoder for classification."""

from multimodal_clf._docs import FITTED_ATTRIBUTES, TRAINING_PARAMETERS
from multimodal_clf._estimator import BaseClassifier

__all__ = ["TextClassifier"]


class TextClassifier(BaseClassifier):
    __doc__ = f"""Fine-tune a text encoder (BERT, RoBERTa, MiniLM, ...) as a classifier.

    The backbone's token states are mean-pooled and fed to a linear layer; the
    whole model is trained with AdamW. All loading happens in :meth:`fit`.

    Parameters
    ----------
    backbone : str or path-like
        A Hugging Face model id (``"bert-base-uncased"``) or a local folder
        written by ``save_pretrained``, of any model ``AutoModel`` and
        ``AutoTokenizer`` load.
    {TRAINING_PARAMETERS}

    Attributes
    ----------
    {FITTED_ATTRIBUTES}

    See Also
    --------
    MultimodalClassifier : The same with images.

    Examples
    --------
    >>> from multimodal_clf import TextClassifier
    >>> clf = TextClassifier("bert-base-uncased", epochs=2, random_state=0)
    >>> clf.fit(["good film", "dull plot"], ["pos", "neg"])  # doctest: +SKIP
    >>> clf.predict(["what a film"])  # doctest: +SKIP
    array(['pos'], dtype='<U3')
    """

    def __init__(
        self,
        backbone,
        *,
        max_length=None,
        batch_size=16,
        epochs=3,
        learning_rate=2e-5,
        head_learning_rate=None,
        weight_decay=0.01,
        warmup_ratio=0.1,
        class_weight=None,
        validation_fraction=0.1,
        early_stopping=False,
        patience=2,
        precision="auto",
        gradient_checkpointing=False,
        gradient_accumulation_steps=1,
        freeze_backbone=False,
        freeze=None,
        device="auto",
        cache_features=True,
        warm_start=False,
        random_state=None,
        verbose=1,
        text_column="text",
        checkpoint_dir=None,
    ):
        self.backbone = backbone
        self.max_length = max_length
        self.batch_size = batch_size
        self.epochs = epochs
        self.learning_rate = learning_rate
        self.head_learning_rate = head_learning_rate
        self.weight_decay = weight_decay
        self.warmup_ratio = warmup_ratio
        self.class_weight = class_weight
        self.validation_fraction = validation_fraction
        self.early_stopping = early_stopping
        self.patience = patience
        self.precision = precision
        self.gradient_checkpointing = gradient_checkpointing
        self.gradient_accumulation_steps = gradient_accumulation_steps
        self.freeze_backbone = freeze_backbone
        self.freeze = freeze
        self.device = device
        self.cache_features = cache_features
        self.warm_start = warm_start
        self.random_state = random_state
        self.verbose = verbose
        self.text_column = text_column
        self.checkpoint_dir = checkpoint_dir
