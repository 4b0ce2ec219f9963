"""The engine at scale: precision, non-finite losses, gradient checkpointing with
frozen layers, gradient accumulation, and the single-process multi-GPU pieces."""

import contextlib
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from multimodal_clf import MultimodalClassifier, TextClassifier
from multimodal_clf.engine import Trainer, _distributed, _precision
from multimodal_clf.engine._precision import autocast, make_scaler, resolve_precision
from multimodal_clf.exceptions import NonFiniteLossError, NotFittedError
from tests.test_distributed import _estimators, no_dropout_bert

ROOT = Path(__file__).resolve().parents[1]
FAST = dict(device="cpu", verbose=0, random_state=0, batch_size=4)


@pytest.fixture(scope="module")
def quiet_bert(tmp_path_factory):
    return no_dropout_bert(tmp_path_factory.mktemp("quiet") / "bert")


def _params(clf):
    return {n: p.detach().clone() for n, p in clf.model_.named_parameters()}


# --- precision -------------------------------------------------------------------
def test_auto_precision_per_device(monkeypatch):
    assert resolve_precision("auto", torch.device("cpu")) == "fp32"
    cuda = torch.device("cuda")
    monkeypatch.setattr(_precision, "_native_bf16", lambda: True)
    assert resolve_precision("auto", cuda) == "bf16"
    monkeypatch.setattr(_precision, "_native_bf16", lambda: False)
    assert resolve_precision("auto", cuda) == "fp16"
    for precision in ("fp32", "bf16", "fp16"):
        assert resolve_precision(precision, cuda) == precision


def test_scaler_only_for_fp16():
    cpu = torch.device("cpu")
    assert make_scaler("fp32", cpu) is None
    assert make_scaler("bf16", cpu) is None
    assert make_scaler("bf16", torch.device("cuda")) is None


def test_fp32_is_no_autocast():
    with autocast("fp32", torch.device("cpu")):
        assert not torch.is_autocast_enabled("cpu")
    with autocast("bf16", torch.device("cpu")):
        assert torch.is_autocast_enabled("cpu")
        assert torch.get_autocast_dtype("cpu") == torch.bfloat16


def test_fp16_on_cpu_is_a_clear_error(bert, text_data):
    X, y = text_data
    with pytest.raises(ValueError, match=r"precision='fp16' needs a CUDA GPU.*'bf16'"):
        TextClassifier(bert, precision="fp16", **FAST).fit(X, y)


def test_bf16_on_cpu_trains_under_autocast(bert, text_data):
    X, y = text_data
    seen = []
    clf = TextClassifier(bert, precision="bf16", epochs=1, **FAST)

    # record the dtype of a linear layer's output inside the backbone
    from transformers.models.bert import modeling_bert

    plain = modeling_bert.BertIntermediate.forward

    def spy(self, hidden_states):
        out = plain(self, hidden_states)
        seen.append(out.dtype)
        return out

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(modeling_bert.BertIntermediate, "forward", spy)
        clf.fit(X, y)
        proba = clf.predict_proba(X)
    assert seen and set(seen) == {torch.bfloat16}
    assert proba.dtype == np.float32
    assert np.isfinite(proba).all()
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5)
    # weights stay float32: autocast, not .half()
    assert {p.dtype for p in clf.model_.parameters()} == {torch.float32}


@pytest.mark.parametrize("freeze_backbone", [False, True], ids=["tuned", "frozen"])
def test_bf16_head_runs_in_float32(bert, text_data, freeze_backbone):
    # autocast would run the head's linear layers in bf16, rounding the logits
    # (and so the probabilities) to about 3 significant digits
    from multimodal_clf import _estimator

    X, y = text_data
    seen = {"fit": [], "predict": []}
    stage = ["fit"]
    plain_linear = torch.nn.Linear.forward
    plain_head = _estimator.make_head

    def spy(self, x):
        out = plain_linear(self, x)
        if getattr(self, "in_head", False):
            seen[stage[0]].append(out.dtype)
        return out

    def marked(*args, **kwargs):
        head = plain_head(*args, **kwargs)
        for module in head.modules():
            module.in_head = True
        return head

    clf = TextClassifier(
        bert, precision="bf16", epochs=1, freeze_backbone=freeze_backbone, **FAST
    )
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(torch.nn.Linear, "forward", spy)
        mp.setattr(_estimator, "make_head", marked)
        clf.fit(X, y)
        stage[0] = "predict"
        proba = clf.predict_proba(X)
    assert seen["fit"] and set(seen["fit"]) == {torch.float32}
    assert seen["predict"] and set(seen["predict"]) == {torch.float32}
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-6)


