"""Several processes under torchrun (gloo on the CPU) and the helpers behind them.

The multiprocess test launches this file as a torchrun worker script: every rank
fits the same scenarios and saves what it ended with; the test compares that with
one process that uses the same global batch (per-rank ``batch_size=b`` on two
ranks against ``batch_size=2b`` here).
"""

import contextlib
import io
import json
import logging
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from multimodal_clf.engine import _distributed as D

ROOT = Path(__file__).resolve().parents[1]
WORLD = 2
TEXTS = [
    "a happy dog runs",
    "sad rain all day",
    "the dog is glad",
    "grey sad clouds",
    "good happy sun",
    "a sad story",
    "happy play time",
    "gloomy sad night",
    "glad sunny morning",
]
LABELS = ["pos", "neg", "pos", "neg", "pos", "neg", "pos", "neg", "pos"]


# --- models and scenarios, shared by the test and the worker -----------------------
def no_dropout_bert(folder):
    """The tiny BERT with dropout switched off, so that runs can match exactly."""
    from tests import tiny_models

    path = Path(tiny_models.bert(folder))
    config = json.loads((path / "config.json").read_text())
    config.update(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    (path / "config.json").write_text(json.dumps(config))
    return str(path)


def _estimators():
    from multimodal_clf import MultimodalClassifier, TextClassifier

    class Text(TextClassifier):
        def _head_options(self):
            return {"fusion": "concat", "hidden": 0, "dropout": 0.0}

    return Text, MultimodalClassifier


def scenarios(models, device="cpu"):
    """name -> (estimator factory, X, y); ``batch_size`` is given per run."""
    from tests.conftest import colour_images

    Text, Multimodal = _estimators()
    common = dict(device=device, verbose=0, learning_rate=1e-3, epochs=2)
    pairs = list(zip(TEXTS, colour_images(LABELS)))
    return {
        # 9 rows in global batches of 4: the last batch of 1 leaves rank 1 a
        # zero-weight stand-in row.
        "plain": (
            lambda b: Text(models["bert"], batch_size=b, random_state=0, **common),
            TEXTS,
            LABELS,
        ),
        # checkpointing with frozen embeddings + first layer, accumulation and
        # early stopping on a validation split (decided alike on every rank).
        "checkpointing": (
            lambda b: Text(
                models["bert"],
                batch_size=b,
                random_state=1,
                gradient_checkpointing=True,
                freeze=1,
                gradient_accumulation_steps=2,
                early_stopping=True,
                validation_fraction=0.25,
                patience=1,
                **{**common, "epochs": 3},
            ),
            TEXTS,
            LABELS,
        ),
        # a frozen image tower: its features are computed in shards and gathered.
        "pair": (
            lambda b: Multimodal(
                (models["bert"], models["vit"]),
                batch_size=b,
                random_state=2,
                freeze="image",
                head_hidden_size=8,
                head_dropout=0.0,
                modality_dropout=0.0,
                **common,
            ),
            pairs,
            LABELS,
        ),
        # no random_state: rank 0's seed must reach every rank.
        "unseeded": (
            lambda b: Text(models["bert"], batch_size=b, random_state=None, **common),
            TEXTS,
            LABELS,
        ),
    }


def _result(clf, X):
    return {
        "proba": clf.predict_proba(X),
        "params": {
            n: p.detach().cpu().numpy().copy() for n, p in clf.model_.named_parameters()
        },
        "history": clf.history_,
    }


# --- the worker (run by torchrun) -------------------------------------------------
def resume_after_crash(models, folder, device):
    """Fit straight through, then crash in epoch 3 and resume; both results.

    Every rank draws its own dropout masks from its own random state, so the
    resumed run ends where the straight one does only if every rank continues
    from its own state rather than rank 0's.
    """
    from multimodal_clf import TextClassifier
    from multimodal_clf.engine import Trainer

    options = dict(device=device, verbose=0, learning_rate=1e-3, epochs=3)
    make = lambda **extra: TextClassifier(  # noqa: E731
        models["bert"], batch_size=2, random_state=0, **options, **extra
    )
    straight = make().fit(TEXTS, LABELS)

    plain_epoch = Trainer.train_epoch

    def crashing(self, data):
        if self.epoch + 1 == 3:
            raise RuntimeError("simulated crash")
        return plain_epoch(self, data)

    Trainer.train_epoch = crashing
    try:
        make(checkpoint_dir=folder).fit(TEXTS, LABELS)
    except RuntimeError as error:
        assert "simulated crash" in str(error)
    else:
        raise AssertionError("the crash did not happen")
    finally:
        Trainer.train_epoch = plain_epoch
    resumed = make(checkpoint_dir=folder).fit(TEXTS, LABELS, resume=True)
    return {
        "straight": straight.predict_proba(TEXTS),
        "resumed": resumed.predict_proba(TEXTS),
        "straight_history": straight.history_,
        "resumed_history": resumed.history_,
    }


def worker(out_dir, models, device="cpu"):
    """Fit every scenario on this rank and save the results for the test."""
    from multimodal_clf.engine import Trainer

    out_dir = Path(out_dir)
    rank = int(os.environ["RANK"])
    handler = logging.FileHandler(out_dir / f"log_rank{rank}.txt")
    logging.getLogger("multimodal_clf").addHandler(handler)
    logging.getLogger("multimodal_clf").setLevel(logging.INFO)
    torch.set_num_threads(1)

    seen = []
    plain_batches = Trainer.train_batches

    def recording(self, data, epoch):
        batches = plain_batches(self, data, epoch)
        seen.append(
            [
                (part.indices[: len(part)].tolist(), int(part.n_pad))
                for step in batches
                for part in step
            ]
        )
        return batches

    Trainer.train_batches = recording
    results = {"main": D.is_main_process()}
    for name, (make, X, y) in scenarios(models, device).items():
        seen.clear()
        clf = make(2).fit(X, y)
        results[name] = _result(clf, X)
        results[name]["shards"] = list(seen)
    # Texts cut to 4 tokens warn in fit and in predict, and verbose=1 prints a
    # line per epoch: on rank 0 only.
    make = scenarios(models, device)["plain"][0]
    printed = io.StringIO()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with contextlib.redirect_stderr(printed):
            clf = make(2).set_params(max_length=4, epochs=1, verbose=1)
            clf.fit(TEXTS, LABELS).predict(TEXTS)
    results["warnings"] = [str(w.message) for w in caught]
    results["stderr"] = printed.getvalue()
    results["resume"] = resume_after_crash(models, out_dir / "resume", device)

    # Checkpoints and a saved model are written once, by rank 0; every rank can
    # load the model as soon as save returns.
    from multimodal_clf import persistence
    from multimodal_clf.engine import _checkpoint

    writes = []

    def counting(module, name):
        write = getattr(module, name)

        def counted(*args, **kwargs):
            writes.append(name)
            return write(*args, **kwargs)

        setattr(module, name, counted)

    counting(_checkpoint, "write_checkpoint")
    counting(persistence, "_write_folder")
    clf = make(2).set_params(checkpoint_dir=out_dir / "checkpoints").fit(TEXTS, LABELS)
    clf.save(out_dir / "saved")
    results["writes"] = writes
    results["saved_proba"] = clf.predict_proba(TEXTS)
    results["loaded_proba"] = type(clf).load(out_dir / "saved").predict_proba(TEXTS)
    results["group_alive"] = torch.distributed.is_initialized()
    results["world"] = D.get_world_size()
    D.stop_process_group()
    results["group_stopped"] = not torch.distributed.is_initialized()
    torch.save(results, out_dir / f"rank{rank}.pt")


# --- the test ------------------------------------------------------------------
def launch(folder, models, device="cpu"):
    """Run :func:`worker` on WORLD ranks; each rank's results and log."""
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "OMP_NUM_THREADS": "1",
        "PYTHONWARNINGS": "ignore",
    }
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc_per_node={WORLD}",
        str(Path(__file__).resolve()),
        str(folder),
        json.dumps(models),
        device,
    ]
    done = subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=600, cwd=ROOT
    )
    assert done.returncode == 0, done.stderr[-5000:]
    ranks = [torch.load(folder / f"rank{r}.pt", weights_only=False) for r in range(2)]
    logs = [(folder / f"log_rank{r}.txt").read_text() for r in range(2)]
    return ranks, logs


