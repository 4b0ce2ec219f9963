"""Inputs that try to break the estimators.

Property-based fuzzing of X and y (every call either returns one row of finite
probabilities per input row, or raises a ValueError / TypeError naming the bad
rows), the errors users see for bad labels, bad parameters and unfitted use,
and security: a text is never a path, an image is only ever decoded as an image,
and huge images are refused before decoding.
"""

import builtins
import copy
import io
import os
import re
import struct
import warnings
import zlib

import numpy as np
import pandas as pd
import psutil
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from PIL import Image
from sklearn.exceptions import NotFittedError as SklearnNotFittedError

from multimodal_clf import MultimodalClassifier, TextClassifier
from multimodal_clf.exceptions import NotFittedError
from tests.conftest import LABELS, TEXTS, colour_images

FUZZ = settings(
    deadline=None,
    database=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.filter_too_much,
    ],
)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny models run fastest on one thread, above all on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def fitted_text(bert):
    estimator = TextClassifier(bert, epochs=1, verbose=0, random_state=0)
    return estimator.fit(TEXTS, LABELS)


@pytest.fixture(scope="module")
def fitted_pair(clip):
    estimator = MultimodalClassifier(clip, epochs=1, verbose=0, random_state=0)
    return estimator.fit(list(zip(TEXTS, colour_images(LABELS))), LABELS)


def _png_bytes(size=(6, 5), mode="RGB"):
    buffer = io.BytesIO()
    Image.new(mode, size, 120).save(buffer, "PNG")
    return buffer.getvalue()


def _encoded(image_format, mode="RGB"):
    buffer = io.BytesIO()
    Image.new(mode, (7, 4), 90).save(buffer, image_format)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("inputs")
    paths = {
        "png": root / "ok.png",
        "jpeg": root / "ok.jpg",
        "gif": root / "ok.gif",
        "empty": root / "empty.png",
        "notes": root / "notes.txt",
        "truncated": root / "truncated.png",
        "folder": root / "folder",
        "missing": root / "missing.png",
    }
    paths["png"].write_bytes(_png_bytes())
    paths["jpeg"].write_bytes(_encoded("JPEG"))
    paths["gif"].write_bytes(_encoded("GIF", "P"))
    paths["empty"].write_bytes(b"")
    paths["notes"].write_text("not an image, and never read as text either")
    paths["truncated"].write_bytes(_png_bytes((40, 40))[:60])
    paths["folder"].mkdir()
    return paths


# --- strategies: each draws (value, is_valid) --------------------------------
SURROGATE = st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF, categories=["Cs"])
ANY_PLANE = st.characters(exclude_categories=["Cs"])
CONTROL = st.characters(categories=["Cc", "Cf", "Zs", "Zl", "Zp", "Co", "Mn", "Cn"])
MISSING = st.sampled_from([None, float("nan"), np.nan, pd.NA])


def text_cells(files):
    valid = st.one_of(
        st.text(ANY_PLANE, max_size=30),
        st.text(CONTROL, max_size=20),
        st.integers(0, 3000).map(lambda n: "long words " * n),
        st.sampled_from(
            [
                "",
                "[CLS] [SEP] [PAD] [MASK]",
                str(files["png"]),
                str(files["notes"]),
                "__import__('os').remove('x')",
                "{0.__class__}",
                "%s%n",
            ]
        ),
        st.text(ANY_PLANE, max_size=5).map(np.str_),
    )
    lone_surrogate = st.tuples(
        st.text(ANY_PLANE, max_size=5), SURROGATE, st.text(ANY_PLANE, max_size=5)
    ).map("".join)
    invalid = st.one_of(
        lone_surrogate,
        MISSING,
        st.integers(),
        st.floats(),
        st.binary(max_size=8),
        # A row of exactly 2 items is a (text, image) pair, which is valid X.
        st.lists(st.text(max_size=3), max_size=3).filter(lambda v: len(v) != 2),
        st.dictionaries(st.text(max_size=2), st.integers(), max_size=1),
        st.just(files["png"]),  # a Path is not a text
    )
    return _mostly_valid(valid, invalid)


def _mostly_valid(valid, invalid):
    return st.one_of(
        valid.map(lambda v: (v, True)),
        valid.map(lambda v: (v, True)),
        valid.map(lambda v: (v, True)),
        invalid.map(lambda v: (v, False)),
    )


