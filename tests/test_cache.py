"""The shared cache of frozen-backbone features: hits, keys, bounds, results."""

import numpy as np
import pytest
from PIL import Image
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV

import multimodal_clf
from multimodal_clf import MultimodalClassifier, TextClassifier, feature_cache
from multimodal_clf._cache import FeatureCache, row_key
from tests.conftest import LABELS, TEXTS, colour_images

N_ROWS = len(TEXTS)


@pytest.fixture(autouse=True)
def empty_cache():
    multimodal_clf.clear_feature_cache()
    yield
    multimodal_clf.clear_feature_cache()


def frozen_pair(pair, **params):
    options = dict(
        freeze_backbone=True,
        epochs=2,
        batch_size=4,
        random_state=0,
        device="cpu",
        verbose=0,
    )
    options.update(params)
    return MultimodalClassifier(pair, **options)


@pytest.fixture
def image_files(tmp_path):
    """The toy pairs with their images written to PNG files."""
    paths = []
    for i, image in enumerate(colour_images(LABELS)):
        path = tmp_path / f"{i}.png"
        image.save(path)
        paths.append(str(path))
    return list(zip(TEXTS, paths)), list(LABELS)


def test_second_fit_with_the_same_frozen_backbone_hits(pair, pair_data):
    X, y = pair_data
    frozen_pair(pair).fit(X, y)
    # One text and one image feature per row, all computed.
    assert (feature_cache.hits, feature_cache.misses) == (0, 2 * N_ROWS)
    assert len(feature_cache) == 2 * N_ROWS

    frozen_pair(pair, head_hidden_size=8).fit(X, y)
    assert (feature_cache.hits, feature_cache.misses) == (2 * N_ROWS, 2 * N_ROWS)
    assert len(feature_cache) == 2 * N_ROWS


def test_predict_reuses_the_features_of_fit(pair, pair_data):
    X, y = pair_data
    clf = frozen_pair(pair).fit(X, y)
    clf.predict(X[:3])
    assert feature_cache.hits == 2 * 3


def test_clear_feature_cache_forgets_everything(pair, pair_data):
    X, y = pair_data
    frozen_pair(pair).fit(X, y)
    multimodal_clf.clear_feature_cache()
    assert len(feature_cache) == 0
    assert feature_cache.nbytes == 0
    assert (feature_cache.hits, feature_cache.misses) == (0, 0)

    frozen_pair(pair).fit(X, y)
    assert (feature_cache.hits, feature_cache.misses) == (0, 2 * N_ROWS)


def test_cache_features_false_bypasses_the_cache(pair, pair_data):
    X, y = pair_data
    frozen_pair(pair).fit(X, y)
    multimodal_clf.clear_feature_cache()

    clf = frozen_pair(pair, cache_features=False).fit(X, y)
    clf.predict_proba(X)
    assert (feature_cache.hits, feature_cache.misses) == (0, 0)
    assert len(feature_cache) == 0


def test_a_trainable_backbone_uses_no_cache(bert, text_data):
    X, y = text_data
    TextClassifier(bert, epochs=1, random_state=0, device="cpu", verbose=0).fit(X, y)
    assert (feature_cache.hits, feature_cache.misses) == (0, 0)


def test_cache_stays_within_max_bytes():
    cache = FeatureCache(max_bytes=3 * 4 * 10)  # three float32 vectors of 10
    for i in range(5):
        cache.put(f"k{i}", np.full(10, i, dtype=np.float32))
    assert len(cache) == 3
    assert cache.nbytes == 3 * 4 * 10
    # The least recently used entries went first.
    assert cache.get("k0") is None and cache.get("k1") is None
    np.testing.assert_array_equal(cache.get("k2"), np.full(10, 2.0))

    # Using k2 makes k3 the oldest, so k3 is evicted next.
    cache.put("k5", np.zeros(10, dtype=np.float32))
    assert cache.get("k3") is None
    assert cache.get("k2") is not None

    # A vector larger than the whole bound is not stored at all.
    cache.put("huge", np.zeros(100, dtype=np.float32))
    assert cache.get("huge") is None
    assert cache.nbytes <= cache.max_bytes


def test_cache_counts_the_seconds_its_hits_saved():
    cache = FeatureCache()
    cache.put("a", np.zeros(4), seconds=0.25)
    cache.put("b", np.ones(4))  # no cost given: saves nothing
    assert cache.seconds_saved == 0.0
    cache.get("a"), cache.get("a"), cache.get("b"), cache.get("missing")
    assert cache.seconds_saved == 0.5
    cache.put("a", np.zeros(4), seconds=1.0)  # a new cost replaces the old one
    cache.get("a")
    assert cache.seconds_saved == 1.5
    cache.clear()
    assert cache.seconds_saved == 0.0


def test_a_fit_from_the_cache_is_charged_what_computing_cost(pair, pair_data):
    X, y = pair_data
    frozen_pair(pair).fit(X, y)
    assert feature_cache.seconds_saved == 0.0
    costs = [seconds for _, seconds in feature_cache._entries.values()]
    # Every row's share of the decoding, preprocessing and forward pass.
    assert len(costs) == 2 * N_ROWS and min(costs) > 0

    frozen_pair(pair, head_hidden_size=8).fit(X, y)
    assert feature_cache.seconds_saved == pytest.approx(sum(costs))


