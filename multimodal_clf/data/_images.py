"""Decode image values and convert them to 8-bit RGB.

This is the library's one place where images are read: training, prediction,
the command line and the dataset loaders all go through :func:`load_image` or
:func:`load_images`, so an image gives the same pixels whichever path it takes.
The rules are listed in ``docs/images.md``.
"""

import io
import logging
import math
import os
import re
import reprlib
import struct
import sys
import warnings
from pathlib import Path

import numpy as np
from PIL import ExifTags, Image, ImageOps

from multimodal_clf.exceptions import ImageLoadError

__all__ = [
    "DEFAULT_MAX_IMAGE_PIXELS",
    "check_image_value",
    "load_image",
    "load_images",
    "to_rgb",
]

logger = logging.getLogger(__name__)

DEFAULT_MAX_IMAGE_PIXELS = 40_000_000
"""Largest image, in pixels (width x height), that is decoded by default."""

#: Longest side over shortest side beyond which an image is refused.
MAX_ASPECT_RATIO = 100

_ACCEPTED_TYPES = (
    "a file path (str or os.PathLike), encoded image bytes (bytes, bytearray or "
    "memoryview), a PIL.Image.Image or a NumPy array"
)
_ACCEPTED_SHAPES = (
    "(H, W) for grayscale or (H, W, C) with C = 1 (gray), 3 (RGB) or 4 (RGBA)"
)

# Modes whose pixels carry an alpha channel, premultiplied or not.
_ALPHA_MODES = {"LA", "PA", "RGBA"}
_PREMULTIPLIED_MODES = {"La", "RGBa"}
_SIXTEEN_BIT_MODES = {"I;16", "I;16B", "I;16L", "I;16N", "I"}
_UINT16_MAX = 65535

# What Pillow and its plugins raise on a file they cannot decode.
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, struct.error)

# A string that starts with a scheme of two letters or more and "://" is a URL; one
# letter and a colon is a Windows drive. "data:" starts inline base64 images.
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]+://")
_DATA_URI = re.compile(r"data:[^,]*,", re.IGNORECASE)

# Single values that `load_images` refuses in place of a column.
_SINGLE_VALUE_TYPES = (str, bytes, bytearray, memoryview, os.PathLike, Image.Image)

# Rows listed one by one in the error of `load_images`; the rest are counted.
_MAX_LISTED_ROWS = 50


def _missing_reason(value):
    """Return why `value` is a missing image, or None when it is not missing."""
    if value is None:
        return "image is None"
    if isinstance(value, (float, np.floating)) and math.isnan(value):
        return "image is NaN"

    # pandas is only consulted when the caller has already imported it.
    pandas = sys.modules.get("pandas")
    if pandas is not None and (value is pandas.NA or value is pandas.NaT):
        return "image is missing"
    return None


def _type_name(value):
    cls = type(value)
    if cls.__module__ == "builtins":
        return cls.__qualname__
    return f"{cls.__module__}.{cls.__qualname__}"


def _array_shape_reason(array):
    """Return why `array` cannot hold an image, judging shape and dtype only."""
    shape = array.shape
    if array.ndim not in (2, 3) or (array.ndim == 3 and shape[2] not in (1, 3, 4)):
        reason = f"array of shape {shape} is not an image; expected {_ACCEPTED_SHAPES}"
        if array.ndim == 3 and shape[0] in (1, 3, 4):
            reason += (
                "; a channels-first array (C, H, W) must be transposed first, "
                "e.g. with array.transpose(1, 2, 0)"
            )
        return reason
    if array.size == 0:
        return f"array of shape {shape} has no pixels"

    kind = array.dtype.kind
    if kind not in "biuf":
        return (
            f"array of dtype {array.dtype} is not an image; expected a bool, "
            "integer or floating-point dtype"
        )
    return None