def test_fp32_forward_stays_float32(bert, text_data):
    X, y = text_data
    seen = []
    clf = TextClassifier(bert, precision="fp32", epochs=1, **FAST).fit(X, y)
    layer = clf.model_.backbone.encoder.encoder.layer[0].intermediate
    layer.register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    clf.predict_proba(X)
    assert set(seen) == {torch.float32}


# --- non-finite losses ------------------------------------------------------------
def test_non_finite_loss_names_epoch_and_step(bert, text_data, monkeypatch):
    X, y = text_data
    plain = Trainer.compute_loss
    calls = []

    def broken(self, logits, batch, n_rows):
        calls.append(1)
        loss = plain(self, logits, batch, n_rows)
        return loss * float("nan") if len(calls) == 3 else loss

    monkeypatch.setattr(Trainer, "compute_loss", broken)
    clf = TextClassifier(bert, epochs=2, **FAST)
    # 8 rows in batches of 4: the third loss is epoch 2, step 1
    with pytest.raises(NonFiniteLossError, match=r"loss became nan at epoch 2, step 1"):
        clf.fit(X, y)
    assert not hasattr(clf, "model_")


def test_huge_learning_rate_stops_fit(bert, text_data):
    X, y = text_data
    clf = TextClassifier(bert, epochs=3, learning_rate=1e30, **FAST)
    with pytest.raises(NonFiniteLossError, match=r"at epoch \d+, step \d+\. Lower"):
        clf.fit(X, y)
    assert not hasattr(clf, "model_")


def diverge_in_the_last_step(monkeypatch):
    """Make the last optimizer step of a fit turn a head weight infinite."""
    plain = Trainer.optimizer_step

    def diverging(self, step=0):
        plain(self, step)
        if self.epoch == self.epochs - 1 and step == 1:
            with torch.no_grad():
                self.model.head.mlp[1].bias.fill_(float("inf"))

    monkeypatch.setattr(Trainer, "optimizer_step", diverging)


def test_last_step_divergence_is_caught(bert, text_data, monkeypatch):
    # weights that overflow in the very last step: no later loss would see it
    X, y = text_data
    diverge_in_the_last_step(monkeypatch)
    clf = TextClassifier(bert, epochs=2, **FAST)
    with pytest.raises(
        NonFiniteLossError, match=r"\(first 'head.mlp.1.bias'\) became NaN or infinite"
    ):
        clf.fit(X, y)
    assert not hasattr(clf, "model_")


@pytest.mark.parametrize("warm_start", [True, False], ids=["continued", "refit"])
def test_failed_second_fit_leaves_the_estimator_unfitted(
    bert, text_data, monkeypatch, warm_start
):
    # A continued fit trains model_ in place, and a refit's attributes would
    # describe the fit before: when training fails, nothing stays as fitted.
    X, y = text_data
    clf = TextClassifier(bert, epochs=2, warm_start=warm_start, **FAST).fit(X, y)
    diverge_in_the_last_step(monkeypatch)
    with pytest.raises(NonFiniteLossError, match="became NaN or infinite"):
        clf.fit(X, y)
    monkeypatch.undo()
    for name in ("model_", "classes_", "history_", "n_iter_", "tokenizer_"):
        assert not hasattr(clf, name), name
    with pytest.raises(NotFittedError, match="is not fitted yet"):
        clf.predict_proba(X)
    # and a later fit starts afresh, like the first
    np.testing.assert_array_equal(
        clf.fit(X, y).predict_proba(X),
        TextClassifier(bert, epochs=2, **FAST).fit(X, y).predict_proba(X),
    )


def test_predict_refuses_non_finite_outputs(bert, text_data):
    X, y = text_data
    clf = TextClassifier(bert, epochs=1, **FAST).fit(X, y)
    with torch.no_grad():
        clf.model_.head.mlp[1].weight[0, 0] = float("nan")
    with pytest.raises(FloatingPointError, match=r"NaN or infinite outputs for 8 of 8"):
        clf.predict_proba(X)


