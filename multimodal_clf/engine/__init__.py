"""The training engine: a loop of small steps, precision and device handling."""

from multimodal_clf.engine._device import check_device, resolve_device
from multimodal_clf.engine._loop import Trainer
from multimodal_clf.engine._precision import PRECISIONS, autocast, resolve_precision
from multimodal_clf.engine._predict import predict_logits

__all__ = [
    "PRECISIONS",
    "Trainer",
    "autocast",
    "check_device",
    "predict_logits",
    "resolve_device",
    "resolve_precision",
]
