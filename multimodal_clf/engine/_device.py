"""Choosing the device."""

import re

import torch

DEVICE_HELP = "'auto', 'cpu', 'cuda', 'cuda:<index>' or 'mps'"


def check_device(device):
    """Return an error text for a malformed device value, else None."""
    if isinstance(device, torch.device):
        return None
    if not isinstance(device, str) or not re.fullmatch(
        r"auto|cpu|mps|cuda(:\d+)?", device
    ):
        return f"allowed: {DEVICE_HELP}; got {device!r}"
    return None


def resolve_device(device):
    """Turn a device setting into a :class:`torch.device`, checking availability.

    ``"auto"`` is the first CUDA GPU when one is visible, else the CPU. CUDA is not
    touched unless the setting asks for it or is ``"auto"``.
    """
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    resolved = torch.device(device)
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            f"device={device!r} but no CUDA GPU is visible to PyTorch. Use "
            "device='cpu' or 'auto'."
        )
    if resolved.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"device={device!r} but MPS is not available. Use 'cpu'.")
    return resolved