PIL_MODES = (
    "1 L P RGB RGBA CMYK YCbCr LAB HSV I F I;16 I;16B I;16L I;16N LA La RGBa RGBX PA"
).split()
SIDE = st.integers(1, 12)
SHAPES = st.one_of(
    st.tuples(SIDE, SIDE), st.tuples(SIDE, SIDE, st.sampled_from([1, 3, 4]))
)
LAYOUTS = [
    lambda a: a,
    np.asfortranarray,
    lambda a: a[::-1],
    lambda a: np.repeat(a, 2, axis=1)[:, ::2],
    lambda a: np.asfortranarray(a)[:, ::-1],
]


def _arrays(dtype, elements):
    return hnp.arrays(dtype, SHAPES, elements=elements).flatmap(
        lambda a: st.sampled_from(LAYOUTS).map(lambda layout: layout(a))
    )


VALID_ARRAYS = st.one_of(
    _arrays(np.uint8, None),
    _arrays(np.uint16, None),
    _arrays(np.bool_, None),
    _arrays(np.float16, st.floats(0, 1, width=16)),
    _arrays(np.float32, st.floats(0, 1, width=32)),
    _arrays(np.float64, st.floats(0, 1)),
    _arrays(np.float64, st.floats(0, 1)).map(lambda a: a.astype(np.longdouble)),
    st.sampled_from(
        [np.int8, np.int16, np.int32, np.int64, np.uint32, np.uint64]
    ).flatmap(lambda dtype: _arrays(dtype, st.integers(0, 127))),
)


def _spoil(array, value):
    """A copy of ``array`` with its first pixel set to an out-of-range value."""
    spoilt = array.copy()
    if spoilt.dtype.kind == "i" and value > np.iinfo(spoilt.dtype).max:
        value = -1
    spoilt[(0,) * spoilt.ndim] = value
    return spoilt


INVALID_ARRAYS = st.one_of(
    st.tuples(
        _arrays(np.float32, st.floats(0, 1, width=32)),
        st.sampled_from([-0.5, 1.5, float("nan"), float("inf")]),
    ).map(lambda pair: _spoil(*pair)),
    st.tuples(
        st.sampled_from([np.int8, np.int16, np.int32, np.int64]).flatmap(
            lambda dtype: _arrays(dtype, st.integers(0, 100))
        ),
        st.sampled_from([-1, 256, 1000]),
    ).map(lambda pair: _spoil(*pair)),
    st.tuples(
        st.sampled_from(
            [np.complex64, object, "U3", "S3", "datetime64[s]", "timedelta64[s]"]
        ),
        SHAPES,
    ).map(lambda pair: np.zeros(pair[1], dtype=pair[0])),
    st.sampled_from(
        [(), (5,), (1, 4, 4, 3), (4, 4, 2), (4, 4, 5), (3, 8, 8), (0, 4), (4, 0, 3)]
    ).map(lambda shape: np.zeros(shape, dtype=np.uint8)),
)


def image_cells(files):
    sizes = st.tuples(st.integers(1, 40), st.integers(1, 40))
    encoded = [_png_bytes(), _encoded("JPEG"), _encoded("GIF", "P"), _encoded("BMP")]
    valid = st.one_of(
        st.builds(Image.new, st.sampled_from(PIL_MODES), sizes),
        VALID_ARRAYS,
        st.sampled_from([files["png"], files["jpeg"], files["gif"]]).flatmap(
            lambda path: st.sampled_from([path, str(path)])
        ),
        st.sampled_from(encoded).flatmap(
            lambda data: st.sampled_from([data, bytearray(data), memoryview(data)])
        ),
    )
    bad_paths = [files[k] for k in ("empty", "notes", "truncated", "folder", "missing")]
    invalid = st.one_of(
        st.builds(
            Image.new, st.sampled_from(PIL_MODES), st.sampled_from([(0, 0), (0, 3)])
        ),
        st.sampled_from(
            [
                Image.new("I", (3, 3), -5),
                Image.new("I", (3, 3), 70000),
                Image.new("F", (3, 3), 2.0),
                Image.new("F", (3, 3), float("nan")),
            ]
        ),
        INVALID_ARRAYS,
        st.sampled_from(bad_paths).flatmap(
            lambda path: st.sampled_from([path, str(path)])
        ),
        st.sampled_from(["", "a\x00b.png", "x" * 5000, "\udcff.png"]),
        st.binary(max_size=12).map(lambda junk: b"\x89PNG\r\n\x1a\n" + junk),
        st.sampled_from([b"", encoded[0][:40], bytearray(b"")]),
        MISSING,
        st.integers(),
        st.lists(st.integers(0, 255), max_size=3),
        st.just(torch.zeros(3, 4, 4)),
    )
    return _mostly_valid(valid, invalid)