def check_image_value(value):
    """Say whether a value can be an image, without reading or decoding it.

    A cheap check for validating a column up front: it looks at the type, and
    for arrays at the shape and dtype, but never touches the file system or
    scans pixel values. A value that passes may still fail in
    :func:`load_image` (a missing file, corrupt bytes, out-of-range pixels).

    Parameters
    ----------
    value : object
        A candidate image value.

    Returns
    -------
    reason : str or None
        None when the value has an accepted type, otherwise why it does not,
        e.g. ``"image is None"`` or ``"image is an empty string"``.

    Examples
    --------
    >>> from multimodal_clf.data import check_image_value
    >>> check_image_value("cat.jpg") is None
    True
    >>> check_image_value(float("nan"))
    'image is NaN'
    """
    missing = _missing_reason(value)
    if missing is not None:
        return missing

    if isinstance(value, str):
        return _string_reason(value)
    if isinstance(value, (bytes, bytearray)):
        return "image bytes are empty" if len(value) == 0 else None
    if isinstance(value, memoryview):
        return "image bytes are empty" if value.nbytes == 0 else None
    if isinstance(value, os.PathLike):
        return "image path is empty" if os.fspath(value) in ("", b"") else None
    if isinstance(value, Image.Image):
        return None
    if isinstance(value, np.ndarray):
        return _array_shape_reason(value)
    return f"image has unsupported type {_type_name(value)}; expected {_ACCEPTED_TYPES}"


def _string_reason(value):
    """Why a string cannot be an image path, or None."""
    if value == "":
        return "image is an empty string"
    if _URL.match(value):
        return (
            f"image is a URL ({_short(value)}); only local files are read: "
            "download the images first and pass their paths"
        )
    if _DATA_URI.match(value):
        return (
            f"image is a data URI ({_short(value)}); pass the decoded bytes, "
            "or save the image to a file and pass its path"
        )
    return None


def _short(text, limit=80):
    """``repr(text)``, cut in the middle with ``...`` when longer than ``limit``."""
    shortener = reprlib.Repr()
    shortener.maxstring = limit
    return shortener.repr(text)


def _check_max_pixels(max_pixels, parameter):
    """Validate the pixel limit once, before any image is read."""
    if max_pixels is None:
        return
    if (
        isinstance(max_pixels, (bool, np.bool_))
        or not isinstance(max_pixels, (int, np.integer))
        or max_pixels < 1
    ):
        raise ValueError(
            f"The parameter '{parameter}' must be a positive integer (a number of "
            f"pixels) or None for no limit, got {max_pixels!r}."
        )


def _resolve_root(image_root):
    """Return `image_root` as an absolute Path, checking that it is a directory."""
    if image_root is None:
        return None
    if not isinstance(image_root, (str, os.PathLike)):
        raise ValueError(
            "The parameter 'image_root' must be a directory path (str or "
            f"os.PathLike) or None, got {_type_name(image_root)}."
        )
    root = Path(os.path.abspath(os.fsdecode(image_root)))
    if not root.is_dir():
        raise ValueError(
            f"The parameter 'image_root' must be an existing directory, got {root}. "
            "Relative image paths are resolved against it; pass the folder that "
            "holds the images, or None to resolve them against the working "
            "directory."
        )
    return root


def _check_size(size, max_pixels, parameter, path=None):
    """Refuse an image with no pixels, or with width x height over `max_pixels`."""
    width, height = size
    if width * height == 0:
        raise ImageLoadError(f"image is {width} x {height}: it has no pixels", path)
    if max(width, height) > MAX_ASPECT_RATIO * min(width, height):
        # Processors scale the short side up to the model's size, so a sliver
        # would become a huge image however few pixels it has.
        raise ImageLoadError(
            f"image is {width} x {height}: its sides differ by more than "
            f"{MAX_ASPECT_RATIO}:1; crop or pad it to a less extreme shape",
            path,
        )
    if max_pixels is None or width * height <= max_pixels:
        return
    raise ImageLoadError(
        f"image is {width} x {height} = {width * height:,} pixels, over the limit "
        f"of {max_pixels:,} pixels (raise it with the parameter '{parameter}' if "
        "the image is trusted)",
        path,
    )


