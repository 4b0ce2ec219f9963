"""Input data handling: image decoding and conversion to 8-bit RGB."""

from multimodal_clf.data._images import (
    DEFAULT_MAX_IMAGE_PIXELS,
    check_image_value,
    load_image,
    load_images,
    to_rgb,
)

__all__ = [
    "DEFAULT_MAX_IMAGE_PIXELS",
    "check_image_value",
    "load_image",
    "load_images",
    "to_rgb",
]
