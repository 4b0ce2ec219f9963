"""Mixed precision: one context manager and an optional gradient scaler."""

import contextlib
import logging

import torch

logger = logging.getLogger(__name__)

PRECISIONS = ("auto", "fp32", "bf16", "fp16")


def resolve_precision(precision, device):
    """Turn ``"auto"`` into a concrete precision for ``device``.

    ``"auto"`` is bf16 on CUDA devices that support it natively (Ampere and newer),
    fp16 with a gradient scaler on other CUDA devices, and fp32 elsewhere (bf16 on
    a CPU is often slower than fp32, so it is only used when asked for). fp16
    without CUDA is an error: CPU autocast's float16 support is partial and slow,
    and a gradient scaler needs a GPU; bf16 is the CPU's reduced precision.
    """
    if precision == "auto":
        if device.type != "cuda":
            return "fp32"
        return "bf16" if _native_bf16() else "fp16"
    if precision == "fp16" and device.type != "cuda":
        raise ValueError(
            f"precision='fp16' needs a CUDA GPU, but the device is {device}. Use "
            "precision='bf16' (CPU autocast) or 'fp32' on this device."
        )
    return precision


def _native_bf16():
    try:
        return torch.cuda.is_bf16_supported(including_emulation=False)
    except TypeError:  # torch < 2.4 has no including_emulation
        return torch.cuda.is_bf16_supported()


def autocast(precision, device):
    """Return an autocast context for ``precision``; a no-op for fp32."""
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


def make_scaler(precision, device):
    """A gradient scaler for fp16 on CUDA, else None."""
    if precision == "fp16" and device.type == "cuda":
        return torch.amp.GradScaler("cuda")
    return None
