"""The engine on a CUDA GPU: precision, the fp16 gradient scaler, checkpointing
with frozen layers, resuming, saving and several GPUs.

Tests that need CUDA are marked ``gpu`` and skipped without one;
``pytest -m gpu`` runs just them (``benchmarks/gpu_session.sh`` does, on a
lent GPU). Where a check means something on the CPU too, it is parametrized
over the devices, so that its own logic runs in every test run.
"""

import numpy as np
import pytest
import torch

from multimodal_clf import MultimodalClassifier, TextClassifier
from multimodal_clf.engine import Trainer, resolve_precision
from multimodal_clf.engine import _loop as loop_module
from tests.test_engine import _check_frozen_and_trained
from tests.test_persistence import CHECKPOINTED, crash_in_epoch

N_GPUS = torch.cuda.device_count() if torch.cuda.is_available() else 0
# marks of a test or a parameter that needs one GPU, or several
GPU = [pytest.mark.gpu, pytest.mark.skipif(N_GPUS < 1, reason="needs a CUDA GPU")]
GPUS = [pytest.mark.gpu, pytest.mark.skipif(N_GPUS < 2, reason="needs 2 CUDA GPUs")]


def needs(marks):
    """Decorate a test with a list of marks."""

    def decorate(test):
        for mark in marks:
            test = mark(test)
        return test

    return decorate


ON = dict(verbose=0, random_state=0, batch_size=4, learning_rate=1e-3)


@pytest.fixture
def trainers(monkeypatch):
    """The trainers that fits set up, with the weights each one started from."""
    seen = []
    plain_setup = Trainer.setup

    def recording(self, train):
        start = {n: p.detach().cpu().clone() for n, p in self.model.named_parameters()}
        plain_setup(self, train)
        seen.append((self, start))

    monkeypatch.setattr(Trainer, "setup", recording)
    return seen


def _weights(clf):
    return {n: p.detach().cpu() for n, p in clf.model_.named_parameters()}


# --- precision --------------------------------------------------------------------
@pytest.mark.parametrize(
    "device, precision",
    [
        ("cpu", "fp32"),
        ("cpu", "bf16"),
        pytest.param("cuda", "fp32", marks=GPU),
        pytest.param("cuda", "bf16", marks=GPU),
        pytest.param("cuda", "fp16", marks=GPU),
    ],
)
def test_fit_trains_float32_weights_and_returns_float32(
    bert, text_data, trainers, device, precision
):
    X, y = text_data
    clf = TextClassifier(bert, epochs=2, device=device, precision=precision, **ON)
    clf.fit(X, y)

    ((trainer, start),) = trainers
    assert trainer.device.type == device
    assert trainer.precision == precision
    assert (trainer.scaler is not None) == (precision == "fp16")
    weights = _weights(clf)
    assert all(w.dtype == torch.float32 for w in weights.values())
    assert all(bool(torch.isfinite(w).all()) for w in weights.values())
    moved = [n for n, w in weights.items() if not torch.equal(w, start[n])]
    assert len(moved) > len(weights) // 2
    proba = clf.predict_proba(X)
    assert proba.dtype == np.float32 and proba.shape == (len(X), 2)
    assert np.isfinite(proba).all()
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-6)


@pytest.mark.parametrize(
    "device, precision",
    [
        ("cpu", "bf16"),
        pytest.param("cuda", "bf16", marks=GPU),
        pytest.param("cuda", "fp16", marks=GPU),
    ],
)
def test_multimodal_fit_under_mixed_precision(
    clip, pair_data, trainers, device, precision
):
    X, y = pair_data
    clf = MultimodalClassifier(
        clip, epochs=2, device=device, precision=precision, head_hidden_size=8, **ON
    ).fit(X, y)
    ((trainer, _),) = trainers
    assert trainer.precision == precision
    assert all(w.dtype == torch.float32 for w in _weights(clf).values())
    proba = clf.predict_proba(X)
    assert proba.dtype == np.float32 and np.isfinite(proba).all()


@needs(GPU)
def test_auto_precision_on_this_gpu():
    native = torch.cuda.is_bf16_supported(including_emulation=False)
    expected = "bf16" if native else "fp16"
    assert resolve_precision("auto", torch.device("cuda")) == expected