def _bomb_error(exc, parameter, path):
    """Report Pillow's own decompression-bomb refusal like our own limit."""
    detail = str(exc).rstrip(".")
    return ImageLoadError(
        f"Pillow refused the image as a possible decompression bomb ({detail}); "
        "that check follows PIL.Image.MAX_IMAGE_PIXELS, which the parameter "
        f"'{parameter}' cannot raise",
        path,
    )


def _unsigned16_to_uint8(values):
    """Map 0..65535 onto 0..255 with rounding: round(v * 255 / 65535)."""
    # v * 255 / 65535 == v / 257, and v / 257 never ends in exactly .5.
    return ((values.astype(np.uint32) + 128) // 257).astype(np.uint8)


def _unit_float_to_uint8(values, what, path=None):
    """Map floats in [0, 1] onto 0..255 with rounding; refuse anything else."""
    if not np.all(np.isfinite(values)):
        raise ImageLoadError(
            f"{what} contains NaN or infinite values; expected values in [0, 1]",
            path,
        )
    low, high = float(values.min()), float(values.max())
    if low < 0.0 or high > 1.0:
        raise ImageLoadError(
            f"{what} has values from {low:g} to {high:g}; floating-point pixels "
            "must lie in [0, 1] (divide by the maximum, or convert to uint8)",
            path,
        )
    return np.rint(values.astype(np.float64) * 255.0).astype(np.uint8)


def _composite_on_white(pixels, premultiplied=False):
    """Blend colour channels over white with the last channel as alpha.

    For straight alpha ``out = round((c * a + 255 * (255 - a)) / 255)``; for
    premultiplied alpha the colour already holds ``c * a / 255``, so
    ``out = min(c + 255 - a, 255)``.
    """
    colour = pixels[..., :-1].astype(np.uint16)
    alpha = pixels[..., -1:].astype(np.uint16)
    if premultiplied:
        blended = np.minimum(colour + (255 - alpha), 255)
    else:
        # At most 255 * 255 + 127, so uint16 does not overflow.
        blended = (colour * alpha + 255 * (255 - alpha) + 127) // 255
    blended = blended.astype(np.uint8)
    if blended.shape[-1] == 1:
        blended = np.repeat(blended, 3, axis=-1)
    return Image.fromarray(blended)


def _exif_orientation(image):
    """Return the EXIF orientation tag (1 to 8), or 1 when there is none."""
    orientation = image.getexif().get(ExifTags.Base.Orientation, 1)
    return orientation if orientation in range(1, 9) else 1


def _has_alpha_palette(image):
    return image.palette is not None and image.palette.mode.endswith("A")


def _convert(image, path=None):
    """Convert a PIL image to loaded 8-bit RGB; may return `image` itself."""
    try:
        image.load()
        if _exif_orientation(image) != 1:
            image = ImageOps.exif_transpose(image)
    except ImageLoadError:
        raise
    except _DECODE_ERRORS as exc:
        raise ImageLoadError("cannot decode image", path) from exc

    mode = image.mode
    has_key_colour = "transparency" in image.info

    if mode == "RGB" and not has_key_colour:
        return image
    if mode in _PREMULTIPLIED_MODES:
        return _composite_on_white(np.asarray(image), premultiplied=True)
    if mode in _ALPHA_MODES:
        return _composite_on_white(np.asarray(image.convert("RGBA")))
    if mode == "P" and (has_key_colour or _has_alpha_palette(image)):
        return _composite_on_white(np.asarray(image.convert("RGBA")))
    if has_key_colour and mode in ("1", "L", "RGB"):
        # A PNG tRNS colour key: pixels of that colour are fully transparent.
        return _composite_on_white(np.asarray(image.convert("RGBA")))
    if mode in _SIXTEEN_BIT_MODES:
        return _sixteen_bit_to_rgb(image, path)
    if mode == "F":
        gray = _unit_float_to_uint8(np.asarray(image), "mode 'F' image", path)
        return Image.fromarray(gray).convert("RGB")
    if mode == "1":
        return image.convert("L").convert("RGB")

    # L, P without transparency, CMYK, YCbCr, LAB, HSV, RGBX and the rest.
    try:
        return image.convert("RGB")
    except ValueError as exc:
        raise ImageLoadError(
            f"cannot convert an image of mode '{mode}' to RGB", path
        ) from exc


def _sixteen_bit_to_rgb(image, path=None):
    """Rescale a 16-bit (or 32-bit integer) grayscale image to 8-bit RGB."""
    values = np.asarray(image)
    if image.mode == "I":
        low, high = int(values.min()), int(values.max())
        if low < 0 or high > _UINT16_MAX:
            raise ImageLoadError(
                f"mode 'I' image has values from {low} to {high}; expected the "
                f"16-bit range 0..{_UINT16_MAX}",
                path,
            )
    gray = _unsigned16_to_uint8(values)
    return Image.fromarray(gray).convert("RGB")


def to_rgb(image):
    """Convert an open PIL image to a fully loaded 8-bit RGB image.

    The same rules apply to every source (file, bytes, array, PIL image):

    - an EXIF orientation tag is applied, so the image is upright;
    - ``RGB`` is kept; ``L`` and ``1`` become gray RGB;
    - ``LA``, ``La``, ``RGBA``, ``RGBa``, ``PA``, and ``P``, ``L`` or ``RGB``
      with a ``"transparency"`` entry are composited on white using the alpha;
    - ``P`` without transparency, ``CMYK``, ``YCbCr``, ``LAB`` and ``HSV`` are
      converted by Pillow;
    - ``I;16`` variants and ``I`` are rescaled from 0..65535 to 0..255
      (``round(v * 255 / 65535)``), never clipped; ``I`` values outside
      0..65535 are an error;
    - ``F`` must hold values in [0, 1], which are scaled by 255 and rounded.

    Parameters
    ----------
    image : PIL.Image.Image
        The image to convert. It is not modified.

    Returns
    -------
    rgb : PIL.Image.Image
        A new, fully loaded image in mode ``"RGB"``.

    Raises
    ------
    ImageLoadError
        If the pixel data cannot be decoded or the mode cannot be converted.
    TypeError
        If `image` is not a PIL image.

    See Also
    --------
    load_image : Read any accepted image value, then apply these rules.

    Examples
    --------
    >>> from PIL import Image
    >>> from multimodal_clf.data import to_rgb
    >>> rgba = Image.new("RGBA", (2, 2), (0, 0, 0, 0))
    >>> to_rgb(rgba).getpixel((0, 0))
    (255, 255, 255)
    """
    if not isinstance(image, Image.Image):
        raise TypeError(
            f"to_rgb expects a PIL.Image.Image, got {_type_name(image)}; use "
            "load_image for paths, bytes and arrays."
        )
    path = getattr(image, "filename", None) or None
    rgb = _convert(image, path)
    return rgb.copy() if rgb is image else rgb


def _array_to_image(array, max_pixels, parameter):
    """Turn an H x W or H x W x C array into a PIL image (not yet RGB)."""
    reason = _array_shape_reason(array)
    if reason is not None:
        raise ImageLoadError(reason)
    height, width = array.shape[:2]
    _check_size((width, height), max_pixels, parameter)

    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]

    dtype = array.dtype
    if dtype == np.uint8:
        pixels = array
    elif dtype == np.uint16:
        pixels = _unsigned16_to_uint8(array)
    elif dtype == np.bool_:
        pixels = array.astype(np.uint8) * 255
    elif dtype.kind == "f":
        pixels = _unit_float_to_uint8(array, f"array of dtype {dtype}")
    else:
        low, high = int(array.min()), int(array.max())
        if low < 0 or high > 255:
            raise ImageLoadError(
                f"array of dtype {dtype} has values from {low} to {high}; integer "
                "arrays other than uint8 and uint16 must hold values in 0..255 "
                "(rescale them, or pass 16-bit data as uint16)"
            )
        pixels = array.astype(np.uint8)
    return Image.fromarray(np.ascontiguousarray(pixels))


