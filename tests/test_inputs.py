"""What MultimodalClassifier does with the inputs users hand it: image values of
every kind, long texts, broken files, missing values and relative paths."""

import warnings

import numpy as np
import PIL.Image
import pytest
from PIL import Image

from multimodal_clf import MultimodalClassifier, clear_feature_cache
from multimodal_clf.data import load_image
from multimodal_clf.data._batching import Rows
from multimodal_clf.data._columns import split_columns
from multimodal_clf.engine import Trainer
from multimodal_clf.exceptions import TruncationWarning
from tests.conftest import TEXTS

Y4 = ["pos", "neg", "pos", "neg"]


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


def rows(images, texts=TEXTS):
    return list(zip(texts, images))


def check_proba(proba, n_rows):
    assert proba.dtype == np.float32
    assert proba.shape == (n_rows, 2)
    assert np.isfinite(proba).all()
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-6)


@pytest.fixture(autouse=True)
def empty_cache():
    clear_feature_cache()
    yield
    clear_feature_cache()


def no_training(monkeypatch):
    """Fail the test if a training step runs."""

    def train_step(self, data, group, step):
        pytest.fail("a training step ran although the inputs are invalid")

    monkeypatch.setattr(Trainer, "train_step", train_step)


@pytest.fixture(name="no_training")
def no_training_fixture(monkeypatch):
    no_training(monkeypatch)


@pytest.fixture
def spy_batches(monkeypatch):
    seen = []
    original = Rows.batch

    def batch(self, indices):
        out = original(self, indices)
        seen.append((self, out))
        return out

    monkeypatch.setattr(Rows, "batch", batch)
    return seen


def noise(height, width, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (height, width, 3), dtype=np.uint8)


# --- arrays ---------------------------------------------------------------------


def test_two_d_uint8_arrays(clip):
    gray = [np.full((20, 20), value, dtype=np.uint8) for value in (0, 255, 0, 255)]
    stacked = [np.stack([a] * 3, -1) for a in gray]
    clf = make(clip).fit(rows(gray), Y4)
    proba = clf.predict_proba(rows(gray))
    check_proba(proba, 4)
    np.testing.assert_array_equal(proba, clf.predict_proba(rows(stacked)))
    # Black and white are different inputs.
    assert not np.array_equal(proba[0], proba[1])

    again = make(clip).fit(rows(stacked), Y4)
    np.testing.assert_array_equal(again.predict_proba(rows(stacked)), proba)


@pytest.mark.parametrize("name", ["clip", "pair"])
def test_arrays_are_height_width_channels(request, name):
    backbone = request.getfixturevalue(name)
    arrays = [
        noise(1, 50, seed=1),
        noise(3, 40, seed=2),
        noise(1, 1, seed=3),
        noise(3, 3, seed=4)[..., :1],
    ]
    as_pil = [Image.fromarray(a if a.shape[-1] == 3 else a[..., 0]) for a in arrays]
    assert [im.size for im in as_pil] == [(50, 1), (40, 3), (1, 1), (3, 3)]
    clf = make(backbone).fit(rows(arrays), Y4)
    proba = clf.predict_proba(rows(arrays))
    check_proba(proba, 4)
    np.testing.assert_array_equal(proba, clf.predict_proba(rows(as_pil)))


def test_vilt_small_and_thin_arrays(vilt, monkeypatch):
    arrays = [noise(1, 1, seed=3), noise(3, 3, seed=4)[..., :1], noise(6, 30)]
    arrays.append(noise(3, 2))
    as_pil = [Image.fromarray(a if a.shape[-1] == 3 else a[..., 0]) for a in arrays]
    clf = make(vilt).fit(rows(arrays), Y4)
    proba = clf.predict_proba(rows(arrays))
    check_proba(proba, 4)
    np.testing.assert_array_equal(proba, clf.predict_proba(rows(as_pil)))

    # ViLT resizes the short side up, caps the long side, then rounds both down
    # to a multiple of its patch size: a 1 x 50 strip rounds to zero rows.
    X = rows([arrays[0], arrays[1], noise(1, 50, seed=1), arrays[2]])
    message = (
        r"row 2: the image processor of this backbone \(ViltImageProcessorPil\) "
        r"cannot preprocess this 50 x 1 image"
    )
    with pytest.raises(ValueError, match=message):
        clf.predict_proba(X)
    no_training(monkeypatch)
    with pytest.raises(ValueError, match=message):
        make(vilt).fit(X, Y4)


# --- PIL modes and files --------------------------------------------------------