@needs(GPU)
def test_fp16_overflowing_steps_are_skipped_not_errors(
    bert, text_data, trainers, monkeypatch
):
    # A loss scale of 2**100 overflows float16 gradients at every step: the
    # scaler skips each step and halves its scale, and fit still succeeds.
    scalers = []

    def huge_scaler(precision, device):
        scalers.append(torch.amp.GradScaler("cuda", init_scale=2.0**100))
        return scalers[-1]

    monkeypatch.setattr(loop_module, "make_scaler", huge_scaler)
    X, y = text_data
    clf = TextClassifier(bert, epochs=2, device="cuda", precision="fp16", **ON)
    clf.fit(X, y)

    ((trainer, start),) = trainers
    steps = 2 * 2  # 2 epochs of 8 rows in batches of 4
    assert scalers[0].get_scale() == 2.0 ** (100 - steps)
    for name, value in _weights(clf).items():
        assert torch.equal(value, start[name]), f"{name} changed in a skipped step"
    assert [r["epoch"] for r in clf.history_] == [1, 2]
    assert np.isfinite(clf.predict_proba(X)).all()


# --- checkpointing and freezing ----------------------------------------------------
@needs(GPU)
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_checkpointing_with_frozen_layers_on_cuda(bert, text_data, precision):
    X, y = text_data

    def factory():
        return TextClassifier(
            bert,
            epochs=1,
            device="cuda",
            precision=precision,
            gradient_checkpointing=True,
            freeze=1,
            **ON,
        )

    frozen, layers = _check_frozen_and_trained(
        factory,
        X,
        y,
        ("backbone.encoder.embeddings.", "backbone.encoder.encoder.layer.0."),
        ("backbone.encoder.pooler.",),
    )
    assert "backbone.encoder.pooler.dense.weight" in frozen
    assert layers == [True, True]


# --- resuming and saving -------------------------------------------------------------
@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=GPU)])
def test_resume_continues_the_run(bert, text_data, tmp_path, monkeypatch, device):
    X, y = text_data
    options = dict(ON, device=device, **CHECKPOINTED)
    straight = TextClassifier(bert, **options).fit(X, y)
    crash_in_epoch(monkeypatch, 3)
    with pytest.raises(RuntimeError, match="simulated crash"):
        TextClassifier(bert, **options, checkpoint_dir=tmp_path).fit(X, y)
    monkeypatch.undo()

    resumed = TextClassifier(bert, **options, checkpoint_dir=tmp_path)
    resumed.fit(X, y, resume=True)

    # CUDA kernels may add in another order from run to run: close, not equal.
    atol = 1e-6 if device == "cpu" else 1e-4
    np.testing.assert_allclose(
        resumed.predict_proba(X), straight.predict_proba(X), atol=atol
    )
    assert [r["epoch"] for r in resumed.history_] == [1, 2, 3]
    for mine, theirs in zip(resumed.history_, straight.history_):
        for key, value in theirs.items():
            assert mine[key] == pytest.approx(value, rel=1e-3, abs=atol), key


@needs(GPU)
def test_a_model_trained_on_cuda_predicts_alike_on_the_cpu(bert, text_data, tmp_path):
    X, y = text_data
    clf = TextClassifier(bert, epochs=2, device="cuda", **ON).fit(X, y)
    on_gpu = clf.predict_proba(X)
    clf.save(tmp_path / "model")

    loaded = TextClassifier.load(tmp_path / "model").set_params(device="cpu")
    assert next(loaded.model_.parameters()).device.type == "cpu"
    np.testing.assert_allclose(loaded.predict_proba(X), on_gpu, atol=1e-5)
    back = loaded.set_params(device="cuda")
    np.testing.assert_allclose(back.predict_proba(X), on_gpu, atol=1e-6)


# --- several GPUs in one process ----------------------------------------------------
@needs(GPUS)
def test_data_parallel_over_every_gpu_matches_one_gpu(text_data, trainers, tmp_path):
    from tests.test_distributed import no_dropout_bert

    bert = no_dropout_bert(tmp_path / "bert")
    X, y = text_data
    options = dict(ON, epochs=2, precision="fp32")
    one = TextClassifier(bert, device="cuda:0", **options).fit(X, y)
    every = TextClassifier(bert, device="auto", **options).fit(X, y)

    (_, _), (trainer, _) = trainers
    assert isinstance(trainer.module, torch.nn.DataParallel)
    assert trainer.module.device_ids == list(range(N_GPUS))
    for name, value in _weights(one).items():
        np.testing.assert_allclose(
            _weights(every)[name], value, rtol=1e-4, atol=1e-5, err_msg=name
        )
    np.testing.assert_allclose(every.predict_proba(X), one.predict_proba(X), atol=1e-5)