def _open_encoded(stream, max_pixels, parameter, path=None):
    """Decode an encoded image from a binary stream into RGB."""
    try:
        with warnings.catch_warnings():
            # Pillow warns past PIL.Image.MAX_IMAGE_PIXELS; our own limit,
            # checked just below on the real size, decides instead.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(stream) as image:
                _check_size(image.size, max_pixels, parameter, path)
                return _convert(image, path)
    except ImageLoadError:
        raise
    except Image.DecompressionBombError as exc:
        raise _bomb_error(exc, parameter, path) from exc
    except _DECODE_ERRORS as exc:
        raise ImageLoadError("cannot decode image", path) from exc


def _load_file(value, root, max_pixels, parameter):
    """Read the image file that `value` names, relative to `root` if given."""
    path = Path(os.fsdecode(value))
    if not path.is_absolute() and root is not None:
        path = root / path
    path = Path(os.path.abspath(path))

    try:
        if not path.exists():
            raise ImageLoadError("file not found", path)
        if path.is_dir():
            raise ImageLoadError("path is a directory, not an image file", path)
        if not path.is_file():
            raise ImageLoadError(
                "path is not a regular file (a device, pipe or socket)", path
            )
        if path.stat().st_size == 0:
            raise ImageLoadError("file is empty (0 bytes)", path)
    except OSError as exc:  # a name too long, a permission denied, ...
        raise ImageLoadError(f"cannot access path ({exc.strerror})", path) from exc

    try:
        handle = open(path, "rb")
    except OSError as exc:
        raise ImageLoadError(f"cannot open file ({exc.strerror})", path) from exc
    with handle:
        return _open_encoded(handle, max_pixels, parameter, path)


