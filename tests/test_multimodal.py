"""MultimodalClassifier on tiny CLIP, FLAVA, ViLT and (BERT, ViT) pair checkpoints:
fitting, fusions, ablations, frozen backbones and the feature cache."""

import shutil

import numpy as np
import pandas as pd
import pytest
import torch
from transformers import AutoModel

from multimodal_clf import MultimodalClassifier, clear_feature_cache, feature_cache
from multimodal_clf.backbones import PairBackbone, load_backbone
from multimodal_clf.data._batching import Rows
from multimodal_clf.engine import Trainer
from multimodal_clf.heads import FUSIONS

BACKBONES = ["clip", "flava", "vilt", "pair"]


def make(backbone, **params):
    """A quick CPU classifier; ``params`` override the test defaults."""
    defaults = dict(
        epochs=1,
        batch_size=4,
        head_hidden_size=16,
        verbose=0,
        device="cpu",
        random_state=0,
    )
    return MultimodalClassifier(backbone, **{**defaults, **params})


@pytest.fixture(params=BACKBONES)
def backbone(request):
    return request.getfixturevalue(request.param)


@pytest.fixture(params=["clip", "pair"])
def dual(request):
    return request.getfixturevalue(request.param)


@pytest.fixture(autouse=True)
def empty_cache():
    clear_feature_cache()
    yield
    clear_feature_cache()


def check_proba(clf, X):
    proba = clf.predict_proba(X)
    assert proba.dtype == np.float32
    assert proba.shape == (len(X), len(clf.classes_))
    assert np.isfinite(proba).all()
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-6)
    return proba


