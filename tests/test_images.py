"""Tests for image decoding and conversion (multimodal_clf.data._images)."""

import io
import os
import re
import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFile

from multimodal_clf.data import (
    DEFAULT_MAX_IMAGE_PIXELS,
    check_image_value,
    load_image,
    load_images,
    to_rgb,
)
from multimodal_clf.exceptions import ImageLoadError


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def pixels(image):
    assert image.mode == "RGB"
    return np.asarray(image)


def over_white(colour, alpha):
    """Composite on white, computed in floating point as documented."""
    colour = colour.astype(np.float64)
    alpha = alpha.astype(np.float64)[..., None] / 255.0
    return np.rint(colour * alpha + 255.0 * (1.0 - alpha)).astype(np.uint8)


def gray_to_rgb(gray):
    return np.stack([gray] * 3, axis=-1)


def save(image, path, **kwargs):
    image.save(path, **kwargs)
    return path


def png_header_only(path, width, height):
    """Write a 1 x 1 PNG whose header claims `width` x `height` pixels."""
    buffer = io.BytesIO()
    Image.new("L", (1, 1)).save(buffer, format="PNG")
    data = bytearray(buffer.getvalue())
    # IHDR data starts after the 8-byte signature, length and chunk type.
    struct.pack_into(">II", data, 16, width, height)
    crc = zlib.crc32(bytes(data[12:29]))
    struct.pack_into(">I", data, 29, crc)
    path.write_bytes(bytes(data))
    return path


# ---------------------------------------------------------------- arrays


@pytest.mark.parametrize("fill", [0, 255])
def test_constant_gray_array_becomes_gray_rgb(fill):
    array = np.full((4, 5), fill, dtype=np.uint8)

    result = load_image(array)

    np.testing.assert_array_equal(pixels(result), np.stack([array] * 3, -1))


def test_gray_gradient_array_keeps_every_value():
    array = np.arange(256, dtype=np.uint8).reshape(16, 16)

    np.testing.assert_array_equal(pixels(load_image(array)), gray_to_rgb(array))


def test_uint16_array_is_rescaled_not_clipped():
    array = np.array([[0, 257, 32768, 65535]], dtype=np.uint16)
    gradient = np.linspace(0, 65535, 300).astype(np.uint16).reshape(3, 100)

    result = pixels(load_image(array))
    gradient_result = pixels(load_image(gradient))

    np.testing.assert_array_equal(result[0, :, 0], [0, 1, 128, 255])
    expected = np.rint(gradient.astype(np.float64) * 255 / 65535).astype(np.uint8)
    np.testing.assert_array_equal(gradient_result, gray_to_rgb(expected))


def test_bool_array_maps_to_0_and_255():
    array = np.array([[True, False], [False, True]])

    expected = np.array([[255, 0], [0, 255]], dtype=np.uint8)
    np.testing.assert_array_equal(pixels(load_image(array)), gray_to_rgb(expected))


def test_float_array_in_unit_range_is_scaled_and_rounded():
    array = np.array([[0.0, 0.5, 1.0, 0.2]], dtype=np.float32)

    result = pixels(load_image(array))

    np.testing.assert_array_equal(result[0, :, 0], [0, 128, 255, 51])


def test_small_int_array_in_byte_range_is_cast():
    array = np.array([[0, 7, 255]], dtype=np.int64)

    np.testing.assert_array_equal(pixels(load_image(array))[0, :, 1], [0, 7, 255])


@pytest.mark.parametrize(
    ("shape", "size"),
    [((1, 50, 3), (50, 1)), ((3, 40, 3), (40, 3)), ((1, 1, 3), (1, 1))],
)
def test_three_dimensional_arrays_are_height_width_channels(rng, shape, size):
    array = rng.integers(0, 256, size=shape, dtype=np.uint8)

    result = load_image(array)

    assert result.size == size
    np.testing.assert_array_equal(pixels(result), array)


def test_single_channel_array_is_gray():
    array = np.arange(12, dtype=np.uint8).reshape(3, 4, 1)

    np.testing.assert_array_equal(
        pixels(load_image(array)), gray_to_rgb(array[:, :, 0])
    )


def test_rgba_array_is_composited_on_white(rng):
    array = rng.integers(0, 256, size=(6, 7, 4), dtype=np.uint8)

    expected = over_white(array[..., :3], array[..., 3])
    np.testing.assert_array_equal(pixels(load_image(array)), expected)