def one_process(models, device="cpu"):
    """The same scenarios in this process, with the global batch as batch."""
    results = {}
    for name, (make, X, y) in scenarios(models, device).items():
        if name != "unseeded":
            results[name] = _result(make(2 * WORLD).fit(X, y), X)
    return results


@pytest.fixture(scope="module")
def launched(tmp_path_factory, model_dir):
    folder = tmp_path_factory.mktemp("torchrun")
    models = {
        "bert": no_dropout_bert(folder / "bert"),
        "vit": model_dir("vit"),
    }
    return (models, *launch(folder, models))


@pytest.fixture(scope="module")
def single(launched):
    return one_process(launched[0])


def assert_same_runs(ranks, single, name, *, rtol=1e-4, atol=2e-5, proba_atol=1e-5):
    """Every rank ended where one process with the global batch did."""
    expected = single[name]
    for result in ranks:
        got = result[name]
        assert [r["epoch"] for r in got["history"]] == [
            r["epoch"] for r in expected["history"]
        ]
        for mine, theirs in zip(got["history"], expected["history"]):
            for key, value in theirs.items():
                assert mine[key] == pytest.approx(value, rel=rtol, abs=1e-6), key
        assert set(got["params"]) == set(expected["params"])
        for param, value in expected["params"].items():
            np.testing.assert_allclose(
                got["params"][param], value, rtol=rtol, atol=atol, err_msg=param
            )
        np.testing.assert_allclose(got["proba"], expected["proba"], atol=proba_atol)
        assert got["proba"].dtype == np.float32
    # every rank returns every row, the same on every rank
    np.testing.assert_array_equal(ranks[0][name]["proba"], ranks[1][name]["proba"])


