"""Several GPUs and several processes, on PyTorch's own distributed engine.

Two ways to use more than one device:

- **One process, several GPUs** (``device="auto"`` with more than one GPU visible):
  the model is wrapped in :class:`torch.nn.DataParallel`, which splits every
  batch dict along its first dimension and gathers the logits on the first GPU,
  where the loss is reduced to a scalar.
- **Several processes** (launched with ``torchrun``, so ``WORLD_SIZE > 1``): the
  estimator starts the default process group (gloo on the CPU, NCCL on CUDA) and
  wraps the model in :class:`~torch.nn.parallel.DistributedDataParallel`. Every
  rank builds the same global batches from the shared seed and trains on its own
  disjoint share of each; predictions are computed in shards and gathered so
  that every rank returns every row.

Nothing here touches CUDA or the process group at import time.
"""

import atexit
import contextlib
import logging
import os
import warnings
from contextlib import nullcontext

import numpy as np
import torch
from torch import nn

from multimodal_clf.engine._precision import autocast

logger = logging.getLogger(__name__)

__all__ = [
    "Shard",
    "all_gather_rows",
    "all_gather_tensors",
    "barrier",
    "broadcast_seed",
    "data_parallel_ids",
    "get_rank",
    "get_world_size",
    "is_distributed",
    "is_main_process",
    "launched_distributed",
    "on_main_process",
    "quiet_on_other_ranks",
    "shard_batches",
    "start_process_group",
    "stop_process_group",
    "unwrap",
    "wrap_model",
]

# Whether this library started the default process group (and so must end it).
_STARTED = False


# --- where am I ---------------------------------------------------------------
def launched_distributed():
    """True when launched by ``torchrun`` (or alike) with ``WORLD_SIZE > 1``."""
    try:
        return int(os.environ.get("WORLD_SIZE", "1")) > 1
    except ValueError:
        return False


def _dist_ready():
    return torch.distributed.is_available() and torch.distributed.is_initialized()


def is_distributed():
    """True when a process group with more than one rank is running."""
    return _dist_ready() and torch.distributed.get_world_size() > 1


def get_rank():
    """This process's rank: from the process group, else ``RANK``, else 0."""
    if _dist_ready():
        return torch.distributed.get_rank()
    try:
        return int(os.environ.get("RANK", "0"))
    except ValueError:
        return 0


def get_world_size():
    """The number of ranks in the running process group, else 1."""
    return torch.distributed.get_world_size() if is_distributed() else 1


def is_main_process():
    """True on the process that logs and writes files (rank 0, or the only one).

    Works before the process group is started too, by reading ``RANK`` that
    ``torchrun`` sets, so that code such as ``save`` can ask at any time.
    """
    return get_rank() == 0


# Loggers quieted on the other ranks: this library's and those of the Hugging Face
# libraries it calls (their load reports and deprecation notes).
_QUIET_LOGGERS = ("multimodal_clf", "transformers", "huggingface_hub")


@contextlib.contextmanager
def quiet_on_other_ranks():
    """Show warnings and log records only on the main rank.

    Under ``torchrun`` every rank runs the same code on the same data, so each
    warning and log line would be shown once per rank. On the other ranks this
    silences Python warnings and raises the loggers of this library and of the
    Hugging Face libraries to ERROR until the block ends. Errors are not
    affected: every rank still raises and logs them.
    """
    if is_main_process() or not launched_distributed():
        yield
        return
    loggers = [logging.getLogger(name) for name in _QUIET_LOGGERS]
    levels = [each.level for each in loggers]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for each in loggers:
            each.setLevel(max(logging.ERROR, each.level))
        try:
            yield
        finally:
            for each, level in zip(loggers, levels):
                each.setLevel(level)


# --- the process group ----------------------------------------------------------
def _local_rank():
    return int(os.environ.get("LOCAL_RANK", "0"))