def test_array_is_copied_not_shared():
    array = np.zeros((2, 2, 3), dtype=np.uint8)

    result = load_image(array)
    array[:] = 9

    assert result.getpixel((0, 0)) == (0, 0, 0)


@pytest.mark.parametrize(
    ("shape", "match"),
    [
        ((4,), r"array of shape \(4,\) is not an image; expected \(H, W\)"),
        ((2, 3, 5), r"shape \(2, 3, 5\).*C = 1 \(gray\), 3 \(RGB\) or 4 \(RGBA\)"),
        ((2, 2, 2, 3), r"array of shape \(2, 2, 2, 3\) is not an image"),
        ((3, 8, 8), r"shape \(3, 8, 8\).*channels-first.*transpose\(1, 2, 0\)"),
        ((0, 5), r"array of shape \(0, 5\) has no pixels"),
    ],
)
def test_bad_array_shape_is_named(shape, match):
    with pytest.raises(ImageLoadError, match=match):
        load_image(np.zeros(shape, dtype=np.uint8))


@pytest.mark.parametrize(
    ("array", "match"),
    [
        (np.zeros((2, 2), dtype=np.complex64), r"array of dtype complex64"),
        (np.full((2, 2), "a"), r"array of dtype <U1 is not an image"),
        (np.array([[-0.5, 2.0]]), r"float64 has values from -0.5 to 2; .*\[0, 1\]"),
        (np.array([[0.1, np.nan]]), r"float64 contains NaN or infinite values"),
        (np.array([[0.1, np.inf]], dtype=np.float32), r"float32 contains NaN"),
        (
            np.array([[-1, 300]], dtype=np.int16),
            r"int16 has values from -1 to 300; .*0\.\.255",
        ),
        (np.array([[70000]], dtype=np.uint32), r"uint32 has values from 70000"),
    ],
)
def test_bad_array_dtype_or_values_are_named(array, match):
    with pytest.raises(ImageLoadError, match=match):
        load_image(array)


# ---------------------------------------------------------- PIL modes


def test_mode_l_la_rgba_and_p_with_transparency_match_white_composite(rng, tmp_path):
    gray = rng.integers(0, 256, size=(64, 64), dtype=np.uint8)
    alpha = rng.integers(0, 256, size=(64, 64), dtype=np.uint8)
    colour = rng.integers(0, 256, size=(64, 64, 3), dtype=np.uint8)
    palette = rng.integers(0, 256, size=(256, 3), dtype=np.uint8)
    palette_alpha = rng.integers(0, 256, size=256, dtype=np.uint8)
    indices = rng.integers(0, 256, size=(64, 64), dtype=np.uint8)

    image_l = Image.fromarray(gray)
    image_la = Image.fromarray(np.dstack([gray, alpha]))
    image_rgba = Image.fromarray(np.dstack([colour, alpha]))
    image_p = Image.frombytes("P", (64, 64), indices.tobytes())
    image_p.putpalette(palette.tobytes())
    image_p.info["transparency"] = palette_alpha.tobytes()

    expected = {
        "L": gray_to_rgb(gray),
        "LA": over_white(gray_to_rgb(gray), alpha),
        "RGBA": over_white(colour, alpha),
        "P": over_white(palette[indices], palette_alpha[indices]),
    }
    for image in (image_l, image_la, image_rgba, image_p):
        assert image.mode in expected
        want = expected[image.mode]

        np.testing.assert_array_equal(pixels(to_rgb(image)), want)
        np.testing.assert_array_equal(pixels(load_image(image)), want)

        # The same rules hold after a lossless round trip through a file.
        path = save(image, tmp_path / f"{image.mode}.png")
        np.testing.assert_array_equal(pixels(load_image(path)), want)


def test_p_with_single_transparent_index_becomes_white():
    image = Image.frombytes("P", (3, 1), bytes([0, 1, 2]))
    image.putpalette([10, 20, 30, 40, 50, 60, 70, 80, 90])
    image.info["transparency"] = 1

    result = pixels(to_rgb(image))

    np.testing.assert_array_equal(
        result[0], [[10, 20, 30], [255, 255, 255], [70, 80, 90]]
    )


def test_p_without_transparency_uses_palette_colours():
    image = Image.frombytes("P", (2, 1), bytes([1, 0]))
    image.putpalette([10, 20, 30, 40, 50, 60])

    np.testing.assert_array_equal(
        pixels(to_rgb(image))[0], [[40, 50, 60], [10, 20, 30]]
    )


