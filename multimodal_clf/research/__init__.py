"""Compare text, image and multimodal classifiers: does the image help, at what cost?

:func:`compare` fits every model with several seeds on one split, measures time
and memory, and tests the gain of each image or multimodal model over the best
text model with :func:`paired_bootstrap`.
"""

from multimodal_clf.research._compare import KINDS, compare
from multimodal_clf.research._measure import Measurement, measure
from multimodal_clf.research._report import Comparison
from multimodal_clf.research._stats import (
    METRICS,
    BootstrapResult,
    paired_bootstrap,
    score_probabilities,
)

__all__ = [
    "KINDS",
    "METRICS",
    "BootstrapResult",
    "Comparison",
    "Measurement",
    "compare",
    "measure",
    "paired_bootstrap",
    "score_probabilities",
]
