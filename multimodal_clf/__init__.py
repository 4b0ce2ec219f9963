"""scikit-learn estimators that fine-tune Hugging Face text and text+image models."""

from multimodal_clf._version import __version__

__all__ = ["__version__"]