def test_colour_key_transparency_in_l_and_rgb_becomes_white():
    gray = Image.frombytes("L", (2, 1), bytes([7, 8]))
    gray.info["transparency"] = 7
    rgb = Image.frombytes("RGB", (2, 1), bytes([1, 2, 3, 4, 5, 6]))
    rgb.info["transparency"] = (4, 5, 6)

    np.testing.assert_array_equal(pixels(to_rgb(gray))[0], [[255] * 3, [8] * 3])
    np.testing.assert_array_equal(pixels(to_rgb(rgb))[0], [[1, 2, 3], [255] * 3])


def test_premultiplied_modes_are_composited_on_white(rng):
    colour = rng.integers(0, 256, size=(8, 8, 3), dtype=np.uint8)
    alpha = rng.integers(0, 256, size=(8, 8), dtype=np.uint8)
    straight = Image.fromarray(np.dstack([colour, alpha]))

    result = pixels(to_rgb(straight.convert("RGBa")))

    # Premultiplying rounds the colour, so allow one level of difference.
    difference = np.abs(result.astype(int) - over_white(colour, alpha).astype(int))
    assert difference.max() <= 1


def test_mode_1_becomes_black_and_white():
    image = Image.frombytes("L", (2, 1), bytes([0, 255])).convert("1")

    np.testing.assert_array_equal(pixels(to_rgb(image))[0], [[0] * 3, [255] * 3])


@pytest.mark.parametrize("mode", ["I;16", "I;16B", "I;16L", "I"])
def test_sixteen_bit_images_are_rescaled_not_clipped(mode):
    values = np.array([[0, 257, 32768, 65535]])
    if mode == "I":
        image = Image.fromarray(values.astype(np.int32))
    else:
        dtype = ">u2" if mode == "I;16B" else "<u2"
        image = Image.frombytes(mode, (4, 1), values.astype(dtype).tobytes())
    assert image.mode == mode

    result = pixels(to_rgb(image))

    np.testing.assert_array_equal(result[0], gray_to_rgb(np.array([0, 1, 128, 255])))


def test_sixteen_bit_png_file_is_rescaled(tmp_path):
    values = np.array([[0, 32768, 65535]], dtype=np.uint16)
    path = save(Image.fromarray(values), tmp_path / "deep.png")

    np.testing.assert_array_equal(pixels(load_image(path))[0, :, 0], [0, 128, 255])


def test_mode_i_outside_sixteen_bits_is_an_error():
    image = Image.fromarray(np.array([[-5, 70000]], dtype=np.int32))

    with pytest.raises(ImageLoadError, match=r"mode 'I'.*from -5 to 70000.*0\.\.65535"):
        to_rgb(image)


def test_mode_f_in_unit_range_is_scaled_and_out_of_range_refused():
    unit = Image.fromarray(np.array([[0.0, 0.5, 1.0]], dtype=np.float32))
    wide = Image.fromarray(np.array([[0.0, 4.0]], dtype=np.float32))

    np.testing.assert_array_equal(pixels(to_rgb(unit))[0, :, 2], [0, 128, 255])
    with pytest.raises(ImageLoadError, match=r"mode 'F' image has values from 0 to 4"):
        to_rgb(wide)


@pytest.mark.parametrize("mode", ["YCbCr", "LAB", "HSV", "CMYK", "RGBX"])
def test_other_colour_spaces_use_pillow_conversion(rng, mode):
    bands = len(mode) if mode != "YCbCr" else 3
    data = rng.integers(0, 256, size=(5, 6, bands), dtype=np.uint8)
    image = Image.frombytes(mode, (6, 5), data.tobytes())

    result = to_rgb(image)

    np.testing.assert_array_equal(pixels(result), np.asarray(image.convert("RGB")))


def test_cmyk_jpeg_file_loads_as_rgb_with_right_colour(tmp_path):
    path = save(Image.new("CMYK", (16, 16), (0, 255, 255, 0)), tmp_path / "red.jpg")
    assert Image.open(path).mode == "CMYK"

    result = load_image(path)

    assert result.mode == "RGB"
    np.testing.assert_allclose(pixels(result)[8, 8], [255, 0, 0], atol=8)


