"""Tiny randomly initialised models, saved with save_pretrained and loaded back
through from_pretrained, exactly the path real checkpoints take."""

import string
from pathlib import Path

import torch

SPECIALS = ["[UNK]", "[PAD]", "[CLS]", "[SEP]", "[MASK]"]
LETTERS = list(string.ascii_lowercase + string.digits)
VOCAB = SPECIALS + LETTERS + ["##" + c for c in LETTERS] + [".", ",", "!", "?", "-"]
PAD, CLS, SEP = 1, 2, 3
WIDTH = 32
IMAGE = 32

_TEXT = dict(
    vocab_size=len(VOCAB),
    hidden_size=WIDTH,
    intermediate_size=37,
    num_hidden_layers=2,
    num_attention_heads=4,
    pad_token_id=PAD,
)
_VISION = dict(
    hidden_size=WIDTH,
    intermediate_size=37,
    num_hidden_layers=2,
    num_attention_heads=4,
    image_size=IMAGE,
    patch_size=8,
)


def _tokenizer(folder, model_max_length=None):
    from transformers import BertTokenizerFast

    vocab = Path(folder) / "vocab.txt"
    vocab.write_text("\n".join(VOCAB) + "\n")
    kwargs = {} if model_max_length is None else {"model_max_length": model_max_length}
    tok = BertTokenizerFast(str(vocab), do_lower_case=True, **kwargs)
    tok.save_pretrained(folder)


def _save(model, folder, *, processor=None, tokenizer=True, model_max_length=None):
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    if tokenizer:
        _tokenizer(folder, model_max_length)
    if processor is not None:
        processor.save_pretrained(folder)
    return str(folder)


def _seeded(build):
    torch.manual_seed(0)
    return build()


def bert(folder, max_position_embeddings=512):
    from transformers import BertConfig, BertModel

    config = BertConfig(**_TEXT, max_position_embeddings=max_position_embeddings)
    return _save(_seeded(lambda: BertModel(config)), folder)


def roberta(folder):
    from transformers import RobertaConfig, RobertaModel

    config = RobertaConfig(
        **_TEXT,
        max_position_embeddings=514,
        type_vocab_size=1,
        bos_token_id=CLS,
        eos_token_id=SEP,
    )
    return _save(_seeded(lambda: RobertaModel(config)), folder)


def _clip_processor():
    from transformers import CLIPImageProcessorPil

    return CLIPImageProcessorPil(
        size={"shortest_edge": IMAGE}, crop_size={"height": IMAGE, "width": IMAGE}
    )


def clip(folder):
    from transformers import CLIPConfig, CLIPModel

    config = CLIPConfig(
        text_config=dict(
            **_TEXT, max_position_embeddings=77, bos_token_id=CLS, eos_token_id=SEP
        ),
        vision_config=_VISION,
        projection_dim=16,
    )
    return _save(
        _seeded(lambda: CLIPModel(config)), folder, processor=_clip_processor()
    )


def flava(folder):
    from transformers import FlavaConfig, FlavaImageProcessorPil, FlavaModel

    config = FlavaConfig(
        text_config=dict(**_TEXT, max_position_embeddings=64),
        image_config=_VISION,
        multimodal_config=dict(
            hidden_size=WIDTH,
            intermediate_size=37,
            num_hidden_layers=2,
            num_attention_heads=4,
        ),
        image_codebook_config=dict(
            hidden_size=8, num_groups=1, num_blocks_per_group=1, vocab_size=16
        ),
        hidden_size=WIDTH,
        projection_dim=16,
    )
    processor = FlavaImageProcessorPil(
        size={"height": IMAGE, "width": IMAGE},
        crop_size={"height": IMAGE, "width": IMAGE},
    )
    return _save(_seeded(lambda: FlavaModel(config)), folder, processor=processor)


def vilt(folder):
    from transformers import ViltConfig, ViltImageProcessorPil, ViltModel

    config = ViltConfig(
        **{k: v for k, v in _TEXT.items()},
        image_size=IMAGE,
        patch_size=8,
        max_position_embeddings=40,
        max_image_length=-1,
        num_images=1,
    )
    processor = ViltImageProcessorPil(size={"shortest_edge": IMAGE}, size_divisor=8)
    return _save(_seeded(lambda: ViltModel(config)), folder, processor=processor)


def vit(folder):
    from transformers import ViTConfig, ViTImageProcessorPil, ViTModel

    config = ViTConfig(**_VISION)
    processor = ViTImageProcessorPil(size={"height": IMAGE, "width": IMAGE})
    return _save(
        _seeded(lambda: ViTModel(config)), folder, processor=processor, tokenizer=False
    )


def swin(folder):
    """A windowed vision transformer: patch tokens only, no class token."""
    from transformers import SwinConfig, SwinModel, ViTImageProcessorPil

    config = SwinConfig(
        image_size=IMAGE,
        patch_size=4,
        embed_dim=16,
        depths=[1, 1],
        num_heads=[2, 2],
        window_size=2,
    )
    processor = ViTImageProcessorPil(size={"height": IMAGE, "width": IMAGE})
    return _save(
        _seeded(lambda: SwinModel(config)), folder, processor=processor, tokenizer=False
    )


def mobilenet(folder):
    """A convolutional encoder whose config does not state its output width."""
    from transformers import MobileNetV2Config, MobileNetV2Model, ViTImageProcessorPil

    config = MobileNetV2Config(image_size=IMAGE, depth_multiplier=0.25)
    processor = ViTImageProcessorPil(size={"height": IMAGE, "width": IMAGE})
    return _save(
        _seeded(lambda: MobileNetV2Model(config)),
        folder,
        processor=processor,
        tokenizer=False,
    )


def resnet(folder):
    """A convolutional image encoder: an ``embedder`` and ``stages``, batch norm."""
    from transformers import ConvNextImageProcessorPil, ResNetConfig, ResNetModel

    config = ResNetConfig(embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1])
    processor = ConvNextImageProcessorPil(size={"shortest_edge": IMAGE})
    return _save(
        _seeded(lambda: ResNetModel(config)),
        folder,
        processor=processor,
        tokenizer=False,
    )
