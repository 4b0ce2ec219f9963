"""Fine-tune text+image models for classification."""

from multimodal_clf import _params as P
from multimodal_clf._docs import FITTED_ATTRIBUTES, TRAINING_PARAMETERS
from multimodal_clf._estimator import SHARED_RULES, BaseClassifier
from multimodal_clf.data import DEFAULT_MAX_IMAGE_PIXELS, load_images
from multimodal_clf.heads import FUSIONS

__all__ = ["MultimodalClassifier"]

_MODALITIES = (("text", "image"), ("text",), ("image",))


class MultimodalClassifier(BaseClassifier):
    __doc__ = f"""Fine-tune a text+image model, or a text and an image encoder, as a
    classifier.

    Parameters
    ----------
    backbone : str, path-like, or (text, image) pair of them
        One checkpoint of a joint model, detected from its config: CLIP (dual
        encoder; its projected embeddings are fused by the head), FLAVA (the
        multimodal encoder's pooled output) or ViLT (single-stream pooled
        output). Or a pair ``(text_checkpoint, image_checkpoint)``: any
        ``AutoModel`` text encoder with any ``AutoModel`` vision encoder (ViT,
        DINOv2, ConvNeXt, ...), each with its own tokenizer / image processor.
    fusion : {{"concat", "late", "product"}}, default="concat"
        How the head combines the text and image features of dual encoders and
        pairs: ``"concat"`` concatenates them before an MLP; ``"late"`` gives
        each its own MLP and averages the logits; ``"product"`` projects both,
        and the MLP also reads their element-wise product (interaction terms).
        Joint models (FLAVA, ViLT) fuse inside the backbone.
    modalities : tuple, default=("text", "image")
        ``("text",)`` or ``("image",)`` trains a single-modality ablation with
        the same backbone and preprocessing (joint models see a white image or an
        empty text in place of the missing input).
    head_hidden_size : int, default=256
        Width of the head's hidden layer; 0 makes the head linear (with
        ``fusion="product"``: a linear layer over 256-wide projections and their
        product).
    head_dropout : float, default=0.1
        Dropout in the head.
    modality_dropout : float, default=0.3
        Probability that a training row has one of its modalities (chosen at
        random) blanked in the head, so that the head learns to use each one. A
        fine-tuned text tower can fit the training rows alone within an epoch or
        two; without this, the head then stops learning from the image. No effect
        with a single modality or a joint backbone.
    image_column : str, default="image"
        Name of the image column when X is a DataFrame or a list of dicts.
    image_root : str or path-like, default=None
        Folder that relative image paths are resolved against (default: the
        working directory).
    max_image_pixels : int, default={DEFAULT_MAX_IMAGE_PIXELS:_}
        Images with more pixels (width x height) are refused before decoding.
    {TRAINING_PARAMETERS}

    Attributes
    ----------
    {FITTED_ATTRIBUTES}
    image_processor_ : transformers image processor
        The backbone's image processor.

    Notes
    -----
    X is a DataFrame with ``text_column`` and ``image_column``, a list of dicts
    with those keys, or a list of ``(text, image)`` pairs. An image is a file
    path (str or path-like), a PIL image, a NumPy array (H x W, or H x W x C with
    C in 1, 3, 4; uint8, uint16, or float in [0, 1]) or encoded bytes; every one
    becomes 8-bit RGB the same way (see the images page of the documentation).
    A single-modality run also takes a flat list of texts or of images, and an
    image-only run an array of stacked images, N x H x W or N x H x W x C.

    Examples
    --------
    >>> from multimodal_clf import MultimodalClassifier
    >>> clf = MultimodalClassifier("openai/clip-vit-base-patch32", epochs=1)
    >>> clf.fit([("a dog", "dog.jpg"), ("a cat", "cat.jpg")], ["dog", "cat"])
    ... # doctest: +SKIP
    """

    _rules = {
        **SHARED_RULES,
        "fusion": P.one_of(*FUSIONS),
        "modalities": P.custom(
            lambda v: tuple(v) in _MODALITIES,
            "('text', 'image'), ('text',) or ('image',)",
        ),
        "head_hidden_size": P.integer(0),
        "head_dropout": P.real(0, 1, high_open=True),
        "modality_dropout": P.real(0, 1, high_open=True),
        "image_column": P.string(),
        "image_root": P.optional(P.path_like()),
        "max_image_pixels": P.integer(1),
    }

    def __init__(
        self,
        backbone,
        *,
        fusion="concat",
        modalities=("text", "image"),
        head_hidden_size=256,
        head_dropout=0.1,
        modality_dropout=0.3,
        image_column="image",
        image_root=None,
        max_image_pixels=DEFAULT_MAX_IMAGE_PIXELS,
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
        self.fusion = fusion
        self.modalities = modalities
        self.head_hidden_size = head_hidden_size
        self.head_dropout = head_dropout
        self.modality_dropout = modality_dropout
        self.image_column = image_column
        self.image_root = image_root
        self.max_image_pixels = max_image_pixels
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

    def _modalities(self):
        order = ("text", "image")
        return tuple(m for m in order if m in tuple(self.modalities))

    def _head_options(self):
        return {
            "fusion": self.fusion,
            "hidden": self.head_hidden_size,
            "dropout": self.head_dropout,
            "modality_dropout": self.modality_dropout,
        }

    def _load_images(self, values, positions=None):
        return load_images(
            values,
            image_root=self.image_root,
            max_pixels=self.max_image_pixels,
            column=self.image_column,
            positions=positions,
        )
