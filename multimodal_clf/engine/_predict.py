"""Inference over encoded rows."""

import numpy as np
import torch

from multimodal_clf.engine import _distributed as D
from multimodal_clf.engine._precision import autocast
from multimodal_clf.engine._progress import Progress


@torch.inference_mode()
def predict_logits(
    module, data, *, device, precision, batch_size, device_ids=None, progress=None
):
    """Float32 logits for every row of ``data``, in row order.

    Rows are batched longest first so that each batch pads little; the results are
    put back in the original order. Under a process group every rank computes a
    share of the rows and every rank returns all of them.

    Parameters
    ----------
    module : torch.nn.Module
        Maps a batch dict to logits (or to a feature tensor).
    data : Rows
    device : torch.device
    precision : {"fp32", "bf16", "fp16"}
    batch_size : int
    device_ids : list of int, optional
        Several GPUs to spread each batch over (DataParallel).
    progress : str, optional
        When given, the name of a progress bar over the batches (rank 0 only),
        and of a line printed at the end.

    Returns
    -------
    Tensor of shape (n_rows, n_outputs), on the CPU

    Raises
    ------
    FloatingPointError
        When the model outputs NaN or infinite values.
    """
    module = D.unwrap(module)
    was_training = module.training
    module.eval()
    runner = module
    if not D.is_distributed():
        runner = D.wrap_model(
            module, device, precision=precision, device_ids=device_ids
        )
    order = np.argsort(-data.lengths, kind="stable")
    if D.is_distributed():
        D.check_same_count(len(data), "predict")
        world, rank = D.get_world_size(), D.get_rank()
        share = order[rank::world]
        # Every rank computes the same number of rows; a rank with none repeats
        # row order[0] so that it can still tell the output width.
        width = -(-len(order) // world)
        padded = np.concatenate([share, np.repeat(order[:1], width - len(share))])
        bar = _bar(progress, len(padded), batch_size, D.is_main_process())
        local = _run(runner, data, padded, device, precision, batch_size, bar=bar)
        out = None
        if local is not None:
            out = D.all_gather_rows(local, order, len(data))
    else:
        bar = _bar(progress, len(order), batch_size, True)
        out = _run(
            runner, data, order, device, precision, batch_size, scatter=True, bar=bar
        )
    bar.close(f"{len(data)} rows")
    module.train(was_training)
    if out is None:
        return torch.empty((0, 0), dtype=torch.float32)
    _check_finite(out, precision)
    return out


def _bar(name, n_rows, batch_size, main):
    return Progress(
        desc=name or "predict",
        total=-(-n_rows // batch_size),
        unit="batch",
        enabled=name is not None and main,
    )


def _run(module, data, order, device, precision, batch_size, *, bar, scatter=False):
    """Outputs for the rows ``order`` (None for no rows).

    Stacked in that order, or with ``scatter=True`` put back at the row positions
    that ``order`` names. ``bar`` advances by one per batch.
    """
    out = None
    non_blocking = device.type == "cuda"
    for start in range(0, len(order), batch_size):
        indices = order[start : start + batch_size]
        batch = {
            k: v.to(device, non_blocking=non_blocking)
            for k, v in data.batch(indices).items()
        }
        with autocast(precision, device):
            values = module(batch)
        values = values.float().cpu()
        if out is None:
            out = torch.empty((len(order), *values.shape[1:]), dtype=torch.float32)
        rows = indices if scatter else np.arange(start, start + len(indices))
        out[torch.as_tensor(rows)] = values
        bar.update()
    return out


def _check_finite(values, precision):
    bad = ~torch.isfinite(values).reshape(len(values), -1).all(dim=1)
    if bool(bad.any()):
        rows = torch.nonzero(bad).flatten()[:10].tolist()
        hint = (
            " precision='fp16' overflows easily; use 'bf16' or 'fp32'."
            if precision == "fp16"
            else " The weights may have diverged; refit with a lower learning_rate."
        )
        raise FloatingPointError(
            f"the model produced NaN or infinite outputs for {int(bad.sum())} of "
            f"{len(values)} rows (rows {rows} first).{hint}"
        )
