"""Wall time and peak memory of one call."""

import logging
import sys
import threading
import time
from typing import Any, NamedTuple

import psutil

__all__ = ["Measurement", "measure"]

logger = logging.getLogger(__name__)


class Measurement(NamedTuple):
    """What :func:`measure` observed while a callable ran.

    Attributes
    ----------
    result : object
        What the callable returned.
    wall_seconds : float
        Wall-clock duration of the call.
    peak_memory_bytes : int
        Peak CUDA memory allocated by PyTorch during the call when
        ``memory_kind == "cuda"``; otherwise the peak resident set size (RSS)
        of this process during the call.
    memory_kind : {"cuda", "rss"}
        Which memory ``peak_memory_bytes`` counts.
    memory_increase_bytes : int
        ``peak_memory_bytes`` minus the same quantity just before the call:
        what the call itself added.
    """

    result: Any
    wall_seconds: float
    peak_memory_bytes: int
    memory_kind: str
    memory_increase_bytes: int


class _RssSampler:
    """Track the peak RSS of this process from a background thread."""

    def __init__(self, interval):
        self._interval = interval
        self._process = psutil.Process()
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name="multimodal-clf-rss-sampler", daemon=True
        )
        self.start_bytes = self._process.memory_info().rss
        self.peak_bytes = self.start_bytes

    def _sample(self):
        self.peak_bytes = max(self.peak_bytes, self._process.memory_info().rss)

    def _run(self):
        while not self._stop.wait(self._interval):
            self._sample()

    def start(self):
        self._thread.start()

    def stop(self):
        self._stop.set()
        self._thread.join()
        # A last sample catches memory still held by the call's result.
        self._sample()


def _cuda_in_use():
    """Return the ``torch`` module when CUDA is initialised, else None.

    Neither imports torch nor initialises CUDA: a process that has not used
    CUDA yet is left alone.
    """
    torch = sys.modules.get("torch")
    if torch is None or not torch.cuda.is_initialized():
        return None
    return torch


def _cuda_devices(torch):
    return range(torch.cuda.device_count())


def _cuda_allocated(torch):
    return sum(torch.cuda.memory_allocated(d) for d in _cuda_devices(torch))


def _cuda_peak(torch):
    return sum(torch.cuda.max_memory_allocated(d) for d in _cuda_devices(torch))


def measure(fn, *args, sampling_interval=0.005, **kwargs):
    """Run ``fn(*args, **kwargs)`` and measure its wall time and peak memory.

    Memory is PyTorch's CUDA allocator peak (``torch.cuda.max_memory_allocated``
    after ``torch.cuda.reset_peak_memory_stats``, summed over the visible
    devices) when the call used CUDA, and the peak resident set size of this
    process otherwise, sampled by a background thread.

    Parameters
    ----------
    fn : callable
        The call to measure.
    *args
        Positional arguments passed to ``fn``.
    sampling_interval : float, default=0.005
        Seconds between two RSS samples. A peak shorter than this interval can
        be missed.
    **kwargs
        Keyword arguments passed to ``fn``.

    Returns
    -------
    measurement : Measurement
        A named tuple ``(result, wall_seconds, peak_memory_bytes, memory_kind,
        memory_increase_bytes)``.

    Notes
    -----
    The call counts as using CUDA when, after it returns, PyTorch is imported,
    CUDA is initialised and the allocator's peak rose above what was allocated
    when the call started. This module
    never imports torch itself nor initialises CUDA, so it is safe on machines
    without a GPU. CUDA memory is what PyTorch's caching allocator handed to
    tensors; it excludes the CUDA context and memory other libraries allocate.

    Examples
    --------
    >>> import numpy as np
    >>> m = measure(np.ones, 1_000_000)
    >>> m.result.shape, m.memory_kind
    ((1000000,), 'rss')
    """
    torch = _cuda_in_use()
    cuda_start = 0
    if torch is not None:
        torch.cuda.synchronize()
        for device in _cuda_devices(torch):
            torch.cuda.reset_peak_memory_stats(device)
        cuda_start = _cuda_allocated(torch)

    sampler = _RssSampler(sampling_interval)
    sampler.start()
    start = time.perf_counter()
    try:
        result = fn(*args, **kwargs)
        # The call may have initialised CUDA itself; wait for its kernels so
        # that the wall time covers them.
        torch = _cuda_in_use()
        if torch is not None:
            torch.cuda.synchronize()
        wall_seconds = time.perf_counter() - start
    finally:
        sampler.stop()

    # The peak was reset to what was allocated at the start, so a call that
    # allocated nothing on the GPU leaves it there.
    if torch is not None:
        peak = _cuda_peak(torch)
        if peak > cuda_start:
            logger.debug("measured %.1f s, CUDA peak %d bytes", wall_seconds, peak)
            return Measurement(
                result, wall_seconds, int(peak), "cuda", int(peak - cuda_start)
            )
    logger.debug("measured %.1f s, RSS peak %d bytes", wall_seconds, sampler.peak_bytes)
    return Measurement(
        result,
        wall_seconds,
        int(sampler.peak_bytes),
        "rss",
        int(sampler.peak_bytes - sampler.start_bytes),
    )
