"""Inference over encoded rows."""

import numpy as np
import torch

from multimodal_clf.engine._precision import autocast


@torch.inference_mode()
def predict_logits(module, data, *, device, precision, batch_size):
    """Float32 logits for every row of ``data``, in row order.

    Rows are batched longest first so that each batch pads little; the results are
    put back in the original order.

    Parameters
    ----------
    module : torch.nn.Module
        Maps a batch dict to logits (or to a feature tensor).
    data : Rows
    device : torch.device
    precision : {"fp32", "bf16", "fp16"}
    batch_size : int

    Returns
    -------
    Tensor of shape (n_rows, n_outputs), on the CPU
    """
    was_training = module.training
    module.eval()
    order = np.argsort(-data.lengths, kind="stable")
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
            out = torch.empty((len(data), *values.shape[1:]), dtype=torch.float32)
        out[torch.as_tensor(indices)] = values
    module.train(was_training)
    if out is None:
        return torch.empty((0, 0), dtype=torch.float32)
    return out