def start_process_group(device):
    """Start the default process group when launched by ``torchrun``.

    Does nothing in a single process or when the group already runs (a group the
    caller started stays theirs). The group is kept for the rest of the process,
    because stopping and restarting it between ``fit`` and ``predict`` is not
    reliable; one started here is destroyed at exit, or by
    :func:`stop_process_group`.

    Parameters
    ----------
    device : torch.device
        The resolved device setting; a CUDA device without an index becomes this
        rank's local GPU (``LOCAL_RANK``).

    Returns
    -------
    torch.device
        The device this rank uses.
    """
    global _STARTED
    if not launched_distributed():
        return device
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", _local_rank())
    if _dist_ready():
        return device
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(device)
    torch.distributed.init_process_group(backend=backend)
    _STARTED = True
    atexit.register(stop_process_group)
    logger.debug(
        "started the %s process group: rank %d of %d",
        backend,
        get_rank(),
        get_world_size(),
    )
    return device


def stop_process_group():
    """Destroy the default process group if this library started it."""
    global _STARTED
    if _STARTED and _dist_ready():
        torch.distributed.destroy_process_group()
    _STARTED = False


def _comm_device():
    """The device collectives of the running backend need their tensors on."""
    if torch.distributed.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def barrier():
    """Wait for every rank; a no-op in a single process."""
    if is_distributed():
        torch.distributed.barrier()


def broadcast_seed(seed):
    """Rank 0's seed on every rank, so that all ranks shuffle alike."""
    if not is_distributed():
        return seed
    value = torch.tensor([int(seed)], dtype=torch.int64, device=_comm_device())
    torch.distributed.broadcast(value, src=0)
    return int(value.item())


def all_reduce_sum(values):
    """Sum a list of floats over ranks; returned unchanged in a single process."""
    if not is_distributed():
        return list(values)
    tensor = torch.tensor(values, dtype=torch.float64, device=_comm_device())
    torch.distributed.all_reduce(tensor)
    return tensor.cpu().tolist()


def any_rank(flag):
    """True on every rank when ``flag`` is true on any rank."""
    if not is_distributed():
        return bool(flag)
    tensor = torch.tensor([1 if flag else 0], device=_comm_device())
    torch.distributed.all_reduce(tensor, op=torch.distributed.ReduceOp.MAX)
    return bool(tensor.item())


def on_main_process(what, function, *args, **kwargs):
    """Run ``function`` on rank 0 only; every rank returns once it has finished.

    Used for writing files (a saved model, a checkpoint) once. Under a process
    group the other ranks wait for rank 0 and raise as well when it fails, so
    that no rank goes on (or waits forever in the next collective) after a
    failed write.

    Parameters
    ----------
    what : str
        What ``function`` does, for the error on the other ranks.
    function : callable

    Returns
    -------
    What ``function`` returned on rank 0; None on the other ranks.
    """
    if not is_distributed():
        return function(*args, **kwargs) if is_main_process() else None
    result, error = None, None
    if is_main_process():
        try:
            result = function(*args, **kwargs)
        except Exception as caught:  # re-raised below, after the other ranks know
            error = caught
    if any_rank(error is not None):
        if error is not None:
            raise error
        raise RuntimeError(f"{what} failed on rank 0; its error says why.")
    return result


def check_same_count(n_rows, what):
    """Raise on every rank when ranks hold different numbers of rows."""
    if not is_distributed():
        return
    tensor = torch.tensor([n_rows, -n_rows], dtype=torch.int64, device=_comm_device())
    torch.distributed.all_reduce(tensor, op=torch.distributed.ReduceOp.MAX)
    high, low = int(tensor[0]), -int(tensor[1])
    if high != low:
        raise ValueError(
            f"{what} got between {low} and {high} rows on different ranks. Under "
            "torchrun every rank must call it with the same X."
        )


def all_rows_mask(mask):
    """Logical OR of a boolean row mask over ranks."""
    if not is_distributed():
        return np.asarray(mask, dtype=bool)
    tensor = torch.as_tensor(np.asarray(mask, dtype=np.uint8), device=_comm_device())
    torch.distributed.all_reduce(tensor, op=torch.distributed.ReduceOp.MAX)
    return tensor.cpu().numpy().astype(bool)


def all_gather_rows(values, order, n_rows):
    """Assemble rows computed in shards on every rank.

    Rank ``r`` computed ``values`` for rows ``order[r::world]`` (padded to the
    same number of rows on every rank); every rank gets all ``n_rows`` rows, in
    row order.
    """
    world = get_world_size()
    device = _comm_device()
    local = values.to(device)
    parts = [torch.empty_like(local) for _ in range(world)]
    torch.distributed.all_gather(parts, local)
    out = torch.empty((n_rows, *values.shape[1:]), dtype=values.dtype)
    for rank, part in enumerate(parts):
        rows = order[rank::world]
        out[torch.as_tensor(rows)] = part[: len(rows)].cpu()
    return out


