"""Speed-ups that must not change results: used-row embeddings, token batches."""

import contextlib
import logging

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

import multimodal_clf._estimator as estimator_module
from multimodal_clf import MultimodalClassifier, TextClassifier
from multimodal_clf._model import train_used_embeddings
from multimodal_clf.data._batching import Rows, TokenColumn

# Few distinct letters, so that the texts use a small part of the vocabulary.
TEXTS = ["ab ab", "ba", "abc", "cab cab", "aa bb", "cc", "a b c", "bca"]
LABELS = ["x", "y", "x", "y", "x", "y", "x", "y"]


def fit_text(bert, *, dense, **params):
    options = dict(
        epochs=3,
        batch_size=3,
        learning_rate=1e-2,
        random_state=0,
        device="cpu",
        verbose=0,
    )
    options.update(params)
    clf = TextClassifier(bert, **options)
    if not dense:
        return clf.fit(TEXTS, LABELS)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(
            estimator_module,
            "train_used_embeddings",
            lambda *args, **kwargs: contextlib.nullcontext(),
        )
        return clf.fit(TEXTS, LABELS)


def word_table(clf):
    return clf.model_.backbone.encoder.embeddings.word_embeddings


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"weight_decay": 0.5},
        {"early_stopping": True, "validation_fraction": 0.25, "patience": 1},
        {"gradient_accumulation_steps": 2, "warmup_ratio": 0.5},
    ],
)
def test_training_used_rows_gives_the_result_of_the_whole_table(bert, params):
    used = fit_text(bert, dense=False, **params)
    dense = fit_text(bert, dense=True, **params)

    table = word_table(used)
    assert type(table) is nn.Embedding
    assert table.weight.shape == word_table(dense).weight.shape
    torch.testing.assert_close(
        table.weight, word_table(dense).weight, rtol=1e-5, atol=1e-6
    )
    # The rows no text uses were decayed, not left as they were.
    if params.get("weight_decay"):
        from transformers import AutoModel

        start = AutoModel.from_pretrained(bert).embeddings.word_embeddings.weight
        assert not torch.allclose(table.weight[-1], start[-1])
    np.testing.assert_allclose(
        used.predict_proba(TEXTS), dense.predict_proba(TEXTS), rtol=0, atol=1e-5
    )


def test_the_embedding_table_is_cut_down_during_training(bert, caplog):
    with caplog.at_level(logging.DEBUG, logger="multimodal_clf._model"):
        fit_text(bert, dense=False, epochs=1)
    # [CLS], [SEP], [PAD], a, b, c, ##a, ##b, ##c of the 82-entry vocabulary.
    assert "training 9 of 82 token embedding rows" in caplog.text


def test_the_whole_table_is_trained_when_most_rows_are_used(bert, caplog):
    texts = ["".join(chr(ord("a") + (i + j) % 26) for j in range(26)) for i in range(4)]
    texts += [str(i) * 5 for i in range(10)]
    with caplog.at_level(logging.DEBUG, logger="multimodal_clf._model"):
        TextClassifier(bert, epochs=1, device="cpu", verbose=0, random_state=0).fit(
            texts, ["p", "q"] * 7
        )
    assert "token embedding rows" not in caplog.text


def test_frozen_embeddings_are_left_alone(bert):
    clf = fit_text(bert, dense=False, epochs=1, freeze=0)
    start = TextClassifier(bert)._build_model(2).backbone.encoder
    torch.testing.assert_close(
        word_table(clf).weight, start.embeddings.word_embeddings.weight
    )


def test_pair_backbones_train_their_used_text_rows(pair, pair_data):
    X, y = pair_data
    clf = MultimodalClassifier(
        pair, epochs=1, batch_size=4, random_state=0, device="cpu", verbose=0
    ).fit(X, y)
    assert type(clf.model_.backbone.text_encoder.get_input_embeddings()) is (
        nn.Embedding
    )
    assert clf.predict(X).shape == (len(y),)