@pytest.mark.multiprocess
@pytest.mark.parametrize("name", ["plain", "checkpointing", "pair"])
def test_torchrun_matches_one_process(launched, single, name):
    _, ranks, _ = launched
    assert_same_runs(ranks, single, name)
    expected = single[name]
    if name == "checkpointing":
        assert all("valid_loss" in record for record in expected["history"])


@pytest.mark.gpu
@pytest.mark.multiprocess
@pytest.mark.skipif(
    not torch.cuda.is_available() or torch.cuda.device_count() < WORLD,
    reason=f"needs {WORLD} CUDA GPUs",
)
def test_torchrun_on_gpus_matches_one_gpu(tmp_path, model_dir):
    # NCCL, a GPU per rank; CUDA kernels may add in another order: close, not equal.
    models = {"bert": no_dropout_bert(tmp_path / "bert"), "vit": model_dir("vit")}
    ranks, logs = launch(tmp_path, models, device="cuda")
    single = one_process(models, device="cuda:0")
    for name in ("plain", "checkpointing", "pair"):
        assert_same_runs(ranks, single, name, rtol=1e-3, atol=1e-4, proba_atol=1e-4)
    assert ranks[0]["writes"] == ["write_checkpoint"] * 2 + ["_write_folder"]
    assert ranks[1]["writes"] == []
    assert logs[1] == ""


@pytest.mark.multiprocess
def test_torchrun_weights_really_trained(launched):
    from transformers import BertModel

    models, ranks, _ = launched
    start = {
        "backbone.encoder." + n: p.detach().numpy()
        for n, p in BertModel.from_pretrained(models["bert"]).named_parameters()
    }
    after = ranks[0]["plain"]["params"]
    # (key biases are left out: softmax makes their gradient zero)
    layers = [n for n in start if ".encoder.layer." in n and n.endswith("weight")]
    assert len(layers) == 2 * 8
    # the comparison with one process is not between untouched weights
    for name in layers:
        assert np.abs(after[name] - start[name]).max() > 1e-4, name


@pytest.mark.multiprocess
@pytest.mark.parametrize("name", ["plain", "checkpointing", "pair", "unseeded"])
def test_torchrun_shards_are_disjoint_and_equal(launched, name):
    _, ranks, _ = launched
    epochs = [r[name]["shards"] for r in ranks]
    assert len(epochs[0]) == len(epochs[1]) > 0
    n_rows = len(TEXTS)
    if name == "checkpointing":
        n_rows -= round(0.25 * len(TEXTS))
    for shards in zip(*epochs):
        # the same number of batches on every rank
        assert len(shards[0]) == len(shards[1])
        rows = [
            sorted(i for part, _ in ranks_shards for i in part)
            for ranks_shards in shards
        ]
        assert not set(rows[0]) & set(rows[1])
        assert sorted(rows[0] + rows[1]) == list(range(n_rows))
        for part0, part1 in zip(*shards):
            # shares of one global batch differ by at most one row
            assert abs(len(part0[0]) - len(part1[0])) <= 1


@pytest.mark.multiprocess
def test_torchrun_unseeded_ranks_agree(launched):
    _, ranks, _ = launched
    a, b = (r["unseeded"] for r in ranks)
    for name, value in a["params"].items():
        np.testing.assert_array_equal(value, b["params"][name])
    np.testing.assert_array_equal(a["proba"], b["proba"])


@pytest.mark.multiprocess
def test_torchrun_only_rank_zero_logs_and_group_lifecycle(launched):
    _, ranks, logs = launched
    # The INFO messages of fit (the epoch lines are printed, tested above).
    assert "take no part in the output" in logs[0]
    assert logs[1] == ""
    assert [r["main"] for r in ranks] == [True, False]
    assert all(r["world"] == WORLD for r in ranks)
    assert all(r["group_alive"] and r["group_stopped"] for r in ranks)