# --- gradient checkpointing and freezing --------------------------------------------
def _checkpointed_layers(model):
    return [
        m.gradient_checkpointing
        for m in model.modules()
        if hasattr(m, "gradient_checkpointing")
        and m.__class__.__name__.endswith("Layer")
    ]


def test_checkpointing_recomputes_each_layer(bert, text_data):
    X, y = text_data
    counts = {}
    for flag in (False, True):
        clf = TextClassifier(bert, epochs=1, gradient_checkpointing=flag, **FAST)
        calls = []
        with _count_layer_calls(calls):
            clf.fit(X, y)
        counts[flag] = len(calls)
        layers = _checkpointed_layers(clf.model_)
        assert layers and all(f == flag for f in layers)
    # 2 steps x 2 layers + the probe; checkpointing runs each layer forward again
    assert counts[True] - counts[False] == 2 * 2


@contextlib.contextmanager
def _count_layer_calls(calls):
    from transformers.models.bert import modeling_bert

    # a part inside each layer: patching the layer itself would undo the
    # checkpointing wrapper that transformers puts around its forward
    plain = modeling_bert.BertIntermediate.forward

    def counting(self, *args, **kwargs):
        if torch.is_grad_enabled() and self.training:
            calls.append(1)
        return plain(self, *args, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(modeling_bert.BertIntermediate, "forward", counting)
        yield


def test_checkpointing_gives_the_same_weights(bert, text_data):
    X, y = text_data
    plain = TextClassifier(bert, epochs=2, learning_rate=1e-3, **FAST).fit(X, y)
    ckpt = TextClassifier(
        bert, epochs=2, learning_rate=1e-3, gradient_checkpointing=True, **FAST
    ).fit(X, y)
    a, b = _params(plain), _params(ckpt)
    for name, value in a.items():
        torch.testing.assert_close(b[name], value, rtol=1e-4, atol=1e-5, msg=name)


def _check_frozen_and_trained(clf_factory, X, y, frozen_prefixes, unused_prefixes):
    clf = clf_factory()
    clf.fit(X, y)
    # refit from scratch, recording the weights the run started from
    start = {}
    plain_setup = Trainer.setup

    def recording(self, train):
        start.update({n: p.detach().clone() for n, p in self.model.named_parameters()})
        return plain_setup(self, train)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(Trainer, "setup", recording)
        clf = clf_factory().fit(X, y)
    end = dict(clf.model_.named_parameters())
    assert set(start) == set(end)
    frozen = {n for n, p in end.items() if not p.requires_grad}
    trainable = set(end) - frozen
    for name in frozen:
        assert name.startswith(frozen_prefixes + unused_prefixes), name
        assert torch.equal(start[name], end[name].detach()), f"{name} changed"
    assert any(n.startswith(frozen_prefixes) for n in frozen)
    for name in end:
        if name.startswith(frozen_prefixes):
            assert name in frozen
    # every trainable parameter got a gradient and moved
    assert trainable
    for name in trainable:
        assert not torch.equal(start[name], end[name].detach()), f"{name} untouched"
    return frozen, _checkpointed_layers(clf.model_)


@pytest.mark.parametrize(
    "freeze",
    [1, ["backbone.encoder.embeddings", "backbone.encoder.encoder.layer.0"]],
    ids=["layers", "prefixes"],
)
def test_checkpointing_with_frozen_layers_bert(bert, text_data, freeze):
    X, y = text_data
    if not isinstance(freeze, int):
        freeze = [prefix.removeprefix("backbone.") for prefix in freeze]

    def factory():
        return TextClassifier(
            bert,
            epochs=1,
            learning_rate=1e-3,
            gradient_checkpointing=True,
            freeze=freeze,
            **FAST,
        )

    frozen, layers = _check_frozen_and_trained(
        factory,
        X,
        y,
        ("backbone.encoder.embeddings.", "backbone.encoder.encoder.layer.0."),
        ("backbone.encoder.pooler.",),
    )
    # the pooler, which mean pooling never reads, is the only extra frozen part
    assert "backbone.encoder.pooler.dense.weight" in frozen
    assert layers == [True, True]


def test_checkpointing_with_frozen_layers_pair(pair, pair_data):
    X, y = pair_data

    def factory():
        return MultimodalClassifier(
            pair,
            epochs=1,
            learning_rate=1e-3,
            gradient_checkpointing=True,
            freeze=1,
            **FAST,
        )

    _, layers = _check_frozen_and_trained(
        factory,
        X,
        y,
        (
            "backbone.text_encoder.embeddings.",
            "backbone.text_encoder.encoder.layer.0.",
            "backbone.image_encoder.embeddings.",
            "backbone.image_encoder.layers.0.",
        ),
        ("backbone.text_encoder.pooler.", "backbone.image_encoder.pooler."),
    )
    assert layers == [True] * 4


# --- gradient accumulation ----------------------------------------------------------
def test_accumulation_equals_a_larger_batch(quiet_bert, text_data):
    X, y = text_data
    Text, _ = _estimators()
    common = dict(device="cpu", verbose=0, random_state=0, epochs=1, learning_rate=1e-3)
    # one optimizer step over all 8 rows: 2 micro-batches of 4 against 1 batch of 8
    small = Text(quiet_bert, batch_size=4, gradient_accumulation_steps=2, **common)
    large = Text(quiet_bert, batch_size=8, **common)
    steps = []
    plain = Trainer.optimizer_step

    def counting(self, step=0):
        steps.append(step)
        return plain(self, step)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(Trainer, "optimizer_step", counting)
        small.fit(X, y)
        large.fit(X, y)
    assert steps == [0, 0]
    a, b = _params(small), _params(large)
    for name, value in b.items():
        torch.testing.assert_close(a[name], value, rtol=1e-4, atol=1e-6, msg=name)
    assert small.history_[0]["train_loss"] == pytest.approx(
        large.history_[0]["train_loss"], rel=1e-5
    )
    # and the step did something: a smaller batch gives other weights
    other = Text(quiet_bert, batch_size=4, **common).fit(X, y)
    head = "head.mlp.1.weight"
    assert (_params(other)[head] - b[head]).abs().max() > 1e-4


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_accumulation_with_a_short_step_equals_a_larger_batch(quiet_bert, seed):
    # 9 rows: batches of 8 are one step of 8 rows and one of 1, wherever the
    # shuffle puts the short one; 2 micro-batches of 4 must form the same steps.
    from tests.test_distributed import LABELS, TEXTS

    Text, _ = _estimators()
    common = dict(device="cpu", verbose=0, random_state=seed, learning_rate=1e-3)
    steps = []
    plain = Trainer.train_step

    def recording(self, data, group, step):
        steps.append(sorted(int(i) for part in group for i in part))
        return plain(self, data, group, step)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(Trainer, "train_step", recording)
        small = Text(
            quiet_bert, batch_size=4, gradient_accumulation_steps=2, **common
        ).fit(TEXTS, LABELS)
        small_steps = list(steps)
        steps.clear()
        large = Text(quiet_bert, batch_size=8, **common).fit(TEXTS, LABELS)
    assert small_steps == steps
    assert sorted(len(rows) for rows in steps) == [1, 1, 1, 8, 8, 8]
    a, b = _params(small), _params(large)
    for name, value in b.items():
        torch.testing.assert_close(a[name], value, rtol=1e-4, atol=1e-6, msg=name)


def plain_trainer(model, **params):
    """A CPU Trainer with a constant learning rate and no weight decay."""
    defaults = dict(
        device=torch.device("cpu"),
        epochs=1,
        batch_size=4,
        learning_rate=0.1,
        head_learning_rate=0.1,
        weight_decay=0.0,
        warmup_ratio=0.0,
    )
    return Trainer(model, **{**defaults, **params})


# --- batches, shards and parameters ------------------------------------------------
def test_padded_shard_rows_weigh_nothing(bert, text_data):
    X, y = text_data
    clf = TextClassifier(bert, epochs=1, **FAST).fit(X, y)
    trainer = plain_trainer(clf.model_, learning_rate=1e-3, head_learning_rate=1e-3)
    rows = clf._encode(
        clf.model_,
        clf._columns(X),
        device=torch.device("cpu"),
        precision="fp32",
        use_cache=False,
    )
    rows.targets = np.array([0, 1, 0, 1, 0, 1, 0, 1])
    trainer.module = clf.model_.eval()
    padded = _distributed.Shard(np.array([2, 3, 5]), n_pad=1, global_rows=4)
    batch = trainer.make_batch(rows, padded)
    assert batch["weights"].tolist() == [1.0, 1.0, 0.0]
    with torch.no_grad():
        loss = trainer.compute_loss(trainer.module(batch), batch, 2)
        real = trainer.make_batch(rows, np.array([2, 3]))
        expected = trainer.compute_loss(trainer.module(real), real, 2)
    torch.testing.assert_close(loss, expected)


class _BatchNormed(torch.nn.Module):
    """Precomputed features -> batch norm -> linear head, like a ResNet tower."""

    def __init__(self):
        super().__init__()
        self.norm = torch.nn.BatchNorm1d(3)
        self.head = torch.nn.Linear(3, 2)

    def forward(self, batch):
        return self.head(self.norm(batch["features.x"]))


def test_early_stopping_restores_the_best_epochs_batch_norm_statistics(monkeypatch):
    # The best weights go with the running statistics they were trained with,
    # not with those of the epochs after the best one.
    from multimodal_clf.data._batching import FeatureColumn, Rows

    generator = torch.Generator().manual_seed(0)
    values = torch.randn(12, 3, generator=generator) * 3 + 1
    data = Rows({"x": FeatureColumn(values, "x")}, targets=np.arange(12) % 2)
    train, valid = data.take(np.arange(8)), data.take(np.arange(8, 12))
    monkeypatch.setattr(
        Trainer,
        "evaluate",
        lambda self, data: {"valid_loss": float(self.epoch + 1), "valid_accuracy": 0},
    )

    states = []

    class Record:
        def on_epoch_end(self, trainer, record):
            states.append(
                {k: v.detach().clone() for k, v in trainer.model.state_dict().items()}
            )

    model = _BatchNormed()
    trainer = plain_trainer(
        model,
        epochs=4,
        early_stopping=True,
        patience=2,
        callbacks=[Record()],
    )
    history = trainer.fit(train, valid)
    # best after epoch 1, no better at 2 and 3: stopped, epoch 1 restored
    assert len(history) == 3
    best, last = states[0], states[-1]
    assert not torch.equal(best["norm.running_mean"], last["norm.running_mean"])
    for name, value in model.state_dict().items():
        torch.testing.assert_close(value, best[name], rtol=0, atol=0, msg=name)


def test_unused_parameters_are_left_out(bert, text_data, caplog):
    X, y = text_data
    with caplog.at_level("INFO", logger="multimodal_clf.engine._loop"):
        clf = TextClassifier(bert, epochs=1, **FAST).fit(X, y)
    frozen = [n for n, p in clf.model_.named_parameters() if not p.requires_grad]
    assert frozen == [
        "backbone.encoder.pooler.dense.weight",
        "backbone.encoder.pooler.dense.bias",
    ]
    assert "2 parameter tensors take no part in the output" in caplog.text


def test_autocast_wrapper_for_data_parallel(bert, text_data):
    X, y = text_data
    clf = TextClassifier(bert, epochs=1, **FAST).fit(X, y)
    wrapped = _distributed._Autocast(clf.model_, "bf16", torch.device("cpu"))
    seen = []
    layer = clf.model_.backbone.encoder.encoder.layer[0].intermediate
    handle = layer.register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    rows = clf._encode(
        clf.model_,
        clf._columns(X),
        device=torch.device("cpu"),
        precision="fp32",
        use_cache=False,
    )
    with torch.no_grad():
        logits = wrapped(rows.batch([0, 1]))
    handle.remove()
    assert seen == [torch.bfloat16]
    assert logits.shape == (2, 2)
    assert _distributed.unwrap(torch.nn.DataParallel(wrapped)) is clf.model_


# --- no CUDA at import or construction ----------------------------------------------
def test_import_and_init_never_touch_cuda():
    code = """
import torch

def refuse(*args, **kwargs):
    raise RuntimeError("CUDA touched")

for name in ("is_available", "device_count", "current_device", "_lazy_init",
             "init", "is_bf16_supported", "set_device"):
    setattr(torch.cuda, name, refuse)

import multimodal_clf
from multimodal_clf import MultimodalClassifier, TextClassifier
from sklearn.base import clone

for cls in (TextClassifier, MultimodalClassifier):
    est = clone(cls("bert-base-uncased", device="auto", precision="auto"))
    est.get_params()
    est.set_params(batch_size=4)
print("ok")
"""
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == "ok"


class _SkippingScaler:
    """Stands in for torch's CUDA gradient scaler: finds inf, skips, halves."""

    def __init__(self):
        self.scale = 1024.0
        self.steps = 0

    def get_scale(self):
        return self.scale

    def unscale_(self, optimizer):
        pass

    def step(self, optimizer):
        grads = [p.grad for g in optimizer.param_groups for p in g["params"]]
        if all(torch.isfinite(g).all() for g in grads if g is not None):
            optimizer.step()
            self.steps += 1

    def update(self):
        if self.steps == 0:
            self.scale /= 2


def test_fp16_skipped_steps_are_not_errors():
    model = torch.nn.Sequential(torch.nn.Linear(3, 2))
    trainer = plain_trainer(model, batch_size=2)
    trainer.optimizer = trainer.configure_optimizer()
    trainer.scheduler = trainer.configure_scheduler(trainer.optimizer, 10)
    before = model[0].weight.detach().clone()
    model(torch.ones(1, 3)).sum().backward()
    model[0].weight.grad[0, 0] = float("inf")
    # without a scaler, non-finite gradients are an error ...
    trainer.scaler = None
    with pytest.raises(NonFiniteLossError, match="gradients became inf at epoch 1"):
        trainer.optimizer_step(0)
    # ... with fp16's scaler the step is skipped and the schedule waits
    model(torch.ones(1, 3)).sum().backward()
    model[0].weight.grad[0, 0] = float("inf")
    trainer.scaler = _SkippingScaler()
    trainer.optimizer_step(0)
    assert trainer.scaler.scale == 512.0
    assert trainer.scheduler.last_epoch == 0
    assert torch.equal(model[0].weight, before)
    assert model[0].weight.grad is None


def test_data_parallel_splits_batch_dicts_row_aligned(pair, pair_data, monkeypatch):
    # DataParallel's scatter, with the CUDA copy replaced by a CPU split: each
    # replica must get a whole batch dict whose tensors hold the same rows.
    from torch.nn.parallel import scatter_gather

    X, y = pair_data
    clf = MultimodalClassifier(pair, epochs=1, **FAST).fit(X, y)
    rows = clf._encode(
        clf.model_,
        clf._columns(X),
        device=torch.device("cpu"),
        precision="fp32",
        use_cache=False,
    )
    rows.targets = np.arange(8) % 2
    rows.weights = np.linspace(0.5, 1.0, 8)
    batch = rows.batch(list(range(5)))

    def split(gpus, chunk_sizes, dim, tensor):
        return tensor.chunk(len(gpus), dim)

    monkeypatch.setattr(scatter_gather.Scatter, "apply", split)
    replicas = scatter_gather.scatter((batch,), [0, 1])
    assert len(replicas) == 2
    parts = [inputs[0] for inputs in replicas]
    assert all(set(part) == set(batch) for part in parts)
    for key, value in batch.items():
        torch.testing.assert_close(torch.cat([p[key] for p in parts]), value)
    assert [len(p["labels"]) for p in parts] == [3, 2]
    # each replica runs the model on its rows; the gathered logits are the batch's
    with torch.no_grad():
        clf.model_.eval()
        whole = clf.model_(batch)
        pieces = torch.cat([clf.model_(p) for p in parts])
    torch.testing.assert_close(pieces, whole, rtol=1e-5, atol=1e-6)


def test_text_pooling_under_bf16_averages_in_float32():
    # 300 real tokens: bf16 counts exactly only up to 256, and its sums of
    # hundreds of states keep about 3 digits.
    from types import SimpleNamespace

    from multimodal_clf.backbones._base import pool_text

    states = torch.rand(2, 320, 8, generator=torch.Generator().manual_seed(0))
    mask = torch.zeros(2, 320, dtype=torch.long)
    mask[0, :300] = 1
    mask[1, :7] = 1
    output = SimpleNamespace(last_hidden_state=states.to(torch.bfloat16))

    pooled = pool_text(output, mask)

    exact = states.to(torch.bfloat16).double()
    expected = torch.stack([exact[0, :300].mean(0), exact[1, :7].mean(0)])
    assert pooled.dtype == torch.float32
    torch.testing.assert_close(pooled.double(), expected, rtol=1e-6, atol=0)