def _load_one(value, root, max_pixels, parameter):
    """Load one value, with arguments already validated."""
    reason = check_image_value(value)
    if reason is not None:
        raise ImageLoadError(reason)

    if isinstance(value, (str, os.PathLike)):
        return _load_file(value, root, max_pixels, parameter)
    if isinstance(value, (bytes, bytearray, memoryview)):
        data = value.tobytes() if isinstance(value, memoryview) else value
        return _open_encoded(io.BytesIO(data), max_pixels, parameter)
    if isinstance(value, Image.Image):
        path = getattr(value, "filename", None) or None
        _check_size(value.size, max_pixels, parameter, path)
        return to_rgb(value)
    # Only arrays are left: check_image_value refused every other type.
    return to_rgb(_array_to_image(value, max_pixels, parameter))


def load_image(
    value,
    *,
    image_root=None,
    max_pixels=DEFAULT_MAX_IMAGE_PIXELS,
    parameter="max_image_pixels",
):
    """Read one image value and return it as a fully loaded 8-bit RGB image.

    Parameters
    ----------
    value : str, os.PathLike, bytes, bytearray, memoryview, PIL.Image.Image \
            or numpy.ndarray
        The image. A string is always a file path. Bytes hold an encoded file
        in any format Pillow reads. An array is ``(H, W)`` grayscale or
        ``(H, W, C)`` with ``C`` in 1, 3, 4 (gray, RGB, RGBA), of dtype uint8,
        uint16 (rescaled), bool (0 or 255), float in [0, 1] (times 255,
        rounded) or another integer dtype holding values in 0..255.
    image_root : str, os.PathLike or None, default=None
        Folder that relative paths are resolved against; None resolves them
        against the current working directory.
    max_pixels : int or None, default=DEFAULT_MAX_IMAGE_PIXELS
        Largest width x height accepted. For files and bytes it is checked on
        the header size, before pixel data is decoded. None means no limit of
        this library's own (Pillow's ``PIL.Image.MAX_IMAGE_PIXELS`` still
        refuses images over twice its value).
    parameter : str, default="max_image_pixels"
        Name of the user-facing parameter that sets `max_pixels`, used in
        error messages.

    Returns
    -------
    image : PIL.Image.Image
        A new image in mode ``"RGB"``, with its pixel data loaded and no file
        left open. The conversion rules are those of :func:`to_rgb`.

    Raises
    ------
    ImageLoadError
        If the value is missing, of an unsupported type or shape, names a file
        that does not exist, is empty or cannot be decoded, is over
        `max_pixels`, or has pixel values outside the accepted range.
    ValueError
        If `image_root` is not an existing directory or `max_pixels` is not a
        positive integer or None.

    See Also
    --------
    load_images : Load a whole column and report every bad row at once.
    to_rgb : The conversion rules.

    Examples
    --------
    >>> import numpy as np
    >>> from multimodal_clf.data import load_image
    >>> image = load_image(np.zeros((2, 3), dtype=np.uint8))
    >>> image.mode, image.size
    ('RGB', (3, 2))
    """
    _check_max_pixels(max_pixels, parameter)
    root = _resolve_root(image_root)
    return _load_one(value, root, max_pixels, parameter)