def test_the_table_comes_back_when_training_fails(bert):
    model = TextClassifier(bert)._build_model(2)
    rows = Rows({"text": TokenColumn([[2, 5, 3]], pad_id=1)})
    original = model.backbone.encoder.get_input_embeddings()
    with pytest.raises(RuntimeError, match="stop"):
        with train_used_embeddings(model, rows):
            assert model.backbone.encoder.get_input_embeddings() is not original
            raise RuntimeError("stop")
    assert model.backbone.encoder.get_input_embeddings() is original


# --- token columns ----------------------------------------------------------------
def padded(ids, indices, pad):
    width = max((len(ids[i]) for i in indices), default=0)
    out = np.full((len(indices), width), pad)
    mask = np.zeros((len(indices), width), dtype=np.int64)
    for row, i in enumerate(indices):
        out[row, : len(ids[i])] = ids[i]
        mask[row, : len(ids[i])] = 1
    return out, mask


@pytest.mark.parametrize("seed", range(5))
def test_token_batches_are_padded_to_their_longest_row(seed):
    rng = np.random.default_rng(seed)
    ids = [rng.integers(2, 50, rng.integers(0, 9)).tolist() for _ in range(30)]
    column = TokenColumn(ids, pad_id=1, prefix="t_", token_type_ids=True)
    indices = rng.permutation(30)[: rng.integers(1, 30)]
    batch = column.batch(indices)
    expected_ids, expected_mask = padded(ids, indices, 1)
    np.testing.assert_array_equal(batch["t_input_ids"].numpy(), expected_ids)
    np.testing.assert_array_equal(batch["t_attention_mask"].numpy(), expected_mask)
    assert not batch["t_token_type_ids"].any()

    taken = column.take(indices)
    assert [row.tolist() for row in taken.ids] == [ids[i] for i in indices]
    np.testing.assert_array_equal(taken.lengths, [len(ids[i]) for i in indices])
    again = taken.batch(np.arange(len(indices)))
    np.testing.assert_array_equal(again["t_input_ids"].numpy(), expected_ids)


# --- image columns ----------------------------------------------------------------
@pytest.mark.parametrize("family", ["pair", "clip", "vilt", "flava"])
def test_images_are_kept_as_8_bit_values_and_batch_as_processor_output(family, request):
    from multimodal_clf.backbones import load_backbone

    spec = request.getfixturevalue(family)
    backbone = load_backbone(spec, ("text", "image"))
    rng = np.random.default_rng(0)
    sizes = [(24, 24), (40, 20), (17, 33)]
    images = [
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
        for w, h in sizes
    ]
    column = backbone.encode_images(images)["pixel_values"]
    assert all(p.dtype == torch.uint8 for p in column.pixels)

    expected = backbone.image_processor(images=images, return_tensors="pt")
    batch = column.batch([0, 1, 2])
    assert batch["pixel_values"].dtype == torch.float32
    torch.testing.assert_close(
        batch["pixel_values"], expected["pixel_values"], rtol=0, atol=1e-5
    )
    if "pixel_mask" in expected:
        torch.testing.assert_close(batch["pixel_mask"], expected["pixel_mask"])
    floats = sum(p.numel() * 4 for p in column.pixels)
    assert column.nbytes * 4 == floats


def test_values_that_are_not_8_bit_stay_float():
    from multimodal_clf.data._batching import ImageColumn, PixelCodec

    class Processor:
        do_rescale = do_normalize = True
        rescale_factor = 1 / 255
        image_mean = image_std = [0.5, 0.5, 0.5]

    codec = PixelCodec(Processor())
    whole = (torch.arange(48.0).reshape(3, 4, 4) / 255 - 0.5) / 0.5
    blurred = whole + 0.3 / 255  # what resizing in float would give
    stored = [codec.encode(whole), codec.encode(blurred)]
    assert [p.dtype for p in stored] == [torch.uint8, torch.float32]
    batch = ImageColumn(stored, codec=codec).batch([0, 1])["pixel_values"]
    torch.testing.assert_close(batch[0], whole, rtol=0, atol=1e-6)
    torch.testing.assert_close(batch[1], blurred, rtol=0, atol=0)
    assert PixelCodec(None).encode(whole).dtype == torch.float32