def _on_white(colour, alpha):
    colour = colour.astype(np.int64)
    alpha = alpha.astype(np.int64)[..., None]
    blended = np.floor((colour * alpha + 255 * (255 - alpha)) / 255 + 0.5)
    return blended.astype(np.uint8)


def mode_images():
    """64 x 64 images in modes L, LA, RGBA and P with a transparent index, and
    the RGB images the documented rules make of them, computed here."""
    rgb = noise(64, 64, seed=5)
    alpha = np.random.default_rng(6).integers(0, 256, (64, 64), dtype=np.uint8)
    alpha[:8] = 0
    alpha[8:16] = 255
    gray = rgb[..., 0]

    la = Image.fromarray(np.dstack([gray, alpha])).convert("LA")
    la = Image.merge("LA", [Image.fromarray(gray), Image.fromarray(alpha)])
    rgba = Image.fromarray(np.dstack([rgb, alpha]), "RGBA")
    palette = Image.fromarray(rgb).quantize(colors=8, dither=Image.Dither.NONE)
    palette.info["transparency"] = 2
    assert palette.mode == "P" and la.mode == "LA"

    index = np.asarray(palette)
    colours = np.array(palette.getpalette()[: 3 * 8], dtype=np.uint8).reshape(8, 3)
    p_rgb = colours[index]
    p_rgb[index == 2] = 255
    assert (index == 2).any() and (index != 2).any()

    images = [Image.fromarray(gray), la, rgba, palette]
    expected = [
        np.stack([gray] * 3, -1),
        np.repeat(_on_white(gray[..., None], alpha), 3, axis=-1),
        _on_white(rgb, alpha),
        p_rgb,
    ]
    return images, [Image.fromarray(a) for a in expected]


def test_modes_match_rgb_composited_on_white(vilt):
    images, expected = mode_images()
    assert [im.mode for im in images] == ["L", "LA", "RGBA", "P"]
    for image, rgb in zip(images, expected):
        np.testing.assert_array_equal(np.asarray(load_image(image)), np.asarray(rgb))
    clf = make(vilt).fit(rows(images), Y4)
    proba = clf.predict_proba(rows(images))
    check_proba(proba, 4)
    np.testing.assert_array_equal(proba, clf.predict_proba(rows(expected)))

    again = make(vilt).fit(rows(expected), Y4)
    np.testing.assert_array_equal(again.predict_proba(rows(expected)), proba)


def test_cmyk_jpeg_path(clip, tmp_path):
    paths = []
    for i, colour in enumerate([(0, 255, 255, 0), (255, 0, 0, 0)] * 2):
        path = tmp_path / f"cmyk{i}.jpg"
        Image.new("CMYK", (30, 20), colour).save(path, "JPEG")
        paths.append(str(path))
    with Image.open(paths[0]) as image:
        assert image.mode == "CMYK"
    clf = make(clip).fit(rows(paths), Y4)
    proba = clf.predict_proba(rows(paths))
    check_proba(proba, 4)
    as_rgb = []
    for path in paths:
        with Image.open(path) as image:
            as_rgb.append(image.convert("RGB"))
    np.testing.assert_array_equal(proba, clf.predict_proba(rows(as_rgb)))
    assert clf.predict(rows(paths)).shape == (4,)


# --- texts ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "words", "limit"), [("clip", 120, 77), ("vilt", 300, 40)]
)
def test_long_text_truncated_once(request, spy_batches, name, words, limit):
    backbone = request.getfixturevalue(name)
    long_text = " ".join(f"w{i % 10}" for i in range(words))
    texts = [long_text, "a dog", "two cats", "a red bird"]
    images = [Image.fromarray(noise(24, 24, seed=i)) for i in range(4)]
    clf = make(backbone)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        clf.fit(list(zip(texts, images)), Y4)
    truncation = [w for w in caught if issubclass(w.category, TruncationWarning)]
    assert len(truncation) == 1
    assert f"1 of 4 texts are longer than {limit} tokens" in str(truncation[0].message)

    lengths = spy_batches[0][0].columns["text"].lengths
    assert lengths.max() == limit == lengths[0]
    assert all(out["input_ids"].shape[1] <= limit for _, out in spy_batches)

    with pytest.warns(TruncationWarning):
        check_proba(clf.predict_proba(list(zip(texts, images))), 4)

    with pytest.raises(
        ValueError, match=f"max_length={limit + 1} is above this backbone's limit"
    ):
        make(backbone, max_length=limit + 1).fit(list(zip(texts, images)), Y4)