def load_images(
    values,
    *,
    image_root=None,
    max_pixels=DEFAULT_MAX_IMAGE_PIXELS,
    column="image",
    parameter="max_image_pixels",
    positions=None,
):
    """Read a column of image values, reporting every bad row in one error.

    Parameters
    ----------
    values : iterable
        The image values, one per row (a list, a pandas Series, an object
        array, ...). Each is read as by :func:`load_image`.
    image_root : str, os.PathLike or None, default=None
        Folder that relative paths are resolved against; None resolves them
        against the current working directory.
    max_pixels : int or None, default=DEFAULT_MAX_IMAGE_PIXELS
        Largest width x height accepted for each image.
    column : str, default="image"
        Name of the column, used in the error message.
    parameter : str, default="max_image_pixels"
        Name of the user-facing parameter that sets `max_pixels`, used in
        error messages.
    positions : sequence of int, optional
        The row position of each value in the caller's data, used in the error
        message when ``values`` is a subset of the rows; by default 0, 1, ...

    Returns
    -------
    images : list of PIL.Image.Image
        One fully loaded ``"RGB"`` image per value, in order.

    Raises
    ------
    ValueError
        If any value cannot be read. The message lists each bad row by its
        position (counting from 0) with the reason and, for files, the path;
        past 50 rows the rest are only counted. It is also raised when
        `image_root` or `max_pixels` is invalid.
    TypeError
        If `values` is a single image value rather than a collection of them.

    See Also
    --------
    load_image : Load a single value.

    Examples
    --------
    >>> from multimodal_clf.data import load_images
    >>> load_images([None, float("nan")], column="photo")
    Traceback (most recent call last):
    ...
    ValueError: 2 rows of column 'photo' could not be read as images:
      row 0: image is None
      row 1: image is NaN
    Fix or drop these rows before calling fit or predict.
    """
    if isinstance(values, _SINGLE_VALUE_TYPES):
        raise TypeError(
            "load_images expects one image value per row (a list, Series or "
            f"array), got a single {_type_name(values)}; wrap it in a list, or "
            "call load_image."
        )
    if hasattr(values, "columns"):
        raise TypeError(
            "load_images expects one column of image values, got a table "
            f"({_type_name(values)}); pass the column, e.g. frame['{column}']."
        )
    _check_max_pixels(max_pixels, parameter)
    root = _resolve_root(image_root)

    images = []
    failures = []
    for position, value in enumerate(values):
        try:
            image = _load_one(value, root, max_pixels, parameter)
        except ImageLoadError as exc:
            row = position if positions is None else positions[position]
            failures.append((row, exc))
            # The call fails anyway: stop holding decoded pixels in memory.
            images.clear()
            continue
        if not failures:
            images.append(image)

    if failures:
        raise ValueError(_failure_message(failures, column))
    logger.debug("Loaded %d images from column %r", len(images), column)
    return images


def _failure_message(failures, column):
    count = len(failures)
    rows = "row" if count == 1 else "rows"
    lines = [f"{count} {rows} of column '{column}' could not be read as images:"]
    for position, exc in failures[:_MAX_LISTED_ROWS]:
        lines.append(f"  row {position}: {exc}")
    if count > _MAX_LISTED_ROWS:
        lines.append(f"  ... and {count - _MAX_LISTED_ROWS} more rows")
    lines.append("Fix or drop these rows before calling fit or predict.")
    return "\n".join(lines)
