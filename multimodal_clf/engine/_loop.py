"""The training loop, as small steps that a subclass can override.

The engine sees a model (batch dict -> logits), :class:`~multimodal_clf.data.Rows`
that build batches from row indices, and a loss. It knows nothing of text or images.
"""

import logging
import math
import warnings

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from multimodal_clf.engine._precision import autocast, make_scaler, resolve_precision
from multimodal_clf.engine._predict import predict_logits
from multimodal_clf.exceptions import NonFiniteLossError

logger = logging.getLogger(__name__)

__all__ = ["Trainer"]

_BUCKET_BATCHES = 50


def _no_decay(name):
    return name.endswith("bias") or "norm" in name.lower()


class Trainer:
    """Fit a classifier module with AdamW and a linear warm-up / decay schedule.

    Parameters
    ----------
    model : torch.nn.Module
        Maps a batch dict to logits. Its parameters named ``head.*`` are trained
        at ``head_learning_rate``, the others at ``learning_rate``.
    device : torch.device
    epochs : int
    batch_size : int
        Rows per forward pass. With ``gradient_accumulation_steps=k`` an
        optimizer step sees ``k * batch_size`` rows.
    learning_rate, head_learning_rate : float
    weight_decay : float
    warmup_ratio : float
        Fraction of optimizer steps spent warming the learning rate up from 0.
    precision : {"auto", "fp32", "bf16", "fp16"}
    gradient_accumulation_steps : int, default=1
    early_stopping : bool, default=False
        Stop when the validation loss has not improved for ``patience`` epochs and
        keep the best weights.
    patience : int, default=2
    seed : int, default=0
        Seeds the shuffling of batches.
    verbose : int, default=0
        Progress bar when positive.
    callbacks : list, default=()
        Objects with an ``on_epoch_end(trainer, record)`` method.
    """

    def __init__(
        self,
        model,
        *,
        device,
        epochs,
        batch_size,
        learning_rate,
        head_learning_rate,
        weight_decay,
        warmup_ratio,
        precision="fp32",
        gradient_accumulation_steps=1,
        early_stopping=False,
        patience=2,
        seed=0,
        verbose=0,
        callbacks=(),
    ):
        self.model = model
        self.device = device
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.head_learning_rate = head_learning_rate
        self.weight_decay = weight_decay
        self.warmup_ratio = warmup_ratio
        self.precision = resolve_precision(precision, device)
        self.gradient_accumulation_steps = gradient_accumulation_steps
        self.early_stopping = early_stopping
        self.patience = patience
        self.seed = seed
        self.verbose = verbose
        self.callbacks = list(callbacks)
        self.generator = torch.Generator().manual_seed(seed)
        self.history = []
        self.epoch = 0
        self.interrupted = False
        self.best_state = None
        self.best_loss = math.inf
        self.bad_epochs = 0

    # --- set-up -------------------------------------------------------------
    def trainable_parameters(self):
        """Yield ``(name, parameter)`` for every parameter that will be trained."""
        for name, param in self.model.named_parameters():
            if param.requires_grad:
                yield name, param

    def configure_optimizer(self):
        """AdamW with four groups: backbone / head, with / without weight decay."""
        groups = {}
        for name, param in self.trainable_parameters():
            is_head = name.startswith("head.")
            decay = 0.0 if _no_decay(name) else self.weight_decay
            lr = self.head_learning_rate if is_head else self.learning_rate
            groups.setdefault(
                (is_head, decay), {"params": [], "lr": lr, "weight_decay": decay}
            )
            groups[(is_head, decay)]["params"].append(param)
        if not groups:
            raise ValueError(
                "nothing to train: every parameter is frozen. Unfreeze part of the "
                "backbone or check the freeze settings."
            )
        # The fused kernel updates every tensor in one call instead of a loop.
        fused = self.device.type == "cuda" or (
            self.device.type == "cpu" and torch.__version__ >= "2.4"
        )
        return torch.optim.AdamW(list(groups.values()), fused=fused)

    def configure_scheduler(self, optimizer, total_steps):
        """Linear warm-up over ``warmup_ratio`` of the steps, then linear decay to 0."""
        warmup = int(round(self.warmup_ratio * total_steps))

        def factor(step):
            if step < warmup:
                return (step + 1) / (warmup + 1)
            return max(0.0, (total_steps - step) / max(1, total_steps - warmup))

        return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)

    def prepare_model(self):
        """Move the model to the device; the place to wrap it for several GPUs."""
        self.model.to(self.device)
        return self.model

    def setup(self, train):
        """Build everything a run needs; called once at the start of :meth:`fit`."""
        self.module = self.prepare_model()
        self.optimizer = self.configure_optimizer()
        steps_per_epoch = math.ceil(
            self.n_batches(len(train)) / self.gradient_accumulation_steps
        )
        self.total_steps = max(1, steps_per_epoch * self.epochs)
        self.scheduler = self.configure_scheduler(self.optimizer, self.total_steps)
        self.scaler = make_scaler(self.precision, self.device)

    # --- batches ------------------------------------------------------------
    def n_batches(self, n_rows):
        """The number of batches one epoch over ``n_rows`` rows yields."""
        return math.ceil(n_rows / self.batch_size)

    def train_batches(self, data, epoch):
        """Row indices per batch for one epoch: shuffled, grouped by length.

        Rows are shuffled, cut into pools of many batches, each pool sorted by
        length and split into batches, and the batches shuffled, so that padding
        stays small while every epoch sees a new order.
        """
        order = torch.randperm(len(data), generator=self.generator).numpy()
        lengths = data.lengths
        pool = self.batch_size * _BUCKET_BATCHES
        batches = []
        for start in range(0, len(order), pool):
            chunk = order[start : start + pool]
            chunk = chunk[np.argsort(-lengths[chunk], kind="stable")]
            batches.extend(
                chunk[i : i + self.batch_size]
                for i in range(0, len(chunk), self.batch_size)
            )
        permutation = torch.randperm(len(batches), generator=self.generator).tolist()
        return [batches[i] for i in permutation]

    def to_device(self, batch):
        """Move every tensor of a batch to the device."""
        non_blocking = self.device.type == "cuda"
        return {
            k: v.to(self.device, non_blocking=non_blocking) for k, v in batch.items()
        }

    # --- steps --------------------------------------------------------------
    def compute_loss(self, logits, batch, n_rows):
        """Weighted cross-entropy summed over the batch, divided by ``n_rows``.

        ``n_rows`` is the number of rows in the whole optimizer step, so that
        accumulated micro-batches give the same gradient as one large batch.
        """
        losses = F.cross_entropy(logits.float(), batch["labels"], reduction="none")
        if "weights" in batch:
            losses = losses * batch["weights"]
        return losses.sum() / n_rows

    def forward(self, batch):
        """Logits for one batch, under the precision context."""
        with autocast(self.precision, self.device):
            return self.module(batch)

    def backward(self, loss):
        """Back-propagate, through the gradient scaler when there is one."""
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
        else:
            loss.backward()

    def optimizer_step(self):
        """Clip, step, update the schedule and clear the gradients."""
        if self.scaler is not None:
            self.scaler.unscale_(self.optimizer)
        params = [p for _, p in self.trainable_parameters()]
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)

    def train_step(self, data, group, step):
        """One optimizer step over a group of micro-batches; returns the loss."""
        n_rows = sum(len(indices) for indices in group)
        total = 0.0
        for indices in group:
            batch = self.to_device(data.batch(indices))
            loss = self.compute_loss(self.forward(batch), batch, n_rows)
            value = float(loss.detach())
            if not math.isfinite(value):
                raise NonFiniteLossError(
                    f"the training loss became {value} at epoch {self.epoch + 1}, "
                    f"step {step + 1}. Lower learning_rate, use precision='fp32' or "
                    "'bf16', or check the inputs for extreme values."
                )
            self.backward(loss)
            total += value
        self.optimizer_step()
        return total

    def train_epoch(self, data):
        """Run one epoch; return the mean training loss per row."""
        self.module.train()
        batches = self.train_batches(data, self.epoch)
        k = self.gradient_accumulation_steps
        groups = [batches[i : i + k] for i in range(0, len(batches), k)]
        total = 0.0
        bar = tqdm(
            groups,
            desc=f"epoch {self.epoch + 1}/{self.epochs}",
            disable=self.verbose <= 0,
            leave=False,
        )
        for step, group in enumerate(bar):
            n_rows = sum(len(indices) for indices in group)
            loss = self.train_step(data, group, step)
            total += loss * n_rows
            bar.set_postfix(loss=f"{loss:.4f}")
        return total / max(1, len(data))

    def predict_logits(self, data):
        """Logits for every row, in row order."""
        return predict_logits(
            self.module,
            data,
            device=self.device,
            precision=self.precision,
            batch_size=self.batch_size,
        )

    def evaluate(self, data):
        """Validation loss (weighted like training) and accuracy."""
        logits = self.predict_logits(data)
        targets = torch.as_tensor(data.targets)
        losses = F.cross_entropy(logits, targets, reduction="none")
        if data.weights is not None:
            losses = losses * torch.as_tensor(data.weights, dtype=torch.float32)
        accuracy = (logits.argmax(1) == targets).float().mean()
        return {
            "valid_loss": float(losses.mean()),
            "valid_accuracy": float(accuracy),
        }

    # --- the run ------------------------------------------------------------
    def snapshot(self):
        """A CPU copy of the trainable weights."""
        return {
            name: param.detach().to("cpu", copy=True)
            for name, param in self.trainable_parameters()
        }

    def restore(self, state):
        """Load a :meth:`snapshot` back into the model."""
        params = dict(self.model.named_parameters())
        with torch.no_grad():
            for name, value in state.items():
                params[name].copy_(value)

    def should_stop(self, record):
        """Track the best validation loss; True once patience runs out."""
        if "valid_loss" not in record:
            return False
        if record["valid_loss"] < self.best_loss:
            self.best_loss = record["valid_loss"]
            self.best_state = self.snapshot() if self.early_stopping else None
            self.bad_epochs = 0
            return False
        self.bad_epochs += 1
        return self.early_stopping and self.bad_epochs >= self.patience

    def fit(self, train, valid=None):
        """Train on ``train``, validating on ``valid`` each epoch.

        Returns
        -------
        history : list of dict
            One record per epoch run.
        """
        self.setup(train)
        try:
            while self.epoch < self.epochs:
                record = {
                    "epoch": self.epoch + 1,
                    "train_loss": self.train_epoch(train),
                }
                if valid is not None and len(valid):
                    record.update(self.evaluate(valid))
                self.history.append(record)
                logger.info("epoch %d: %s", self.epoch + 1, record)
                self.epoch += 1
                stop = self.should_stop(record)
                for callback in self.callbacks:
                    callback.on_epoch_end(self, record)
                if stop:
                    logger.info("early stopping after epoch %d", self.epoch)
                    break
        except KeyboardInterrupt:
            self.interrupted = True
            warnings.warn(
                f"fit was interrupted during epoch {self.epoch + 1}; the model keeps "
                "the best weights so far and can predict.",
                RuntimeWarning,
                stacklevel=2,
            )
        if self.best_state is not None:
            self.restore(self.best_state)
        self.optimizer.zero_grad(set_to_none=True)
        return self.history
