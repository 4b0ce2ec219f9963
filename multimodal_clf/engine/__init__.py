"""The training engine: a loop of small steps, precision and device handling."""

from multimodal_clf.engine._device import check_device, resolve_device
from multimodal_clf.engine._distributed import (
    barrier,
    get_rank,
    get_world_size,
    is_main_process,
    stop_process_group,
)
from multimodal_clf.engine._loop import Trainer
from multimodal_clf.engine._precision import PRECISIONS, autocast, resolve_precision
from multimodal_clf.engine._predict import predict_logits

__all__ = [
    "PRECISIONS",
    "Trainer",
    "autocast",
    "barrier",
    "check_device",
    "get_rank",
    "get_world_size",
    "is_main_process",
    "predict_logits",
    "resolve_device",
    "resolve_precision",
    "stop_process_group",
]