@pytest.mark.multiprocess
def test_torchrun_warns_and_prints_on_rank_zero_only(launched):
    _, ranks, _ = launched
    truncated = [m for m in ranks[0]["warnings"] if "were truncated" in m]
    # One warning from fit and one from predict, each for the rows of TEXTS
    # longer than 4 tokens.
    assert len(truncated) == 2
    assert ranks[1]["warnings"] == []
    assert ranks[0]["stderr"].startswith("epoch 1/1: train_loss=")
    assert ranks[1]["stderr"] == ""


@pytest.mark.multiprocess
def test_torchrun_writes_checkpoints_and_saves_once(launched):
    _, ranks, _ = launched
    assert ranks[0]["writes"] == ["write_checkpoint"] * 2 + ["_write_folder"]
    assert ranks[1]["writes"] == []
    for result in ranks:
        np.testing.assert_array_equal(result["loaded_proba"], result["saved_proba"])


@pytest.mark.multiprocess
def test_torchrun_resume_continues_every_rank(launched):
    _, ranks, _ = launched
    for result in ranks:
        got = result["resume"]
        assert [r["epoch"] for r in got["resumed_history"]] == [1, 2, 3]
        assert got["resumed_history"] == got["straight_history"]
        np.testing.assert_array_equal(got["resumed"], got["straight"])


class _Records(logging.Handler):
    """Keeps the messages of the records it receives."""

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


@pytest.fixture
def info_logging():
    """The library and transformers log at INFO into a list, during one test."""
    records = _Records()
    parents = [logging.getLogger(n) for n in ("multimodal_clf", "transformers")]
    levels = [logger.level for logger in parents]
    for logger in parents:
        logger.setLevel(logging.INFO)
        logger.addHandler(records)
    yield records
    for logger, level in zip(parents, levels):
        logger.removeHandler(records)
        logger.setLevel(level)


def test_other_ranks_are_quiet_under_the_torchrun_environment(
    monkeypatch, info_logging
):
    monkeypatch.setenv("WORLD_SIZE", "2")
    library = logging.getLogger("multimodal_clf.datasets")
    hub = logging.getLogger("transformers.modeling_utils")
    for rank, shown in [("0", 1), ("1", 0)]:
        monkeypatch.setenv("RANK", rank)
        info_logging.messages.clear()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with D.quiet_on_other_ranks():
                warnings.warn("from a rank", UserWarning, stacklevel=1)
                library.info("loaded")
                hub.warning("weights not used")
                library.error("failed")
        assert len(caught) == shown
        expected = ["loaded", "weights not used"] * shown + ["failed"]
        assert info_logging.messages == expected
    # Filters and levels are restored on leaving: later warnings show again.
    assert logging.getLogger("multimodal_clf").level == logging.INFO
    assert logging.getLogger("transformers").level == logging.INFO
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with D.quiet_on_other_ranks():
            pass
        warnings.warn("after", UserWarning, stacklevel=1)
    assert len(caught) == 1


# --- single-process helpers ------------------------------------------------------
def test_shard_batches_split_every_batch_across_ranks():
    batches = [np.arange(0, 5), np.arange(5, 9), np.array([9])]
    shards = [D.shard_batches(batches, rank, 2) for rank in range(2)]
    assert [len(s) for s in shards] == [3, 3]
    assert [s.indices.tolist() for s in shards[0]] == [[0, 2, 4], [5, 7], [9]]
    assert [s.indices.tolist() for s in shards[1]] == [[1, 3], [6, 8], [9]]
    assert [s.n_pad for s in shards[1]] == [0, 0, 1]
    assert [len(s) for s in shards[1]] == [2, 2, 0]
    assert [s.global_rows for s in shards[0]] == [5, 4, 1]


def test_rank_helpers_read_torchrun_environment(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.delenv("RANK", raising=False)
    assert not D.launched_distributed()
    assert D.is_main_process()
    assert D.get_world_size() == 1
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    assert D.launched_distributed()
    assert not D.is_main_process()
    # without a running group nothing is reduced or gathered
    assert D.broadcast_seed(7) == 7
    assert D.all_reduce_sum([1.5]) == [1.5]


def test_single_process_starts_no_group():
    device = D.start_process_group(torch.device("cpu"))
    assert device == torch.device("cpu")
    assert not torch.distributed.is_initialized()


def test_data_parallel_only_for_auto_with_several_gpus(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 3)
    cuda = torch.device("cuda")
    assert D.data_parallel_ids("auto", cuda) == [0, 1, 2]
    assert D.data_parallel_ids("cuda", cuda) is None
    assert D.data_parallel_ids("auto", torch.device("cpu")) is None
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert D.data_parallel_ids("auto", cuda) is None
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 3)
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert D.data_parallel_ids("auto", cuda) is None


if __name__ == "__main__":
    worker(sys.argv[1], json.loads(sys.argv[2]), sys.argv[3])
