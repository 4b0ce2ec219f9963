"""scikit-learn estimators that fine-tune Hugging Face text and text+image models."""

from multimodal_clf._cache import clear_feature_cache, feature_cache
from multimodal_clf._version import __version__
from multimodal_clf.multimodal import MultimodalClassifier
from multimodal_clf.persistence import load
from multimodal_clf.text import TextClassifier

__all__ = [
    "MultimodalClassifier",
    "TextClassifier",
    "__version__",
    "clear_feature_cache",
    "feature_cache",
    "load",
]