def test_to_rgb_returns_a_new_image_and_refuses_other_types():
    image = Image.new("RGB", (2, 2), (1, 2, 3))

    result = to_rgb(image)

    assert result is not image
    assert result.getpixel((1, 1)) == (1, 2, 3)
    with pytest.raises(TypeError, match=r"PIL.Image.Image, got numpy.ndarray"):
        to_rgb(np.zeros((2, 2), dtype=np.uint8))


# ----------------------------------------------------------- EXIF


def test_exif_orientation_6_is_applied_for_files_bytes_and_open_images(tmp_path):
    # Left half black, right half white, 40 wide and 20 high.
    array = np.zeros((20, 40), dtype=np.uint8)
    array[:, 20:] = 255
    exif = Image.Exif()
    exif[0x0112] = 6
    path = save(Image.fromarray(array), tmp_path / "rotated.jpg", exif=exif)

    from_path = load_image(path)
    from_bytes = load_image(path.read_bytes())
    with Image.open(path) as opened:
        from_image = load_image(opened)

    for result in (from_path, from_bytes, from_image):
        assert result.size == (20, 40)
        # Orientation 6 turns the image a quarter clockwise: left goes on top.
        assert pixels(result)[:15].max() < 30
        assert pixels(result)[25:].min() > 225


# ----------------------------------------------------- files and bytes


def test_relative_path_is_resolved_against_image_root(tmp_path):
    array = np.array([[10, 20]], dtype=np.uint8)
    (tmp_path / "sub").mkdir()
    save(Image.fromarray(array), tmp_path / "sub" / "a.png")

    from_str = load_image("sub/a.png", image_root=tmp_path)
    from_pathlike = load_image(Path("sub") / "a.png", image_root=str(tmp_path))

    for result in (from_str, from_pathlike):
        np.testing.assert_array_equal(pixels(result), gray_to_rgb(array))


def test_relative_path_without_root_is_resolved_against_cwd(tmp_path, monkeypatch):
    save(Image.new("RGB", (3, 2), (5, 6, 7)), tmp_path / "a.png")
    monkeypatch.chdir(tmp_path)

    assert load_image("a.png").getpixel((2, 1)) == (5, 6, 7)


def test_absolute_path_ignores_image_root(tmp_path):
    path = save(Image.new("RGB", (1, 1), (1, 1, 1)), tmp_path / "a.png")
    other = tmp_path / "other"
    other.mkdir()

    assert load_image(str(path), image_root=other).getpixel((0, 0)) == (1, 1, 1)