def all_gather_tensors(tensor):
    """Every rank's ``tensor`` (the same shape and dtype on all), on the CPU.

    Returns
    -------
    list of Tensor
        One per rank, in rank order; ``[tensor]`` in a single process.
    """
    if not is_distributed():
        return [tensor]
    local = tensor.to(_comm_device())
    parts = [torch.empty_like(local) for _ in range(get_world_size())]
    torch.distributed.all_gather(parts, local)
    return [part.cpu() for part in parts]


# --- batches --------------------------------------------------------------------
class Shard:
    """One rank's rows of one global batch.

    Parameters
    ----------
    indices : ndarray of int
        Row indices; the last ``n_pad`` are stand-ins that get zero weight, so
        that a rank whose share of a small last batch is empty still runs the
        forward and backward passes every other rank runs.
    n_pad : int
    global_rows : int
        Rows in the global batch, over all ranks.
    """

    __slots__ = ("global_rows", "indices", "n_pad")

    def __init__(self, indices, n_pad, global_rows):
        self.indices = indices
        self.n_pad = n_pad
        self.global_rows = global_rows

    def __len__(self):
        return len(self.indices) - self.n_pad

    def __repr__(self):
        return f"Shard({self.indices.tolist()}, n_pad={self.n_pad})"


def shard_batches(batches, rank, world_size):
    """This rank's share of every global batch.

    Rank ``r`` takes rows ``r, r + world, ...`` of each global batch (batches are
    sorted by length, so shares pad alike). Every rank gets one shard per global
    batch, so all ranks run the same number of steps and collectives.

    Returns
    -------
    list of Shard
    """
    shards = []
    for batch in batches:
        batch = np.asarray(batch)
        own = batch[rank::world_size]
        n_pad = 0
        if not len(own):
            own, n_pad = batch[:1], 1
        shards.append(Shard(own, n_pad, len(batch)))
    return shards


# --- wrapping the model ---------------------------------------------------------
class _Autocast(nn.Module):
    """Runs the wrapped module under the precision context inside ``forward``.

    DataParallel runs replicas in worker threads, where the caller's autocast
    dtype is not carried over; entering the context in ``forward`` fixes that.
    """

    def __init__(self, module, precision, device):
        super().__init__()
        self.module = module
        self.precision = precision
        self.device_type = device.type

    def forward(self, batch):
        with autocast(self.precision, torch.device(self.device_type)):
            return self.module(batch)


def data_parallel_ids(setting, device):
    """GPU indices for DataParallel, or None for a single device.

    Only ``device="auto"`` in a single process spreads over every visible GPU;
    an explicit ``"cuda"`` or ``"cuda:<index>"`` uses that one GPU.
    """
    if setting != "auto" or device.type != "cuda" or launched_distributed():
        return None
    count = torch.cuda.device_count()
    return list(range(count)) if count > 1 else None


def wrap_model(model, device, *, precision, device_ids=None):
    """Wrap a model (already on ``device``) for several GPUs or processes.

    Returns DistributedDataParallel under a running process group, DataParallel
    with several ``device_ids``, else the model itself.
    """
    if is_distributed():
        from torch.nn.parallel import DistributedDataParallel

        ids = [device.index] if device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=ids)
    if device_ids and len(device_ids) > 1:
        return nn.DataParallel(_Autocast(model, precision, device), device_ids)
    return model


def unwrap(module):
    """The model inside DataParallel / DistributedDataParallel / autocast."""
    while isinstance(
        module, (nn.DataParallel, nn.parallel.DistributedDataParallel, _Autocast)
    ):
        module = module.module
    return module


def sync_gradients(module, sync):
    """A context that skips DDP's gradient all-reduce when ``sync`` is False.

    Micro-batches of one accumulated step all-reduce only on the last one.
    """
    if sync or not isinstance(module, nn.parallel.DistributedDataParallel):
        return nullcontext()
    return module.no_sync()