def test_max_length_error_names_limit(clip, pair_data):
    X, y = pair_data
    with pytest.raises(ValueError, match=r"max_length=100 .* limit of 77 tokens"):
        make(clip, max_length=100).fit(X, y)


# --- bad images -----------------------------------------------------------------


def test_broken_files_fail_before_training(clip, tmp_path, no_training):
    good = []
    for i in range(4):
        path = tmp_path / f"good{i}.png"
        Image.fromarray(noise(16, 16, seed=i)).save(path)
        good.append(str(path))
    full = tmp_path / "full.jpg"
    Image.fromarray(noise(256, 256, seed=9)).save(full, "JPEG", quality=95)
    cut = tmp_path / "cut.jpg"
    data = full.read_bytes()
    cut.write_bytes(data[: int(len(data) * 0.6)])
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")

    images = [good[0], str(cut), good[1], str(empty), good[2], good[3]]
    X = list(zip(TEXTS[:6], images))
    y = ["pos", "neg", "pos", "neg", "pos", "neg"]
    with pytest.raises(ValueError) as error:
        make(clip).fit(X, y)
    message = str(error.value)
    assert message.startswith("2 rows of column 'image' could not be read as images")
    assert f"  row 1: cannot decode image: {cut}\n" in message
    assert f"  row 3: file is empty (0 bytes): {empty}\n" in message
    assert "row 0" not in message and "row 2" not in message


def test_missing_images_listed_together(clip, tmp_path, no_training):
    X = list(zip(TEXTS[:4], [None, float("nan"), "", "missing.png"]))
    with pytest.raises(ValueError) as error:
        make(clip, image_root=tmp_path).fit(X, Y4)
    assert str(error.value) == (
        "4 rows of column 'image' could not be read as images:\n"
        "  row 0: image is None\n"
        "  row 1: image is NaN\n"
        "  row 2: image is an empty string\n"
        f"  row 3: file not found: {tmp_path / 'missing.png'}\n"
        "Fix or drop these rows before calling fit or predict."
    )


def test_max_image_pixels(clip, tmp_path, no_training):
    limit_before = PIL.Image.MAX_IMAGE_PIXELS
    big = tmp_path / "big.png"
    Image.fromarray(noise(80, 100)).save(big)
    small = [Image.fromarray(noise(10, 10, seed=i)) for i in range(3)]
    X = rows([small[0], str(big), small[1], small[2]])
    with pytest.raises(ValueError) as error:
        make(clip, max_image_pixels=4000).fit(X, Y4)
    message = str(error.value)
    assert (
        "row 1: image is 100 x 80 = 8,000 pixels, over the limit of 4,000 pixels"
    ) in message
    assert "'max_image_pixels'" in message
    assert message.count(str(big)) == 1
    assert PIL.Image.MAX_IMAGE_PIXELS == limit_before


def test_max_image_pixels_in_memory(clip, no_training):
    X = rows([noise(10, 10)] * 3 + [noise(80, 100)])
    with pytest.raises(ValueError, match=r"row 3: image is 100 x 80 = 8,000 pixels"):
        make(clip, max_image_pixels=4000).fit(X, Y4)


# --- paths ----------------------------------------------------------------------


@pytest.fixture
def image_files(tmp_path):
    """Red and blue squares saved under two folders with the same names."""
    names = ["one.png", "two.png", "three.png", "four.png"]
    colours = {"red": (220, 10, 10), "blue": (10, 10, 220)}
    for folder, colour in colours.items():
        (tmp_path / folder).mkdir()
        for i, name in enumerate(names):
            array = np.zeros((16, 16, 3), dtype=np.uint8) + np.uint8(i * 3)
            array[4:12, 4:12] = colour
            Image.fromarray(array).save(tmp_path / folder / name)
    return tmp_path, names


def _open_all(folder, names):
    out = []
    for name in names:
        with Image.open(folder / name) as image:
            out.append(image.convert("RGB"))
    return out


def test_relative_paths_resolve_against_image_root(clip, image_files, monkeypatch):
    root, names = image_files
    red = _open_all(root / "red", names)
    clf = make(clip, image_root=root / "red").fit(rows(names), Y4)
    proba = clf.predict_proba(rows(names))
    np.testing.assert_array_equal(proba, clf.predict_proba(rows(red)))
    absolute = [str(root / "red" / n) for n in names]
    np.testing.assert_array_equal(proba, clf.predict_proba(rows(absolute)))

    clf.set_params(image_root=root / "blue")
    blue = _open_all(root / "blue", names)
    np.testing.assert_array_equal(
        clf.predict_proba(rows(names)), clf.predict_proba(rows(blue))
    )
    assert not np.array_equal(clf.predict_proba(rows(names)), proba)

    # Without image_root, relative paths are read from the working directory.
    monkeypatch.chdir(root / "red")
    clf.set_params(image_root=None)
    np.testing.assert_array_equal(clf.predict_proba(rows(names)), proba)


