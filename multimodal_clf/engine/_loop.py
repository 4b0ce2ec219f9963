"""The training loop, as small steps that a subclass can override.

The engine sees a model (batch dict -> logits), :class:`~multimodal_clf.data.Rows`
that build batches from row indices, and a loss. It knows nothing of text or images.
"""

import logging
import math
import sys
import time
import warnings

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from multimodal_clf.engine import _distributed as D
from multimodal_clf.engine._precision import autocast, make_scaler, resolve_precision
from multimodal_clf.engine._predict import predict_logits
from multimodal_clf.engine._progress import Progress
from multimodal_clf.exceptions import CheckpointError, NonFiniteLossError

logger = logging.getLogger(__name__)

__all__ = ["Trainer"]

_BUCKET_BATCHES = 50


_NON_FINITE_HELP = (
    "Lower learning_rate, use precision='fp32' or 'bf16', or check the inputs "
    "for extreme values."
)


def _no_decay(name):
    return name.endswith("bias") or "norm" in name.lower()


def _graph_parameters(output):
    """Ids of the leaf tensors the autograd graph of ``output`` reaches."""
    seen, found = set(), set()
    stack = [output.grad_fn] if output.grad_fn is not None else []
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        variable = getattr(node, "variable", None)
        if variable is not None:
            found.add(id(variable))
        stack.extend(fn for fn, _ in node.next_functions)
    return found


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
        Rows per forward pass (per rank). With ``gradient_accumulation_steps=k``
        and ``w`` ranks an optimizer step sees ``k * w * batch_size`` rows.
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
        When positive, a progress bar per epoch (on a terminal or in a
        notebook) and one line per finished epoch, on rank 0.
    callbacks : list, default=()
        Objects with an ``on_epoch_end(trainer, record)`` method, and optionally
        ``on_fit_start(trainer)``, called once everything is set up (where a
        checkpoint is loaded with :meth:`load_state_dict`).
    device_ids : list of int, optional
        Several GPUs of this process to spread each batch over (DataParallel).
        Under a running process group the model is wrapped in
        DistributedDataParallel instead.
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
        device_ids=None,
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
        self.device_ids = device_ids
        self.generator = torch.Generator().manual_seed(seed)
        self.history = []
        self.epoch = 0
        self.interrupted = False
        self.stopped = False
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

    def exclude_unused_parameters(self, data):
        """Freeze the parameters that take no part in the logits.

        A pooler that the features never read would otherwise stay "trainable"
        without ever getting a gradient, which DistributedDataParallel refuses.
        Found from the autograd graph of one row in eval mode, without a
        backward pass; the result is the same on every rank.
        """
        if not len(data):
            return []
        trainable = dict(self.trainable_parameters())
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.enable_grad(), autocast(self.precision, self.device):
                logits = self.model(self.to_device(data.batch([0])))
            used = _graph_parameters(logits)
        finally:
            self.model.train(was_training)
        unused = [n for n, p in trainable.items() if id(p) not in used]
        for name in unused:
            trainable[name].requires_grad_(False)
        if unused and D.is_main_process():
            logger.info(
                "%d parameter tensors take no part in the output and stay as they "
                "are (%s%s)",
                len(unused),
                ", ".join(unused[:3]),
                ", ..." if len(unused) > 3 else "",
            )
        return unused

    def prepare_model(self):
        """Move the model to the device and wrap it for several GPUs / processes.

        In a single process with several ``device_ids`` the model is wrapped in
        DataParallel (batch dicts are split along their first dimension and the
        logits gathered, so the loss is a scalar on the first GPU); under a
        process group in DistributedDataParallel.
        """
        self.model.to(self.device)
        if D.is_distributed():
            # Same weights and shuffling on every rank, different dropout.
            torch.manual_seed(self.seed + D.get_rank())
        return D.wrap_model(
            self.model,
            self.device,
            precision=self.precision,
            device_ids=self.device_ids,
        )

    def setup(self, train):
        """Build everything a run needs; called once at the start of :meth:`fit`."""
        self.rank, self.world_size = D.get_rank(), D.get_world_size()
        self.main = D.is_main_process()
        self.model.to(self.device)
        self.exclude_unused_parameters(train)
        self.module = self.prepare_model()
        self.optimizer = self.configure_optimizer()
        self.total_steps = max(1, self.n_steps(len(train)) * self.epochs)
        self.scheduler = self.configure_scheduler(self.optimizer, self.total_steps)
        self.scaler = make_scaler(self.precision, self.device)

    # --- batches ------------------------------------------------------------
    @property
    def global_batch_size(self):
        """Rows per forward pass summed over ranks."""
        return self.batch_size * getattr(self, "world_size", 1)

    @property
    def step_size(self):
        """Rows per optimizer step summed over ranks and accumulated batches."""
        return self.global_batch_size * self.gradient_accumulation_steps

    def n_steps(self, n_rows):
        """The number of optimizer steps one epoch over ``n_rows`` rows takes."""
        return math.ceil(n_rows / self.step_size)

    def global_batches(self, data, epoch):
        """Row indices of the global batches of each step of one epoch.

        Rows are shuffled, cut into pools of many steps, each pool sorted by
        length and split into steps, and the steps shuffled, so that padding
        stays small while every epoch sees a new order. Each step's rows are
        then cut into global batches of ``global_batch_size`` rows, so that
        with ``gradient_accumulation_steps=k`` every step but one short step
        holds ``k`` full batches: the steps of one batch ``k`` times larger.
        Every rank draws the same batches from the shared seed.

        Returns
        -------
        list of list of ndarray
            Per optimizer step, its global batches.
        """
        size, step = self.global_batch_size, self.step_size
        order = torch.randperm(len(data), generator=self.generator).numpy()
        lengths = data.lengths
        pool = step * _BUCKET_BATCHES
        steps = []
        for start in range(0, len(order), pool):
            chunk = order[start : start + pool]
            chunk = chunk[np.argsort(-lengths[chunk], kind="stable")]
            steps.extend(chunk[i : i + step] for i in range(0, len(chunk), step))
        permutation = torch.randperm(len(steps), generator=self.generator).tolist()
        return [
            [steps[i][j : j + size] for j in range(0, len(steps[i]), size)]
            for i in permutation
        ]

    def train_batches(self, data, epoch):
        """This rank's batches of each step of one epoch.

        Returns
        -------
        list of list
            Per optimizer step, its batches: row indices in a single process,
            this rank's :class:`~multimodal_clf.engine._distributed.Shard` of
            each global batch under several ranks.
        """
        steps = self.global_batches(data, epoch)
        if self.world_size > 1:
            return [D.shard_batches(step, self.rank, self.world_size) for step in steps]
        return steps

    def make_batch(self, data, part):
        """The tensors of one batch (or rank's :class:`Shard`), on the device."""
        if not isinstance(part, D.Shard):
            return self.to_device(data.batch(part))
        batch = data.batch(part.indices)
        if part.n_pad:
            keep = torch.ones(len(part.indices))
            keep[len(part) :] = 0.0
            batch["weights"] = batch.get("weights", 1.0) * keep
        return self.to_device(batch)

    def to_device(self, batch):
        """Move every tensor of a batch to the device."""
        non_blocking = self.device.type == "cuda"
        return {
            k: v.to(self.device, non_blocking=non_blocking) for k, v in batch.items()
        }

    # --- steps --------------------------------------------------------------
    def compute_loss(self, logits, batch, n_rows):
        """Weighted cross-entropy summed over the batch, divided by ``n_rows``.

        ``n_rows`` is the number of rows in the whole optimizer step (divided by
        the number of ranks, whose gradients DistributedDataParallel averages),
        so that accumulated micro-batches and ranks give the same gradient as
        one large batch in one process.
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

    def optimizer_step(self, step=0):
        """Clip, step, update the schedule and clear the gradients.

        Non-finite gradients stop training, except in fp16 where the gradient
        scaler skips that step and lowers its scale (the schedule then waits).
        """
        if self.scaler is not None:
            self.scaler.unscale_(self.optimizer)
        params = [p for _, p in self.trainable_parameters()]
        norm = torch.nn.utils.clip_grad_norm_(params, 1.0)
        if self.scaler is None and not bool(torch.isfinite(norm)):
            raise NonFiniteLossError(
                f"the gradients became {float(norm)} at epoch {self.epoch + 1}, step "
                f"{step + 1}. {_NON_FINITE_HELP}"
            )
        stepped = True
        if self.scaler is not None:
            scale = self.scaler.get_scale()
            self.scaler.step(self.optimizer)
            self.scaler.update()
            stepped = self.scaler.get_scale() >= scale
            if not stepped:
                logger.debug("fp16: step %d skipped, loss scale lowered", step + 1)
        else:
            self.optimizer.step()
        if stepped:
            self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)

    def train_step(self, data, group, step):
        """One optimizer step over a group of micro-batches; returns the loss.

        With several ranks every rank runs the same micro-batches count, the
        gradients are all-reduced on the last one only, and the loss (and
        whether it is finite) is agreed over ranks before the step.
        """
        if isinstance(group[0], D.Shard):
            n_rows = sum(part.global_rows for part in group) / self.world_size
        else:
            n_rows = sum(len(indices) for indices in group)
        total = 0.0
        for i, part in enumerate(group):
            batch = self.make_batch(data, part)
            with D.sync_gradients(self.module, i == len(group) - 1):
                loss = self.compute_loss(self.forward(batch), batch, n_rows)
                value = float(loss.detach())
                if self.world_size == 1:
                    self._check_loss(value, step)
                self.backward(loss)
            total += value
        if self.world_size > 1:
            total = D.all_reduce_sum([total])[0] / self.world_size
            self._check_loss(total, step)
        self.optimizer_step(step)
        return total

    def _check_loss(self, value, step):
        if not math.isfinite(value):
            raise NonFiniteLossError(
                f"the training loss became {value} at epoch {self.epoch + 1}, step "
                f"{step + 1}. {_NON_FINITE_HELP}"
            )

    def train_epoch(self, data):
        """Run one epoch; return the mean training loss per row."""
        self.module.train()
        groups = self.train_batches(data, self.epoch)
        total = 0.0
        bar = Progress(
            groups,
            desc=f"epoch {self.epoch + 1}/{self.epochs}",
            unit="step",
            enabled=self.verbose > 0 and self.main,
        )
        for step, group in enumerate(bar):
            n_rows = sum(
                part.global_rows if isinstance(part, D.Shard) else len(part)
                for part in group
            )
            loss = self.train_step(data, group, step)
            total += loss * n_rows
            bar.set_postfix(f"loss={loss:.4f}")
        bar.close()
        return total / max(1, len(data))

    def report(self, record, seconds):
        """Print one line for a finished epoch (rank 0, ``verbose > 0``)."""
        if self.verbose <= 0 or not self.main:
            return
        values = ", ".join(f"{k}={v:.4f}" for k, v in record.items() if k != "epoch")
        tqdm.write(
            f"epoch {record['epoch']}/{self.epochs}: {values} ({seconds:.1f} s)",
            file=sys.stderr,
        )

    def predict_logits(self, data):
        """Logits for every row, in row order."""
        return predict_logits(
            self.module,
            data,
            device=self.device,
            precision=self.precision,
            batch_size=self.batch_size,
            device_ids=self.device_ids,
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
        """A CPU copy of what training changes: the trainable weights and the
        buffers saved with the model (batch-norm running statistics)."""
        kept = dict(self.trainable_parameters())
        saved = self.model.state_dict()
        kept.update(
            (name, buffer)
            for name, buffer in self.model.named_buffers()
            if name in saved
        )
        return {
            name: value.detach().to("cpu", copy=True) for name, value in kept.items()
        }

    def restore(self, state):
        """Load a :meth:`snapshot` back into the model."""
        targets = dict(self.model.named_parameters())
        targets.update(self.model.named_buffers())
        with torch.no_grad():
            for name, value in state.items():
                targets[name].copy_(value)

    def state_dict(self):
        """Everything needed to continue this run exactly: weights, optimizer,
        schedule, scaler, random states, epoch, history and early-stopping state.

        Tensors stay tensors (on their device); the rest is plain Python data.
        """
        cuda = self.device.type == "cuda"
        # Under several ranks each one draws its own dropout masks from its own
        # random state: all of them are kept, so every rank continues its own.
        ranks = {}
        if D.is_distributed():
            ranks["torch"] = D.all_gather_tensors(torch.get_rng_state())
            if cuda:
                ranks["cuda"] = D.all_gather_tensors(
                    torch.cuda.get_rng_state(self.device)
                )
        return {
            "epoch": self.epoch,
            "total_steps": self.total_steps,
            "seed": self.seed,
            "stopped": self.stopped,
            "history": [dict(record) for record in self.history],
            "best_loss": self.best_loss,
            "bad_epochs": self.bad_epochs,
            "best_state": self.best_state,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": None if self.scaler is None else self.scaler.state_dict(),
            "rng": {
                "generator": self.generator.get_state(),
                "torch": torch.get_rng_state(),
                "cuda": torch.cuda.get_rng_state_all() if cuda else [],
                "ranks": ranks,
            },
        }

    def load_state_dict(self, state):
        """Continue from a :meth:`state_dict`; call it after :meth:`setup`.

        Raises
        ------
        CheckpointError
            When the state belongs to a run of another length or model.
        """
        if state["total_steps"] != self.total_steps:
            raise CheckpointError(
                f"the checkpoint is of a run of {state['total_steps']} optimizer "
                f"steps, this run has {self.total_steps}: the number of rows, "
                "epochs, batch_size or gradient_accumulation_steps differ. Resume "
                "with the same data and settings, or start again."
            )
        try:
            self.model.load_state_dict(state["model"])
            self.optimizer.load_state_dict(state["optimizer"])
            self.scheduler.load_state_dict(state["scheduler"])
        except (RuntimeError, ValueError, KeyError) as error:
            raise CheckpointError(
                f"the checkpoint does not fit this model ({error}). Resume with "
                "the same backbone, labels and freeze settings, or start again."
            ) from error
        if self.scaler is not None and state["scaler"]:
            self.scaler.load_state_dict(state["scaler"])
        self.epoch = state["epoch"]
        self.stopped = state["stopped"]
        self.history = [dict(record) for record in state["history"]]
        self.best_loss = state["best_loss"]
        self.bad_epochs = state["bad_epochs"]
        self.best_state = state["best_state"]
        rng = state["rng"]
        self.generator.set_state(rng["generator"])
        torch.set_rng_state(rng["torch"])
        if rng["cuda"] and self.device.type == "cuda":
            if len(rng["cuda"]) == torch.cuda.device_count():
                torch.cuda.set_rng_state_all(rng["cuda"])
        # A run of several ranks: this rank's own states (older checkpoints and
        # another number of ranks keep rank 0's, as above).
        ranks = rng.get("ranks") or {}
        if len(ranks.get("torch", ())) == self.world_size > 1:
            torch.set_rng_state(ranks["torch"][self.rank])
        if len(ranks.get("cuda", ())) == self.world_size > 1:
            if self.device.type == "cuda":
                torch.cuda.set_rng_state(ranks["cuda"][self.rank], self.device)

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
        for callback in self.callbacks:
            if hasattr(callback, "on_fit_start"):
                callback.on_fit_start(self)
        try:
            while self.epoch < self.epochs and not self.stopped:
                start = time.perf_counter()
                record = {
                    "epoch": self.epoch + 1,
                    "train_loss": self.train_epoch(train),
                }
                if valid is not None and len(valid):
                    record.update(self.evaluate(valid))
                self.history.append(record)
                self.report(record, time.perf_counter() - start)
                if self.main:
                    logger.debug("epoch %d: %s", self.epoch + 1, record)
                self.epoch += 1
                self.stopped = self.should_stop(record)
                for callback in self.callbacks:
                    callback.on_epoch_end(self, record)
                if self.stopped:
                    if self.main:
                        logger.debug("early stopping after epoch %d", self.epoch)
                    if self.verbose > 0 and self.main:
                        tqdm.write(
                            f"early stopping after epoch {self.epoch}: no better "
                            f"valid_loss than {self.best_loss:.4f} for "
                            f"{self.patience} epochs",
                            file=sys.stderr,
                        )
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
        self.check_weights()
        return self.history

    def check_weights(self):
        """Raise when a trained weight is NaN or infinite (a diverged last step)."""
        bad = [
            name
            for name, param in self.trainable_parameters()
            if not bool(torch.isfinite(param).all())
        ]
        if bad:
            raise NonFiniteLossError(
                f"{len(bad)} weight tensors (first {bad[0]!r}) became NaN or "
                f"infinite by the end of epoch {self.epoch}. {_NON_FINITE_HELP}"
            )
