"""Compare text, image and multimodal classifiers: does the image help, at what cost?

Statistics and measurement used to compare models.
"""

from multimodal_clf.research._measure import Measurement, measure
from multimodal_clf.research._stats import (
    METRICS,
    BootstrapResult,
    paired_bootstrap,
    score_probabilities,
)

__all__ = [
    "METRICS",
    "BootstrapResult",
    "Measurement",
    "measure",
    "paired_bootstrap",
    "score_probabilities",
]