@pytest.mark.parametrize("kind", [bytes, bytearray, memoryview])
def test_encoded_bytes_are_decoded(rng, kind):
    array = rng.integers(0, 256, size=(3, 4, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")

    result = load_image(kind(buffer.getvalue()))

    np.testing.assert_array_equal(pixels(result), array)


def test_file_errors_name_the_reason_and_path(tmp_path):
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    not_image = tmp_path / "notes.png"
    not_image.write_text("hello")

    cases = [
        (tmp_path / "missing.png", "file not found"),
        (empty, r"file is empty \(0 bytes\)"),
        (not_image, "cannot decode image"),
        (tmp_path, "path is a directory, not an image file"),
    ]
    for path, reason in cases:
        with pytest.raises(ImageLoadError, match=f"^{reason}: {re.escape(str(path))}$"):
            load_image(path)


def test_undecodable_bytes_are_an_error():
    with pytest.raises(ImageLoadError, match="^cannot decode image$"):
        load_image(b"not an image")
    with pytest.raises(ImageLoadError, match="^image bytes are empty$"):
        load_image(b"")


def test_truncated_and_empty_jpeg_rows_are_reported_with_paths(rng, tmp_path):
    noise = rng.integers(0, 256, size=(256, 256, 3), dtype=np.uint8)
    good = save(Image.fromarray(noise), tmp_path / "good.jpg")
    data = good.read_bytes()
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(data[: int(len(data) * 0.6)])
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")

    with pytest.raises(ValueError) as info:
        load_images([good, truncated, empty])

    message = str(info.value)
    assert message.startswith("2 rows of column 'image' could not be read")
    assert f"\n  row 1: cannot decode image: {truncated}\n" in message
    assert f"\n  row 2: file is empty (0 bytes): {empty}\n" in message
    assert "row 0" not in message
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


def test_files_are_closed_after_success_and_failure(rng, tmp_path):
    if not os.path.isdir("/proc/self/fd"):
        pytest.skip("needs /proc to list open files")
    noise = rng.integers(0, 256, size=(32, 32, 3), dtype=np.uint8)
    good = save(Image.fromarray(noise), tmp_path / "good.jpg")
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(good.read_bytes()[:300])

    load_image(good)
    with pytest.raises(ImageLoadError):
        load_image(bad)

    open_files = {
        os.path.realpath(f"/proc/self/fd/{fd}") for fd in os.listdir("/proc/self/fd")
    }
    assert str(good) not in open_files
    assert str(bad) not in open_files


# ------------------------------------------------------- missing values


def test_missing_values_are_listed_in_one_error(tmp_path):
    values = [None, float("nan"), "", "missing.png"]

    with pytest.raises(ValueError) as info:
        load_images(values, image_root=tmp_path)

    message = str(info.value)
    missing = re.escape(str(tmp_path / "missing.png"))
    for pattern in [
        r"^4 rows of column 'image' could not be read as images:",
        r"\n  row 0: image is None\n",
        r"\n  row 1: image is NaN\n",
        r"\n  row 2: image is an empty string\n",
        rf"\n  row 3: file not found: {missing}\n",
        r"Fix or drop these rows before calling fit or predict\.$",
    ]:
        with pytest.raises(ValueError, match=pattern):
            load_images(values, image_root=tmp_path)
        assert re.search(pattern, message)


def test_pandas_missing_values_and_series_positions(tmp_path):
    pd = pytest.importorskip("pandas")
    save(Image.new("RGB", (1, 1)), tmp_path / "a.png")
    column = pd.Series(["a.png", pd.NA, pd.NaT, np.float64("nan")], index=[9, 8, 7, 6])

    with pytest.raises(ValueError) as info:
        load_images(column, image_root=tmp_path, column="photo")

    assert str(info.value).splitlines()[:4] == [
        "3 rows of column 'photo' could not be read as images:",
        "  row 1: image is missing",
        "  row 2: image is missing",
        "  row 3: image is NaN",
    ]


def test_a_long_url_is_cut_in_the_middle():
    url = "https://example.com/" + "a" * 200 + ".png"

    reason = check_image_value(url)

    assert reason.startswith("image is a URL ('https://example.com/aaa")
    assert "aaa...aaa" in reason
    assert "aaa.png'); only local files" in reason
    assert len(reason) < 200


def test_one_bad_row_is_singular_and_long_lists_are_cut():
    with pytest.raises(ValueError, match=r"^1 row of column 'image' could not"):
        load_images([np.zeros((1, 1), dtype=np.uint8), None])

    with pytest.raises(ValueError) as info:
        load_images([None] * 60)
    lines = str(info.value).splitlines()
    assert lines[0].startswith("60 rows")
    assert lines[50] == "  row 49: image is None"
    assert lines[51] == "  ... and 10 more rows"


def test_load_images_returns_rgb_images_in_order(tmp_path):
    save(Image.new("L", (2, 2), 40), tmp_path / "a.png")
    values = ["a.png", np.full((1, 1), 90, dtype=np.uint8), Image.new("RGB", (1, 1))]

    images = load_images(iter(values), image_root=tmp_path)

    assert [image.getpixel((0, 0)) for image in images] == [
        (40, 40, 40),
        (90, 90, 90),
        (0, 0, 0),
    ]
    assert load_images([]) == []


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (None, "image is None"),
        (float("nan"), "image is NaN"),
        (np.float32("nan"), "image is NaN"),
        ("", "image is an empty string"),
        (b"", "image bytes are empty"),
        (3, "image has unsupported type int; expected a file path"),
        (1.5, "image has unsupported type float"),
        ({"a": 1}, "image has unsupported type dict"),
        ([[0, 1]], "image has unsupported type list"),
        (
            "https://example.com/a.png",
            "image is a URL ('https://example.com/a.png'); only local files are "
            "read: download the images first",
        ),
        ("s3://bucket/a.png", "image is a URL ('s3://bucket/a.png')"),
        ("data:image/png;base64,iVBO", "image is a data URI ('data:image/png;"),
    ],
)
def test_check_image_value_reasons(value, reason):
    assert check_image_value(value).startswith(reason)
    with pytest.raises(ImageLoadError, match=f"^{re.escape(reason)}"):
        load_image(value)


