"""What ``verbose`` prints: bars on a terminal, one line per event everywhere."""

import io
import re

import pytest

import multimodal_clf
from multimodal_clf import MultimodalClassifier, TextClassifier
from multimodal_clf.engine import _progress
from multimodal_clf.engine._progress import Progress, interactive
from multimodal_clf.research import compare

EPOCH_LINE = re.compile(r"^epoch (\d)/3: train_loss=\d+\.\d{4} \(\d+\.\d s\)$")


@pytest.fixture(autouse=True)
def empty_cache():
    multimodal_clf.clear_feature_cache()
    yield
    multimodal_clf.clear_feature_cache()


class Terminal(io.StringIO):
    def isatty(self):
        if self.closed:  # as a closed file does
            raise ValueError("I/O operation on closed file")
        return True


def test_interactive_only_on_a_terminal():
    assert interactive(Terminal())
    assert not interactive(io.StringIO())
    closed = Terminal()
    closed.close()
    assert not interactive(closed)


def test_a_fit_in_a_log_prints_one_line_per_epoch(bert, text_data, capsys):
    X, y = text_data
    TextClassifier(bert, epochs=3, batch_size=4, device="cpu", verbose=1).fit(X, y)
    err = capsys.readouterr().err
    # stderr is not a terminal here: no bar redraws, only the epoch lines.
    assert "\r" not in err
    lines = err.splitlines()
    assert [EPOCH_LINE.match(line).group(1) for line in lines] == ["1", "2", "3"]


def test_verbose_zero_prints_nothing(pair, pair_data, capsys):
    X, y = pair_data
    MultimodalClassifier(pair, freeze="image", epochs=1, device="cpu", verbose=0).fit(
        X, y
    ).predict(X)
    assert capsys.readouterr().err == ""


def test_early_stopping_and_validation_are_reported(bert, text_data, capsys):
    X, y = text_data
    clf = TextClassifier(
        bert,
        epochs=30,
        learning_rate=1e-9,
        head_learning_rate=1e-9,
        early_stopping=True,
        validation_fraction=0.25,
        patience=1,
        device="cpu",
        random_state=0,
    ).fit(X, y)
    lines = capsys.readouterr().err.splitlines()
    # A learning rate this small cannot lower the validation loss twice running.
    assert len(clf.history_) < 30
    assert len(lines) == len(clf.history_) + 1
    assert all(
        "valid_loss=" in line and "valid_accuracy=" in line for line in lines[:-1]
    )
    assert lines[-1].startswith(f"early stopping after epoch {len(clf.history_)}: ")


def test_frozen_features_print_a_line_when_computed(pair, pair_data, capsys):
    X, y = pair_data
    params = dict(freeze="image", epochs=1, device="cpu", verbose=1)
    clf = MultimodalClassifier(pair, **params).fit(X, y)
    lines = capsys.readouterr().err.splitlines()
    assert re.fullmatch(r"image features: 8 rows \(\d+\.\d s\)", lines[0])
    assert lines[1].startswith("epoch 1/1: ")

    # From the cache: nothing computed, nothing printed about features.
    MultimodalClassifier(pair, **params).fit(X, y)
    clf.predict(X[:3])
    err = capsys.readouterr().err
    assert "features" not in err
    assert err.startswith("epoch 1/1: ")


def test_on_a_terminal_the_bar_is_drawn_and_removed(monkeypatch):
    terminal = Terminal()
    monkeypatch.setattr("sys.stderr", terminal)
    monkeypatch.setattr(_progress, "interactive", lambda stream=None: True)
    bar = Progress(range(3), desc="epoch 1/1", unit="step")
    assert bar.live
    assert list(bar) == [0, 1, 2]
    bar.close(summary="3 steps")
    drawn, _, line = terminal.getvalue().rpartition("\r")
    assert "epoch 1/1" in drawn  # the bar, redrawn in place with carriage returns
    assert re.fullmatch(r"\s*epoch 1/1: 3 steps \(\d+\.\d s\)\n", line)


def test_a_disabled_progress_prints_nothing(capsys):
    bar = Progress(range(2), desc="x", enabled=False)
    list(bar)
    bar.close(summary="done")
    assert capsys.readouterr().err == ""


def test_compare_prints_a_line_per_run(bert, text_data, capsys):
    X, y = text_data
    model = TextClassifier(bert, epochs=1, device="cpu", verbose=0)
    compare({"bert": model}, X, y, X, y, seeds=(0, 1), n_resamples=10, verbose=1)
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 2
    for number, line in enumerate(lines, start=1):
        assert re.fullmatch(
            rf"compare {number}/2: bert, seed {number - 1}: "
            r"roc_auc=\d\.\d{4}, fit \d+\.\d s",
            line,
        )