def test_the_shared_cache_evicts_during_a_fit(pair, pair_data, monkeypatch):
    X, y = pair_data
    width = 32 * 4  # tiny models: 32 float32 per feature
    monkeypatch.setattr(feature_cache, "max_bytes", 5 * width)
    frozen_pair(pair).fit(X, y)
    assert len(feature_cache) == 5
    assert feature_cache.nbytes == 5 * width

    # Evicted rows are computed again, and the result is unchanged.
    again = frozen_pair(pair).fit(X, y)
    assert feature_cache.misses > 2 * N_ROWS
    reference = frozen_pair(pair, cache_features=False).fit(X, y)
    np.testing.assert_allclose(
        again.predict_proba(X), reference.predict_proba(X), atol=1e-6
    )


def test_a_changed_image_file_is_computed_again(pair, image_files):
    X, y = image_files
    first = frozen_pair(pair).fit(X, y)
    before = first.predict_proba(X[:1])
    multimodal_clf.clear_feature_cache()
    frozen_pair(pair).fit(X, y)
    assert feature_cache.misses == 2 * N_ROWS

    # Rewrite image 0 as a different picture: only its image feature is new.
    Image.new("RGB", (24, 24), (0, 255, 0)).save(X[0][1])
    changed = frozen_pair(pair).fit(X, y)
    assert feature_cache.misses == 2 * N_ROWS + 1
    assert feature_cache.hits == 2 * N_ROWS - 1
    reference = frozen_pair(pair, cache_features=False).fit(X, y)
    after = changed.predict_proba(X[:1])
    np.testing.assert_allclose(after, reference.predict_proba(X[:1]), atol=1e-6)
    assert not np.allclose(after, before, atol=1e-4)


def test_row_keys_follow_the_data(tmp_path):
    path = tmp_path / "a.png"
    Image.new("RGB", (4, 4), (255, 0, 0)).save(path)
    key = row_key(str(path), "image")
    assert row_key(path, "image") == key
    assert row_key("a.png", "image", image_root=tmp_path) == key
    Image.new("RGB", (5, 5), (255, 0, 0)).save(path)
    assert row_key(str(path), "image") != key

    assert row_key("a dog", "text") == row_key("a dog", "text")
    assert row_key("a dog", "text") != row_key("a cat", "text")
    red = Image.new("RGB", (4, 4), (255, 0, 0))
    assert row_key(red, "image") == row_key(red.copy(), "image")
    assert row_key(red, "image") != row_key(red.convert("L"), "image")
    assert row_key(np.zeros((2, 2)), "image") != row_key(np.ones((2, 2)), "image")
    assert row_key(str(tmp_path / "missing.png"), "image") is None


@pytest.mark.filterwarnings("ignore::multimodal_clf.exceptions.TruncationWarning")
def test_a_different_max_length_is_a_different_key(pair, pair_data):
    X, y = pair_data
    frozen_pair(pair, max_length=16).fit(X, y)
    frozen_pair(pair, max_length=4).fit(X, y)
    # The image features are reused; the text features are not.
    assert feature_cache.hits == N_ROWS
    assert feature_cache.misses == 3 * N_ROWS
    frozen_pair(pair, max_length=4).fit(X, y)
    assert feature_cache.hits == 3 * N_ROWS


def test_identical_predictions_with_and_without_the_cache(pair, pair_data):
    X, y = pair_data
    frozen_pair(pair).fit(X, y)  # fills the cache
    cached = frozen_pair(pair).fit(X, y)  # served from it
    assert feature_cache.hits >= 2 * N_ROWS
    plain = frozen_pair(pair, cache_features=False).fit(X, y)
    np.testing.assert_allclose(
        cached.predict_proba(X), plain.predict_proba(X), rtol=0, atol=1e-6
    )
    np.testing.assert_array_equal(cached.predict(X), plain.predict(X))


def test_grid_search_scores_are_the_same_with_and_without_the_cache(pair, pair_data):
    X, y = pair_data
    grid = {"head_learning_rate": [1e-3, 1e-2], "head_hidden_size": [0, 8]}
    results = {}
    for cache in (True, False):
        multimodal_clf.clear_feature_cache()
        search = GridSearchCV(frozen_pair(pair, cache_features=cache), grid, cv=2)
        search.fit(X, y)
        results[cache] = search.cv_results_
        if cache:
            # Every row is computed once; 4 candidates x 2 folds + refit reuse it.
            assert feature_cache.misses == 2 * N_ROWS
            assert feature_cache.hits > 10 * N_ROWS
    for key in ("split0_test_score", "split1_test_score", "mean_test_score"):
        np.testing.assert_array_equal(results[True][key], results[False][key])
    assert results[True]["params"] == results[False]["params"]


def test_clone_of_a_cached_estimator_keeps_its_params(pair):
    clf = frozen_pair(pair, cache_features=False)
    assert clone(clf).get_params()["cache_features"] is False


def test_another_precision_is_another_key(pair, pair_data):
    X, y = pair_data
    frozen_pair(pair, precision="bf16").fit(X, y)
    frozen_pair(pair, precision="fp32").fit(X, y)
    assert (feature_cache.hits, feature_cache.misses) == (0, 4 * N_ROWS)


def test_a_stricter_pixel_limit_is_not_bypassed_by_the_cache(pair, pair_data):
    from multimodal_clf import MultimodalClassifier, clear_feature_cache

    clear_feature_cache()
    X, y = pair_data
    params = dict(freeze_backbone=True, epochs=1, verbose=0, random_state=0)
    MultimodalClassifier(pair, **params).fit(X, y)
    strict = MultimodalClassifier(pair, max_image_pixels=10, **params)
    with pytest.raises(ValueError, match=r"over the limit of 10 pixels"):
        strict.fit(X, y)