def state(module):
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def equal_states(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _swap_images(X):
    texts, images = zip(*X)
    return list(zip(texts, images[::-1]))


def _swap_texts(X):
    texts, images = zip(*X)
    return list(zip(texts[::-1], images))


# --- every backbone -------------------------------------------------------------


def test_fit_predict(backbone, pair_data):
    X, y = pair_data
    rng_state = torch.get_rng_state()
    clf = make(backbone, epochs=2).fit(X, y)
    np.testing.assert_array_equal(clf.classes_, ["neg", "pos"])
    proba = check_proba(clf, X)
    # The caller's torch random state is left alone (ViLT draws random numbers
    # when it predicts), and predicting twice gives the same probabilities.
    assert torch.equal(torch.get_rng_state(), rng_state)
    np.testing.assert_array_equal(clf.predict_proba(X), proba)
    predicted = clf.predict(X)
    np.testing.assert_array_equal(predicted, clf.classes_[proba.argmax(axis=1)])
    assert clf.score(X, y) == np.mean(predicted == np.array(y))
    assert clf.n_iter_ == 2
    assert clf.image_processor_ is not None and clf.tokenizer_ is not None
    # Both inputs reach the prediction.
    assert not np.array_equal(clf.predict_proba(_swap_images(X)), proba)
    assert not np.array_equal(clf.predict_proba(_swap_texts(X)), proba)


def test_fusions(dual, pair_data):
    X, y = pair_data
    probas = []
    for fusion, head in FUSIONS.items():
        clf = make(dual, fusion=fusion).fit(X, y)
        assert type(clf.model_.head) is head
        assert clf.model_.head.names == ["text", "image"]
        probas.append(check_proba(clf, X))
    assert not np.array_equal(probas[0], probas[1])
    assert not np.array_equal(probas[1], probas[2])


def test_text_ablation_ignores_images(backbone, pair_data):
    X, y = pair_data
    clf = make(backbone, modalities=("text",)).fit(X, y)
    proba = check_proba(clf, X)
    np.testing.assert_array_equal(clf.predict_proba(_swap_images(X)), proba)
    # Only the texts are needed: a flat list of them gives the same.
    np.testing.assert_array_equal(clf.predict_proba([t for t, _ in X]), proba)
    assert not np.array_equal(clf.predict_proba(_swap_texts(X)), proba)


def test_image_ablation_ignores_texts(backbone, pair_data):
    X, y = pair_data
    clf = make(backbone, modalities=("image",)).fit(X, y)
    proba = check_proba(clf, X)
    np.testing.assert_array_equal(clf.predict_proba(_swap_texts(X)), proba)
    np.testing.assert_array_equal(clf.predict_proba([i for _, i in X]), proba)
    assert not np.array_equal(clf.predict_proba(_swap_images(X)), proba)


# --- the text side of joint models ----------------------------------------------


@pytest.fixture(scope="module")
def sharp_joint(tmp_path_factory, flava, vilt):
    """FLAVA and ViLT with weights at the scale of trained models.

    The fixtures' initialisation (std 0.02 at width 32) leaves attention nearly
    uniform and the residual stream dominant, so the first token's state barely
    depends on the rest of the text. Weights drawn with std 1 / sqrt(fan_in)
    behave like a trained model in that respect.
    """
    root = tmp_path_factory.mktemp("sharp")
    out = {}
    for name, source in (("flava", flava), ("vilt", vilt)):
        folder = root / name
        shutil.copytree(source, folder)
        model = AutoModel.from_pretrained(source)
        generator = torch.Generator().manual_seed(0)
        with torch.no_grad():
            for param in model.parameters():
                if param.dim() == 2:
                    std = param.shape[1] ** -0.5
                    param.copy_(torch.randn(param.shape, generator=generator) * std)
        model.save_pretrained(folder)
        out[name] = str(folder)
    return out


@pytest.mark.parametrize("name", ["flava", "vilt"])
def test_joint_text_ablation_reads_the_text(sharp_joint, pair_data, name):
    X, y = pair_data
    texts = [t for t, _ in X]
    clf = make(sharp_joint[name], modalities=("text",), epochs=3, learning_rate=1e-3)
    proba = clf.fit(texts, y).predict_proba(texts)
    # The fixtures' own weights give a spread near 0.001; weights at a trained
    # model's scale give ten times more: the pooled output reads the text.
    spread = proba[:, 0].max() - proba[:, 0].min()
    assert spread > 0.005
    # The same text gets the same probabilities in any order (up to the float
    # noise of batches padded differently).
    np.testing.assert_allclose(
        clf.predict_proba(texts[::-1]), proba[::-1], rtol=1e-5, atol=1e-6
    )


@pytest.mark.parametrize("name", ["flava", "vilt"])
def test_joint_text_feature_depends_on_text(request, name):
    backbone = load_backbone(request.getfixturevalue(name), ("text",))
    backbone.set_max_length(None)
    backbone.eval()
    encoded = Rows(
        backbone.encode({"text": ["a happy dog", "grey sad clouds"]}, ("text",), None)
    )
    with torch.no_grad():
        joint = backbone(encoded.batch([0, 1]), ["joint"])["joint"]
    assert not torch.allclose(joint[0], joint[1], rtol=0, atol=1e-6)


# --- input layouts --------------------------------------------------------------


def test_x_layouts_agree(clip, pair_data):
    X, y = pair_data
    frame = pd.DataFrame(
        {"caption": [t for t, _ in X], "picture": [i for _, i in X], "other": 1},
        index=np.arange(100, 100 + len(X)),
    )
    dicts = [{"caption": t, "picture": i, "other": 1} for t, i in X]
    params = dict(text_column="caption", image_column="picture", epochs=2)

    probas = [
        make(clip, **params).fit(data, y).predict_proba(data)
        for data in (frame, dicts, X)
    ]
    np.testing.assert_array_equal(probas[0], probas[1])
    np.testing.assert_array_equal(probas[0], probas[2])


def test_image_only_array_batch(clip):
    """An (N, H, W, C) array is N images, even when H is 2."""
    images = np.zeros((4, 2, 6, 3), dtype=np.uint8)
    images[:2, ..., 0] = 255
    images[2:, ..., 2] = 255
    y = ["pos", "pos", "neg", "neg"]
    clf = make(clip, modalities=("image",))
    proba = clf.fit(images, y).predict_proba(images)
    np.testing.assert_array_equal(proba, clf.predict_proba(list(images)))
    gray = images[..., 0]
    assert clf.predict_proba(gray).shape == (4, 2)


# --- frozen backbones -----------------------------------------------------------


@pytest.fixture
def spy_setup(monkeypatch):
    """Snapshot the model when training starts."""
    snapshots = []
    original = Trainer.setup

    def setup(self, train):
        snapshots.append(state(self.model))
        return original(self, train)

    monkeypatch.setattr(Trainer, "setup", setup)
    return snapshots


@pytest.mark.parametrize("name", BACKBONES)
def test_freeze_backbone(request, spy_setup, pair_data, name, monkeypatch):
    source = request.getfixturevalue(name)
    X, y = pair_data
    batches = []
    original = Rows.batch

    def batch(self, indices):
        out = original(self, indices)
        batches.append(sorted(out))
        return out

    monkeypatch.setattr(Rows, "batch", batch)
    clf = make(source, freeze_backbone=True, epochs=2).fit(X, y)
    model = clf.model_
    # Training reads the features computed once, and nothing else.
    features = (
        ["features.joint"]
        if name in ("flava", "vilt")
        else [
            "features.image",
            "features.text",
        ]
    )
    training = [keys for keys in batches if "labels" in keys]
    # Two epochs of two batches, after the one-row pass that finds parameters
    # taking no part in the output.
    assert len(training) == 1 + 4
    assert all(keys == [*features, "labels"] for keys in training)

    before = spy_setup[0]
    after = state(model)
    backbone_keys = [k for k in after if k.startswith("backbone.")]
    head_keys = [k for k in after if k.startswith("head.")]
    assert backbone_keys and head_keys
    assert all(torch.equal(before[k], after[k]) for k in backbone_keys)
    assert not all(torch.equal(before[k], after[k]) for k in head_keys)

    pretrained = load_backbone(source, ("text", "image")).state_dict()
    fitted = model.backbone.state_dict()
    assert equal_states(pretrained, fitted)

    for param in model.backbone.parameters():
        assert not param.requires_grad
        assert param.grad is None
    assert all(p.requires_grad for p in model.head.parameters())
    del batches[:]
    check_proba(clf, X)
    assert batches == [features, features]


@pytest.fixture
def spy_pair(monkeypatch):
    """Count the rows each feature of a pair backbone is computed for."""
    counts = {"text": 0, "image": 0}
    original = PairBackbone.forward

    def forward(self, batch, names):
        for name in names:
            key = "input_ids" if name == "text" else "pixel_values"
            counts[name] += len(batch[key])
        return original(self, batch, names)

    monkeypatch.setattr(PairBackbone, "forward", forward)
    return counts


def test_frozen_image_tower_is_cached(pair, pair_data, spy_pair):
    X, y = pair_data
    clf = make(pair, freeze="image", epochs=2, learning_rate=1e-3)
    clf.fit(X, y)
    # Two epochs of text, plus the one-row pass that finds unused parameters;
    # the image features once, from the cache afterwards.
    assert spy_pair == {"text": 2 * len(X) + 1, "image": len(X)}
    assert len(feature_cache) == len(X)

    pretrained = load_backbone(pair, ("text", "image"))
    assert equal_states(
        pretrained.image_encoder.state_dict(),
        clf.model_.backbone.image_encoder.state_dict(),
    )
    assert not equal_states(
        pretrained.text_encoder.state_dict(),
        clf.model_.backbone.text_encoder.state_dict(),
    )

    hits = feature_cache.hits
    proba = clf.predict_proba(X)
    assert spy_pair["image"] == len(X)
    assert feature_cache.hits == hits + len(X)

    # A new fit on the same rows (another grid point, another fold) reuses them.
    again = make(pair, freeze="image", epochs=2, learning_rate=1e-3).fit(X, y)
    assert spy_pair["image"] == len(X)
    np.testing.assert_array_equal(again.predict_proba(X), proba)

    uncached = make(
        pair, freeze="image", epochs=2, learning_rate=1e-3, cache_features=False
    ).fit(X, y)
    assert spy_pair["image"] == 2 * len(X)
    np.testing.assert_array_equal(uncached.predict_proba(X), proba)


def test_freeze_counts_the_stages_of_a_convolutional_encoder(
    bert, pair_data, tmp_path, recwarn
):
    from tests.tiny_models import resnet

    X, y = pair_data
    clf = MultimodalClassifier(
        (bert, resnet(tmp_path / "resnet")), freeze=1, epochs=1, verbose=0
    ).fit(X, y)

    trainable = {
        name: param.requires_grad
        for name, param in clf.model_.backbone.named_parameters()
        if name.startswith("image_encoder.")
    }
    frozen = {name for name, grad in trainable.items() if not grad}
    assert frozen == {
        name
        for name in trainable
        if name.startswith(
            ("image_encoder.embedder.", "image_encoder.encoder.stages.0.")
        )
    }
    assert any(name.startswith("image_encoder.encoder.stages.1.") for name in trainable)
    assert not [w for w in recwarn if "freeze" in str(w.message)]


def test_frozen_batch_norm_keeps_its_running_statistics(bert, pair_data, tmp_path):
    from transformers import ResNetModel

    from tests.tiny_models import resnet

    X, y = pair_data
    folder = resnet(tmp_path / "resnet")
    clf = MultimodalClassifier((bert, folder), freeze=1, epochs=1, verbose=0)
    clf.fit(X, y)

    before = ResNetModel.from_pretrained(folder).state_dict()
    after = {
        name.removeprefix("image_encoder."): value
        for name, value in clf.model_.backbone.state_dict().items()
        if name.startswith("image_encoder.")
    }
    means = [name for name in before if name.endswith("running_mean")]
    kept = [name for name in means if torch.equal(before[name], after[name])]
    assert kept == [
        name for name in means if name.startswith(("embedder.", "encoder.stages.0."))
    ]
    assert len(kept) < len(means)


def test_a_vision_encoder_without_class_token_is_pooled(bert, tmp_path):
    """Swin has no class token: its first state is the top-left patch's alone."""
    from PIL import Image

    from tests.tiny_models import swin

    backbone = load_backbone((bert, swin(tmp_path / "swin")), ("image",)).eval()
    plain = np.full((32, 32, 3), 100, dtype=np.uint8)
    corner = plain.copy()
    corner[16:, 16:] = 250
    images = [Image.fromarray(plain), Image.fromarray(corner)]
    batch = Rows(backbone.encode({"image": images}, ("image",), lambda v, **_: v))
    batch = batch.batch([0, 1])
    with torch.no_grad():
        features = backbone(batch, ["image"])["image"]
        pooled = backbone.image_encoder(**batch).pooler_output
    assert features.shape == (2, backbone.feature_dims["image"])
    torch.testing.assert_close(features, pooled, rtol=0, atol=0)
    assert not torch.allclose(features[0], features[1])


def test_a_dual_encoder_checkpoint_as_the_image_side(bert, clip, pair_data, tmp_path):
    """CLIP as the vision encoder of a pair: its vision tower, without text."""
    from transformers import CLIPVisionModel

    from multimodal_clf import load

    X, y = pair_data
    clf = make((bert, clip)).fit(X, y)
    assert type(clf.model_.backbone.image_encoder) is CLIPVisionModel
    proba = check_proba(clf, X)
    assert not np.array_equal(clf.predict_proba(_swap_images(X)), proba)
    loaded = load(clf.save(tmp_path / "saved"))
    np.testing.assert_allclose(loaded.predict_proba(X), proba, rtol=0, atol=1e-6)


def test_an_image_width_the_config_does_not_state(bert, pair_data, tmp_path):
    from multimodal_clf import load
    from tests.tiny_models import mobilenet

    X, y = pair_data
    clf = make((bert, mobilenet(tmp_path / "mobilenet"))).fit(X, y)
    assert clf.model_.backbone.feature_dims["image"] == 1280
    proba = check_proba(clf, X)
    loaded = load(clf.save(tmp_path / "saved"))
    np.testing.assert_allclose(loaded.predict_proba(X), proba, rtol=0, atol=1e-6)


@pytest.mark.parametrize("name", ["flava", "vilt"])
def test_freeze_image_on_a_joint_model_warns(request, pair_data, name):
    X, y = pair_data
    clf = MultimodalClassifier(
        request.getfixturevalue(name), freeze="image", epochs=1, verbose=0
    )

    with pytest.warns(UserWarning) as caught:
        clf.fit(X, y)

    model = {"flava": "FLAVA", "vilt": "ViLT"}[name]
    expected = (
        f"freeze='image': this {model} model (one joint tower) has no 'image' tower, "
        "so that entry freezes nothing (its towers: joint). Remove it, or use a "
        "number of layers or a parameter prefix."
    )
    assert expected in [str(w.message) for w in caught]

    def trainable(fitted):
        return [p.requires_grad for p in fitted.model_.backbone.parameters()]

    frozen_image = trainable(clf)
    assert frozen_image == trainable(clf.set_params(freeze=None).fit(X, y))
    assert any(frozen_image)


@pytest.mark.parametrize("fusion", sorted(FUSIONS))
def test_head_hidden_size_zero_makes_the_classifier_linear(fusion):
    from multimodal_clf.heads import make_head

    head = make_head(fusion, {"text": 6, "image": 4}, 3, hidden=0)

    # No hidden layer: no activation between linear maps, the last one to 3 classes.
    assert not any(isinstance(m, torch.nn.GELU) for m in head.modules())
    last = [m for m in head.modules() if isinstance(m, torch.nn.Linear)][-1]
    assert last.out_features == 3
    assert head({"text": torch.ones(2, 6), "image": torch.ones(2, 4)}).shape == (2, 3)


def test_late_fusion_averages_the_modalities_a_row_kept():
    from multimodal_clf.heads import LateHead

    torch.manual_seed(0)
    head = LateHead({"text": 6, "image": 4}, 3, hidden=0, dropout=0.0)
    features = {"text": torch.randn(64, 6), "image": torch.randn(64, 4)}
    alone = [
        mlp(head.norms[name](features[name]))
        for name, mlp in zip(head.names, head.mlps)
    ]

    head.train()
    head.modality_dropout = 1.0  # every row loses one modality
    torch.manual_seed(1)
    logits = head(features)
    torch.manual_seed(1)
    _, kept = head.normed_and_kept(features)

    expected = torch.where(kept[0].unsqueeze(1), alone[0], alone[1])
    torch.testing.assert_close(logits, expected)
    assert kept[0].any() and kept[1].any()
    head.eval()
    torch.testing.assert_close(head(features), (alone[0] + alone[1]) / 2)