def test_cached_features_follow_image_root(clip, image_files):
    root, names = image_files
    blue = _open_all(root / "blue", names)
    clf = make(clip, image_root=root / "red", freeze_backbone=True).fit(rows(names), Y4)
    red_proba = clf.predict_proba(rows(names))
    clf.set_params(image_root=root / "blue")
    blue_proba = clf.predict_proba(rows(names))
    np.testing.assert_array_equal(blue_proba, clf.predict_proba(rows(blue)))
    assert not np.array_equal(blue_proba, red_proba)

    # Rows served from the cache are skipped, but bad rows keep their positions.
    with pytest.raises(ValueError) as error:
        clf.predict_proba(rows([names[0], "gone.png", names[2], None]))
    assert str(error.value).splitlines()[1:3] == [
        f"  row 1: file not found: {root / 'blue' / 'gone.png'}",
        "  row 3: image is None",
    ]


def test_image_path_is_opened_not_tokenized(clip, image_files, monkeypatch):
    root, names = image_files
    red = _open_all(root / "red", names)
    tokenized = []

    clf = make(clip, modalities=("image",), image_root=root / "red")
    clf.fit(names, Y4)
    assert clf.tokenizer_ is None  # an image-only CLIP run loads no tokenizer
    np.testing.assert_array_equal(clf.predict_proba(names), clf.predict_proba(red))

    both = make(clip, image_root=root / "red").fit(rows(names, names), Y4)
    tokenizer_call = type(both.tokenizer_).__call__

    def spy(self, text, *args, **kwargs):
        tokenized.extend(text)
        return tokenizer_call(self, text, *args, **kwargs)

    monkeypatch.setattr(type(both.tokenizer_), "__call__", spy)
    proba = both.predict_proba(rows(names, names))
    # The file names were tokenized once, as the text column, and the same
    # strings in the image column were read as images.
    assert tokenized == names
    np.testing.assert_array_equal(proba, both.predict_proba(rows(red, names)))


# --- X layouts ------------------------------------------------------------------


def test_split_columns_layouts():
    image = np.zeros((2, 5, 3), dtype=np.uint8)
    pairs = [("a", image), ("b", image)]
    both = ("text", "image")
    assert split_columns(pairs, modalities=("text",)) == {"text": ["a", "b"]}
    columns = split_columns(pairs, modalities=both)
    assert columns["text"] == ["a", "b"] and len(columns["image"]) == 2
    stack = np.zeros((3, 2, 5, 3), dtype=np.uint8)
    columns = split_columns(stack, modalities=("image",))
    assert [a.shape for a in columns["image"]] == [(2, 5, 3)] * 3
    columns = split_columns(stack[..., 0], modalities=("image",))
    assert [a.shape for a in columns["image"]] == [(2, 5)] * 3
    with pytest.raises(ValueError, match=r"row 1: str is not a \(text, image\) pair"):
        split_columns([("a", image), "b"], modalities=both)
    missing_key = r"no key 'image' \(set by image_column\):\n  row 1: "
    with pytest.raises(ValueError, match=missing_key):
        split_columns([{"text": "a", "image": 1}, {"text": "b"}], modalities=both)


def test_text_estimator_refuses_pairs_and_duplicate_columns(bert):
    import pandas as pd

    from multimodal_clf import TextClassifier

    clf = TextClassifier(bert, epochs=1, verbose=0)
    with pytest.raises(ValueError, match=r"every row of X is a 2-item sequence"):
        clf.fit([("a text", "a.png"), ("b text", "b.png")], ["x", "y"])
    frame = pd.DataFrame([["a", "b"], ["c", "d"]], columns=["text", "text"])
    with pytest.raises(ValueError, match=r"several columns named 'text'"):
        clf.fit(frame, ["x", "y"])


def test_image_encoder_where_text_is_expected(pair, pair_data):
    from multimodal_clf import MultimodalClassifier, TextClassifier

    text, image = pair
    X, y = pair_data
    with pytest.raises(ValueError, match=r"'vit' model with no text vocabulary.*swap"):
        MultimodalClassifier((image, text), epochs=1, verbose=0).fit(X, y)
    with pytest.raises(ValueError, match=r"backbone .* is a 'vit' model with no text"):
        TextClassifier(image, epochs=1, verbose=0).fit([t for t, _ in X], y)