# --- checking an outcome -----------------------------------------------------
def _named_rows(message):
    return {int(row) for row in re.findall(r"^ +row (\d+):", message, re.M)}


def _check_outcome(call, n_rows, bad_rows, n_classes=2):
    """``call`` returns good probabilities, or refuses exactly some bad rows."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            proba = call()
        except (ValueError, TypeError) as error:
            message = str(error)
            assert bad_rows, f"valid rows were refused: {message}"
            named = _named_rows(message)
            assert named, f"the error names no row: {message}"
            assert named <= bad_rows, f"named {named}, bad {bad_rows}: {message}"
            assert re.search(r"column '(text|image)'|of X", message), message
            return
    assert not bad_rows, f"rows {sorted(bad_rows)} were accepted"
    assert proba.shape == (n_rows, n_classes)
    assert proba.dtype == np.float32
    assert np.isfinite(proba).all()
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5)


def _text_layout(texts, layout):
    if layout == "list":
        return list(texts)
    if layout == "tuple":
        return tuple(texts)
    if layout == "array":
        array = np.empty(len(texts), dtype=object)
        array[:] = texts
        return array
    if layout == "series":
        return pd.Series(texts, dtype=object)
    if layout == "frame":
        return pd.DataFrame({"text": pd.Series(texts, dtype=object)})
    return [{"text": text, "other": 1} for text in texts]


def _pair_layout(texts, images, layout):
    if layout == "tuples":
        return list(zip(texts, images))
    if layout == "lists":
        return [[text, image] for text, image in zip(texts, images)]
    if layout == "frame":
        frame = pd.DataFrame(index=range(len(texts)))
        frame["text"] = pd.Series(texts, dtype=object)
        frame["image"] = pd.Series(images, dtype=object)
        return frame
    return [{"image": image, "text": text} for text, image in zip(texts, images)]


TEXT_LAYOUTS = ["list", "tuple", "array", "series", "frame", "dicts"]
PAIR_LAYOUTS = ["tuples", "lists", "frame", "dicts"]


# --- fuzzing predict_proba ---------------------------------------------------
@settings(FUZZ, max_examples=80)
@given(data=st.data())
def test_fuzz_text_predict_proba(fitted_text, files, data):
    cells = data.draw(st.lists(text_cells(files), min_size=1, max_size=6))
    layout = data.draw(st.sampled_from(TEXT_LAYOUTS))
    texts = [value for value, _ in cells]
    bad = {row for row, (_, ok) in enumerate(cells) if not ok}
    X = _text_layout(texts, layout)
    _check_outcome(lambda: fitted_text.predict_proba(X), len(texts), bad)


@settings(FUZZ, max_examples=80)
@given(data=st.data())
def test_fuzz_multimodal_predict_proba(fitted_pair, files, data):
    n_rows = data.draw(st.integers(1, 5))
    text = data.draw(st.lists(text_cells(files), min_size=n_rows, max_size=n_rows))
    image = data.draw(st.lists(image_cells(files), min_size=n_rows, max_size=n_rows))
    layout = data.draw(st.sampled_from(PAIR_LAYOUTS))
    bad = {row for row in range(n_rows) if not (text[row][1] and image[row][1])}
    X = _pair_layout([v for v, _ in text], [v for v, _ in image], layout)
    _check_outcome(lambda: fitted_pair.predict_proba(X), n_rows, bad)


# --- fuzzing fit -------------------------------------------------------------
@st.composite
def label_columns(draw, n_rows):
    """Draw ``(y, problem)``: problem is None, or what is wrong with y."""
    kind = draw(
        st.sampled_from(
            ["int", "str", "float", "bool", "mixed", "missing", "one", "continuous"]
        )
    )
    valid = {
        "int": st.integers(-3, 3),
        "str": st.sampled_from(["a", "b", "ç", "\U0001f600", "", "1"]),
        "float": st.sampled_from([0.0, 1.0, -2.0, 7.0]),
        "bool": st.booleans(),
    }
    pick = valid.get(kind, st.integers(0, 2))
    values = draw(st.lists(pick, min_size=n_rows, max_size=n_rows))
    first = {"int": 0, "str": "a", "float": 0.0, "bool": False}.get(kind, 0)
    second = {"int": 1, "str": "b", "float": 1.0, "bool": True}.get(kind, 1)
    values[:2] = [first, second]
    problem = None if kind in valid else kind
    if kind == "mixed":
        values[draw(st.integers(0, n_rows - 1))] = "text"
    elif kind == "missing":
        values[draw(st.integers(0, n_rows - 1))] = draw(MISSING)
    elif kind == "one":
        values = [values[0]] * n_rows
    elif kind == "continuous":
        values[draw(st.integers(0, n_rows - 1))] = 0.5
    values = draw(st.permutations(values))
    container = draw(st.sampled_from(["list", "object", "series"]))
    if container == "object":
        y = np.empty(n_rows, dtype=object)
        y[:] = values
    elif container == "series":
        y = pd.Series(values, dtype=object)
    else:
        y = list(values)
    return y, problem


def _check_fit(estimator, X, y, n_rows, bad_rows, problem):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            estimator.fit(X, y)
        except (ValueError, TypeError) as error:
            message = str(error)
            assert bad_rows or problem, f"valid input was refused: {message}"
            named = _named_rows(message)
            if message.startswith("y ") or "label" in message:
                assert problem, f"good labels were refused: {message}"
            else:
                assert named and named <= bad_rows, (bad_rows, message)
            return
        assert not bad_rows and not problem, (bad_rows, problem)
        n_classes = len(estimator.classes_)
        _check_outcome(lambda: estimator.predict_proba(X), n_rows, set(), n_classes)


@settings(FUZZ, max_examples=10)
@given(data=st.data())
def test_fuzz_text_fit(bert, files, data):
    cells = data.draw(st.lists(text_cells(files), min_size=3, max_size=6))
    y, problem = data.draw(label_columns(len(cells)))
    bad = {row for row, (_, ok) in enumerate(cells) if not ok}
    X = _text_layout([v for v, _ in cells], data.draw(st.sampled_from(TEXT_LAYOUTS)))
    estimator = TextClassifier(bert, epochs=1, batch_size=4, verbose=0)
    _check_fit(estimator, X, y, len(cells), bad, problem)


@settings(FUZZ, max_examples=8)
@given(data=st.data())
def test_fuzz_multimodal_fit(clip, files, data):
    n_rows = data.draw(st.integers(3, 5))
    text = data.draw(st.lists(text_cells(files), min_size=n_rows, max_size=n_rows))
    image = data.draw(st.lists(image_cells(files), min_size=n_rows, max_size=n_rows))
    y, problem = data.draw(label_columns(n_rows))
    bad = {row for row in range(n_rows) if not (text[row][1] and image[row][1])}
    layout = data.draw(st.sampled_from(PAIR_LAYOUTS))
    X = _pair_layout([v for v, _ in text], [v for v, _ in image], layout)
    estimator = MultimodalClassifier(clip, epochs=1, batch_size=4, verbose=0)
    _check_fit(estimator, X, y, n_rows, bad, problem)


# --- labels ------------------------------------------------------------------
@pytest.mark.parametrize(
    "y, message",
    [
        (
            [1, "a", 1, "a", 1, "a", 1, "a"],
            r"y mixes label types \['int', 'str'\]:\n  row 0: int 1\n  row 1: str "
            r"'a'\nLabels must be all strings or all numbers\. Convert them",
        ),
        (
            ["a", None, "b", "a", "b", "a", "b", float("nan")],
            r"y holds 2 missing labels:\n  row 1: missing label \(None or NaN\)\n"
            r"  row 7: missing label \(None or NaN\)\nDrop those rows or fill",
        ),
        (
            np.array([0.0, 1.0, np.nan, 1.0, 0.0, 1.0, np.inf, 1.0]),
            r"y holds 2 NaN or infinite labels:\n  row 2: nan\n  row 6: inf\nDrop",
        ),
        (
            [0.5, 1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 1.0],
            r"Unknown label type: continuous\. .*\n  row 0: 0\.5\n.*bin the values",
        ),
        (["a"] * 8, r"y holds 1 class \(\['a'\]\); a classifier needs at least 2"),
        ([b"a", b"b"] * 4, r"y holds labels of type bytes:\n  row 0: bytes b'a'\n"),
        ([1j, 2j] * 4, "Complex data not supported"),
        (None, r"fit requires y to be passed, but the target y is None\. Pass"),
        (["a", "b"] * 3, r"X has 8 rows, y has 6 labels\. Pass one label per row"),
        (np.zeros((8, 2)), r"y must be 1-d .*got shape \(8, 2\)\. Multi-output"),
    ],
    ids=[
        "mixed",
        "missing",
        "nan",
        "continuous",
        "one-class",
        "bytes",
        "complex",
        "none",
        "length",
        "2d",
    ],
)
def test_bad_labels_get_clear_errors(bert, text_data, y, message):
    X, _ = text_data
    estimator = TextClassifier(bert, epochs=1, verbose=0)
    with pytest.raises(ValueError, match=message):
        estimator.fit(X, y)


def test_column_vector_y_warns_and_fits(bert, text_data):
    from sklearn.exceptions import DataConversionWarning

    X, y = text_data
    with pytest.warns(DataConversionWarning, match="A column-vector y was passed"):
        TextClassifier(bert, epochs=1, verbose=0).fit(X, np.array(y)[:, None])


def test_unseen_labels_at_score(fitted_text):
    with pytest.raises(
        ValueError,
        match=r"y holds 2 labels not seen during fit:\n  row 1: 'neutral'\n"
        r"  row 2: None\nThe classifier knows \['neg', 'pos'\]; drop those rows",
    ):
        fitted_text.score(["a", "b", "c"], ["pos", "neutral", None])
    with pytest.raises(ValueError, match=r"row 0: 1\n.*knows \['neg', 'pos'\]"):
        fitted_text.score(["a"], [1])
    with pytest.raises(ValueError, match="X has 2 rows, y has 1 labels"):
        fitted_text.score(["a", "b"], ["pos"])
    assert fitted_text.score(["a", "b"], ["pos", "neg"]) in (0.0, 0.5, 1.0)


@pytest.mark.parametrize("method", ["predict", "predict_proba", "predict_log_proba"])
def test_unfitted_estimators_raise_not_fitted(bert, clip, method):
    for estimator in (TextClassifier(bert), MultimodalClassifier(clip)):
        with pytest.raises(SklearnNotFittedError, match="is not fitted yet") as error:
            getattr(estimator, method)(["a"])
        assert isinstance(error.value, NotFittedError)
        assert "Call fit(X, y) before" in str(error.value)
    with pytest.raises(SklearnNotFittedError, match="TextClassifier instance"):
        TextClassifier(bert).score(["a"], ["b"])


# --- the errors users see: what is wrong, where, and how to fix it ------------
def test_parameter_errors_name_parameter_and_fix(bert, text_data):
    estimator = TextClassifier(bert, epochs=0, precision="bf61", batch_size=2.5)
    with pytest.raises(ValueError) as error:
        estimator.fit(*text_data)
    assert str(error.value) == (
        "Invalid parameters for TextClassifier:\n"
        "  - batch_size: allowed an int >= 1; got 2.5.\n"
        "  - epochs: allowed an int >= 1; got 0.\n"
        "  - precision: allowed one of 'auto', 'fp32', 'bf16', 'fp16'; got 'bf61'. "
        "Did you mean 'bf16'?\n"
        "Set them with set_params(...) or in the constructor."
    )


CONFIGURATION_ERRORS = [
    (
        "text",
        {"max_length": 600},
        r"max_length=600 is above this backbone's limit of 512 tokens \(read from "
        r"its config\)\. Pass max_length=512 or less, or None for the limit\.",
    ),
    (
        "text",
        {"freeze": "encoder.nope"},
        r"freeze='encoder\.nope': 'encoder\.nope' names no parameter of this "
        r"backbone\. Use a tower \(text\), a number of layers, or a prefix",
    ),
    (
        "text",
        {"freeze": ["encoder.nope", "encoder.embeddings", "bogus"]},
        r"freeze=\['encoder\.nope', 'encoder\.embeddings', 'bogus'\]: 'encoder\.nope', "
        r"'bogus' name no parameter of this backbone\.",
    ),
    (
        "text",
        {"backbone": "/no/such/model"},
        r"backbone folder '/no/such/model' does not exist\. Check the path, or pass",
    ),
    (
        "text",
        {"backbone": 3},
        r"backbone must be a Hugging Face model id or a local folder .*got int 3",
    ),
    (
        "text",
        {"device": "gpu"},
        r"- device: allowed 'auto', 'cpu', 'cuda', 'cuda:<index>' or 'mps'; got "
        r"'gpu'\.\nSet them with set_params",
    ),
    (
        "text",
        {"precision": "fp16", "device": "cpu"},
        r"precision='fp16' needs a CUDA GPU, but the device is cpu\. Use "
        r"precision='bf16'",
    ),
    (
        "pair",
        {"image_root": "/no/such/folder"},
        r"The parameter 'image_root' must be an existing directory, got "
        r"/no/such/folder\. .*pass the folder that holds the images",
    ),
    (
        "pair",
        {"fusion": "concatt", "modalities": ("audio",)},
        r"Invalid parameters for MultimodalClassifier:\n  - fusion: allowed one of "
        r"'concat', 'late', 'product'; got 'concatt'\. Did you mean 'concat'\?\n"
        r"  - modalities: allowed .*; got \('audio',\)\.\nSet them with",
    ),
    (
        "pair",
        {"max_image_pixels": 0},
        r"- max_image_pixels: allowed an int >= 1; got 0\.",
    ),
    (
        "text-as-pair",
        {},
        r"is a 'bert' model, which reads text only; modalities=\('text', 'image'\) "
        r"needs images\. Pass a joint checkpoint \(clip, flava, vilt\) or a",
    ),
]


@pytest.mark.parametrize(
    "kind, params, message",
    CONFIGURATION_ERRORS,
    ids=[
        "max_length",
        "freeze",
        "freeze-several",
        "no-folder",
        "backbone-type",
        "device",
        "fp16-cpu",
        "image_root",
        "fusion",
        "max_image_pixels",
        "text-only-backbone",
    ],
)
def test_configuration_errors_name_parameter_and_fix(
    bert, clip, text_data, pair_data, kind, params, message
):
    if kind == "text":
        estimator, (X, y) = TextClassifier(bert), text_data
    else:
        backbone = bert if kind == "text-as-pair" else clip
        estimator, (X, y) = MultimodalClassifier(backbone), pair_data
    estimator.set_params(epochs=1, verbose=0, **params)
    with pytest.raises((ValueError, TypeError), match=message):
        estimator.fit(X, y)


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA GPU is visible")
def test_cuda_without_a_gpu_says_what_to_use(bert, text_data):
    estimator = TextClassifier(bert, device="cuda", verbose=0)
    with pytest.raises(
        ValueError,
        match=r"device='cuda' but no CUDA GPU is visible "
        r"to PyTorch\. Use device='cpu' or 'auto'\.",
    ):
        estimator.fit(*text_data)


@pytest.mark.parametrize(
    "sample_weight, error, message",
    [
        ([1.0] * 5, ValueError, r"sample_weight has shape \(5,\); it needs one"),
        (
            [1, -1, 1, np.nan, 1, 1, 1, 1],
            ValueError,
            r"finite and >= 0; 2 rows are not:\n  row 1: -1\.0\n  row 3: nan\nFix",
        ),
        (["a"] * 8, TypeError, r"sample_weight must hold numbers.*Pass a list"),
        ([0.0] * 8, ValueError, r"Every row weight is zero \(sample_weight\)"),
    ],
)
def test_sample_weight_errors(bert, text_data, sample_weight, error, message):
    estimator = TextClassifier(bert, epochs=1, verbose=0)
    with pytest.raises(error, match=message):
        estimator.fit(*text_data, sample_weight=sample_weight)


@pytest.mark.parametrize(
    "class_weight, message",
    [
        ({"pos": -1}, r"class_weight\['pos'\] is -1; class weights must be finite"),
        ({"pos": "x"}, r"class_weight\['pos'\] is 'x'.*Fix the dict"),
        (
            {"maybe": 2},
            r"class_weight names labels that are not in y: \['maybe'\]\. The labels "
            r"are \['neg', 'pos'\]; use them as the keys of class_weight",
        ),
        (
            {"pos": 0, "neg": 0},
            r"Every row weight is zero \(class_weight\).*Give at least one row",
        ),
    ],
)
def test_class_weight_errors(bert, text_data, class_weight, message):
    estimator = TextClassifier(bert, epochs=1, verbose=0, class_weight=class_weight)
    with pytest.raises(ValueError, match=message):
        estimator.fit(*text_data)


@pytest.mark.parametrize(
    "X, error, message",
    [
        ([], ValueError, r"X has 0 rows; fit and predict need at least one row"),
        ("a text", TypeError, r"X is a single string; pass a list of texts"),
        (None, TypeError, r"X must be a list, array, pandas Series or DataFrame"),
        ({"text": ["a"]}, TypeError, r"X is a dict; .*pandas\.DataFrame\(X\)"),
        ({"a", "b"}, TypeError, r"X is a set, which has no order.*pass a list"),
        (
            pd.DataFrame({"body": ["a"]}),
            ValueError,
            r"X has no column 'text' \(set by text_column\); its columns are "
            r"\['body'\]\. Pass text_column=",
        ),
        (
            [{"text": "a"}, {"body": "b"}],
            ValueError,
            r"1 rows of X have no key 'text' \(set by text_column\):\n  row 1: no key"
            r" 'text'\nAdd the key to every row or pass text_column=<key>",
        ),
        (
            np.array([["a"], ["b"]]),
            ValueError,
            r"X is a 2-d array of shape \(2, 1\); pass a 1-d list of texts",
        ),
        (
            ["fine", 3, None],
            ValueError,
            r"2 entries of column 'text' are not strings:\n  row 1: int 3\n  row 2: "
            r"missing value \(None or NaN\)\nEvery text must be a str: fill missing",
        ),
        (
            ["fine", "bad \ud800"],
            ValueError,
            r"column 'text' are not valid Unicode:\n  row 1: lone surrogate U\+D800 "
            r"at character 4\n.*errors='replace'",
        ),
    ],
    ids=[
        "empty",
        "string",
        "none",
        "dict",
        "set",
        "no-column",
        "no-key",
        "2d",
        "not-str",
        "surrogate",
    ],
)
def test_text_input_errors(fitted_text, X, error, message):
    with pytest.raises(error, match=message):
        fitted_text.predict_proba(X)


def test_sparse_input_is_refused_with_a_clear_error(fitted_text):
    from scipy import sparse

    with pytest.raises(TypeError, match=r"X is a sparse csr_matrix; sparse input is"):
        fitted_text.predict(sparse.csr_matrix(np.eye(3)))


def test_a_single_image_is_not_x(fitted_pair):
    with pytest.raises(TypeError, match=r"X is a single image; pass a list of images"):
        fitted_pair.predict_proba(Image.new("RGB", (4, 2)))


def test_image_errors_name_row_column_and_fix(fitted_pair, files):
    X = [
        ("ok", files["png"]),
        ("gone", files["missing"]),
        ("ok", np.zeros((4, 4, 3), np.uint8)),
        ("chw", np.zeros((3, 8, 8), np.uint8)),
        ("none", None),
        ("text file", str(files["notes"])),
    ]
    with pytest.raises(ValueError) as error:
        fitted_pair.predict_proba(X)
    message = str(error.value)
    assert message.splitlines()[0] == (
        "4 rows of column 'image' could not be read as images:"
    )
    assert f"  row 1: file not found: {files['missing']}" in message
    assert "  row 3: array of shape (3, 8, 8) is not an image" in message
    assert "array.transpose(1, 2, 0)" in message
    assert "  row 4: image is None" in message
    assert f"  row 5: cannot decode image: {files['notes']}" in message
    assert message.endswith("Fix or drop these rows before calling fit or predict.")


def test_pair_structure_errors(fitted_pair):
    with pytest.raises(
        ValueError,
        match=r"1 rows of X are neither dicts nor \(text, image\) pairs:\n  row 1: "
        r"tuple is not a \(text, image\) pair\nPass a DataFrame with columns 'text' "
        r"and 'image'",
    ):
        fitted_pair.predict_proba([("a", np.zeros((2, 2))), ("b",)])


# --- security ----------------------------------------------------------------
@pytest.fixture
def opened(monkeypatch):
    """Record every file opened through open, io.open, os.open or PIL."""
    calls = []
    for owner, name in ((builtins, "open"), (io, "open"), (os, "open")):
        original = getattr(owner, name)

        def record(file, *args, _original=original, **kwargs):
            is_path = isinstance(file, (str, os.PathLike))
            calls.append(os.fspath(file) if is_path else file)
            return _original(file, *args, **kwargs)

        monkeypatch.setattr(owner, name, record)
    original_image_open = Image.open

    def image_open(fp, *args, **kwargs):
        name = fp if isinstance(fp, (str, os.PathLike)) else getattr(fp, "name", fp)
        calls.append(("PIL", os.fspath(name) if isinstance(name, str) else name))
        return original_image_open(fp, *args, **kwargs)

    monkeypatch.setattr(Image, "open", image_open)
    return calls


@pytest.mark.filterwarnings("ignore::multimodal_clf.exceptions.TruncationWarning")
def test_a_text_that_names_a_file_is_only_tokenized(
    fitted_text, fitted_pair, files, opened, tmp_path
):
    path = str(files["png"])
    marker = tmp_path / "marker"
    code = f"__import__('pathlib').Path({str(marker)!r}).touch()"
    image = np.zeros((6, 6, 3), np.uint8)
    texts = [path, str(files["notes"]), code, "/etc/passwd"]
    text_proba = fitted_text.predict_proba(texts)
    pair_proba = fitted_pair.predict_proba([(text, image) for text in texts])

    touched = [c for c in opened if path in str(c) or str(files["notes"]) in str(c)]
    assert touched == []
    assert not any(isinstance(c, tuple) and c[0] == "PIL" for c in opened)
    assert not marker.exists()

    # The file's content plays no part: the same text without the file predicts
    # the same probabilities.
    renamed = files["png"].with_suffix(".moved")
    files["png"].rename(renamed)
    try:
        np.testing.assert_array_equal(fitted_text.predict_proba(texts), text_proba)
        again = fitted_pair.predict_proba([(text, image) for text in texts])
        np.testing.assert_array_equal(again, pair_proba)
    finally:
        renamed.rename(files["png"])


def test_an_image_path_is_only_decoded_as_an_image(fitted_pair, files, opened):
    with pytest.raises(ValueError, match=r"row 0: cannot decode image: .*notes\.txt"):
        fitted_pair.predict_proba([("a", str(files["notes"]))])
    reads = [c for c in opened if str(files["notes"]) in str(c)]
    # Opened once in binary mode and handed to PIL, which refused it.
    assert reads[0] == str(files["notes"])
    assert reads[1] == ("PIL", str(files["notes"]))


def _png_header_only(width, height):
    """A PNG whose header claims width x height pixels, with no pixel data."""

    def chunk(kind, data):
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b"")


def _png_of_zeros(width, height):
    """A real grayscale PNG of width x height black pixels, a few kB on disk."""

    def chunk(kind, data):
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    pixels = zlib.compress(b"\x00" * ((width + 1) * height), 9)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", pixels)
        + chunk(b"IEND", b"")
    )


def test_large_images_are_refused_before_decoding(fitted_pair, tmp_path):
    big = tmp_path / "big.png"
    big.write_bytes(_png_of_zeros(6000, 5000))  # 30 M pixels: 90 MB as RGB
    limited = copy.copy(fitted_pair).set_params(max_image_pixels=1_000_000)
    before = psutil.Process().memory_info().rss
    with pytest.raises(ValueError) as error:
        limited.predict_proba([("a", str(big)), ("b", big.read_bytes())])
    growth = psutil.Process().memory_info().rss - before
    message = str(error.value)
    assert (
        f"  row 0: image is 6000 x 5000 = 30,000,000 pixels, over the limit of "
        f"1,000,000 pixels (raise it with the parameter 'max_image_pixels' if the "
        f"image is trusted): {big}"
    ) in message
    assert "  row 1: image is 6000 x 5000 = 30,000,000 pixels" in message
    assert growth < 30 * 2**20

    # The default limit refuses a header that claims 100 M pixels ...
    with pytest.raises(ValueError, match=r"row 0: image is 10000 x 10000 = 100,0"):
        fitted_pair.predict_proba([("a", _png_header_only(10_000, 10_000))])
    # ... and an array is checked before it is converted.
    with pytest.raises(ValueError, match=r"row 0: image is 2000 x 1000 .*over the"):
        limited.predict_proba([("a", np.zeros((1000, 2000), dtype=np.uint8))])


def test_pillow_bomb_limit_is_reported_per_row(fitted_pair):
    bomb = _png_header_only(20_000, 20_000)  # over Pillow's own 2 x 89 M limit
    unlimited = copy.copy(fitted_pair).set_params(max_image_pixels=10**12)
    with pytest.raises(ValueError, match=r"row 0: Pillow refused the image as a "):
        unlimited.predict_proba([("a", bomb)])