def test_check_image_value_accepts_every_supported_type():
    for value in ["x.png", Path("x.png"), b"x", bytearray(b"x"), memoryview(b"x")]:
        assert check_image_value(value) is None
    # Windows drives and names that merely contain a colon are paths, not URLs.
    for value in ["C:/x.png", "C://x.png", "C:\\x.png", "a:b.png", "data.png"]:
        assert check_image_value(value) is None
    assert check_image_value(Image.new("RGB", (1, 1))) is None
    assert check_image_value(np.zeros((2, 2, 3), dtype=np.uint8)) is None


def test_load_images_refuses_a_single_value_or_a_table():
    with pytest.raises(TypeError, match=r"got a single str; wrap it in a list"):
        load_images("a.png")
    pd = pytest.importorskip("pandas")
    with pytest.raises(TypeError, match=r"pass the column, e.g. frame\['image'\]"):
        load_images(pd.DataFrame({"image": ["a.png"]}))


def test_image_root_must_be_an_existing_directory(tmp_path):
    with pytest.raises(ValueError, match=r"'image_root' must be an existing directory"):
        load_images(["a.png"], image_root=tmp_path / "nowhere")
    with pytest.raises(ValueError, match=r"'image_root' must be a directory path"):
        load_image("a.png", image_root=3)


# ---------------------------------------------------------- pixel limit


def test_pixel_limit_names_file_limit_and_parameter(tmp_path):
    path = save(Image.new("RGB", (10, 10)), tmp_path / "small.png")
    before = Image.MAX_IMAGE_PIXELS

    with pytest.raises(ImageLoadError) as info:
        load_image(path, max_pixels=99)

    message = str(info.value)
    assert "10 x 10 = 100 pixels, over the limit of 99 pixels" in message
    assert "parameter 'max_image_pixels'" in message
    assert message.endswith(f": {path}")
    assert info.value.path == str(path)
    assert load_image(path, max_pixels=100).size == (10, 10)
    assert Image.MAX_IMAGE_PIXELS == before


def test_pixel_limit_applies_to_bytes_arrays_and_images(tmp_path):
    buffer = io.BytesIO()
    Image.new("RGB", (5, 4)).save(buffer, format="PNG")
    values = [
        buffer.getvalue(),
        np.zeros((4, 5), dtype=np.uint8),
        Image.new("L", (5, 4)),
    ]

    for value in values:
        with pytest.raises(
            ImageLoadError, match=r"20 pixels, over the limit of 19.*'cap'"
        ):
            load_image(value, max_pixels=19, parameter="cap")

    with pytest.raises(ValueError, match=r"row 0: image is 5 x 4 = 20 pixels"):
        load_images(values, max_pixels=19)


def test_header_size_is_checked_before_decoding(tmp_path):
    # 10000 x 10000 is over our default limit and over Pillow's warning level.
    path = png_header_only(tmp_path / "big.png", 10_000, 10_000)

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ImageLoadError, match=r"100,000,000 pixels.*40,000,000"):
            load_image(path)


def test_pillow_decompression_bomb_error_is_reported(tmp_path):
    path = png_header_only(tmp_path / "bomb.png", 20_000, 20_000)
    before = Image.MAX_IMAGE_PIXELS

    with pytest.raises(ImageLoadError, match=r"decompression bomb.*MAX_IMAGE_PIXELS"):
        load_image(path, max_pixels=None)

    assert Image.MAX_IMAGE_PIXELS == before


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "many"])
def test_max_pixels_must_be_a_positive_integer(bad):
    with pytest.raises(ValueError, match=r"'max_image_pixels' must be a positive"):
        load_image(np.zeros((1, 1), dtype=np.uint8), max_pixels=bad)


def test_default_limit_value():
    assert DEFAULT_MAX_IMAGE_PIXELS == 40_000_000


def test_extreme_aspect_ratio_is_refused_before_processing():
    from multimodal_clf.data import load_images

    sliver = np.zeros((1, 200_000), dtype=np.uint8)
    with pytest.raises(
        ValueError,
        match=r"row 1: image is 200000 x 1: its sides "
        r"differ by more than 100:1",
    ):
        load_images([np.zeros((4, 4), dtype=np.uint8), sliver])
    # 1 x 100 is still accepted, and stays 1 x 100.
    assert load_images([np.zeros((1, 100), dtype=np.uint8)])[0].size == (100, 1)
