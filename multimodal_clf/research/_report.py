"""The result of a comparison, and its Markdown, CSV, JSON and chart files."""

import json
import logging
import math
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from multimodal_clf.engine import _distributed as D

__all__ = ["Comparison"]

logger = logging.getLogger(__name__)

#: Bar colour of each kind of model in the chart.
KIND_COLOURS = {"text": "tab:blue", "image": "tab:orange", "multimodal": "tab:green"}

# Summary columns shown in the Markdown table: (column stem, header, format).
_TABLE_COLUMNS = (
    ("accuracy", "accuracy", ".3f"),
    ("f1", "f1", ".3f"),
    ("roc_auc", "roc_auc", ".3f"),
    ("log_loss", "log_loss", ".3f"),
    ("fit_seconds", "fit (s)", "auto"),
    ("fit_samples_per_s", "fit rows/s", "auto"),
    ("predict_samples_per_s", "predict rows/s", "auto"),
    ("peak_memory_mb", "peak memory (MiB)", ".1f"),
)


@dataclass
class Comparison:
    """Results of :func:`compare`: per-seed runs, summary, gains and verdict.

    Attributes
    ----------
    dataset_name : str
        Name of the dataset, used in the verdict and the report title.
    metric : str
        The primary metric: the one used to pick the best text model, to
        compute the gains and to draw the chart.
    classes : list
        Labels of the probability columns, in order.
    runs : pandas.DataFrame
        One row per finished (model, seed) run: metrics, times and memory.
    summary : pandas.DataFrame
        One row per model: ``<column>_mean`` and ``<column>_std`` over seeds
        (sample standard deviation, NaN with a single seed).
    gains : list of dict
        For each image or multimodal model, its difference with the best text
        model on the primary metric, with the paired-bootstrap interval and the
        time and memory ratios.
    verdict : str
        One line saying whether the image helps, and at what cost.
    interrupted : bool
        True when the comparison was stopped early (KeyboardInterrupt) and only
        the finished runs are reported.
    probabilities : dict of str to ndarray
        Per model, test probabilities of shape (n_finished_seeds, n_test,
        n_classes), seeds in the order of ``runs``.
    n_runs_planned : int
        Number of (model, seed) runs requested.
    """

    dataset_name: str
    metric: str
    classes: list
    runs: pd.DataFrame
    summary: pd.DataFrame
    gains: list = field(default_factory=list)
    verdict: str = ""
    interrupted: bool = False
    probabilities: dict = field(default_factory=dict, repr=False)
    n_runs_planned: int = 0

    def __repr__(self):
        state = ", interrupted" if self.interrupted else ""
        return (
            f"Comparison({self.dataset_name!r}, {len(self.summary)} models, "
            f"{len(self.runs)} runs{state}: {self.verdict!r})"
        )

    def to_markdown(self):
        """Return the report as Markdown: summary table, gains and verdict.

        Returns
        -------
        text : str
            A Markdown document.
        """
        lines = [f"# {self.dataset_name}", ""]
        if self.interrupted:
            lines += [
                f"Interrupted: {len(self.runs)} of {self.n_runs_planned} runs "
                "finished.",
                "",
            ]
        lines += [f"**Verdict:** {self.verdict}", ""]
        lines += [
            f"Primary metric: {self.metric}. Values are mean ± standard deviation "
            "over seeds.",
            "",
        ]
        lines += _summary_table(self.summary)
        if self.gains:
            lines += ["", "## Gain over the best text model", ""]
            lines += _gains_table(self.gains)
        return "\n".join(lines) + "\n"

    def to_dict(self):
        """Return everything as plain Python objects that JSON can encode.

        NaN and infinite values become None.

        Returns
        -------
        data : dict
        """
        return _jsonable(
            {
                "dataset_name": self.dataset_name,
                "metric": self.metric,
                "classes": list(self.classes),
                "interrupted": self.interrupted,
                "n_runs_planned": self.n_runs_planned,
                "n_runs_finished": len(self.runs),
                "verdict": self.verdict,
                "gains": self.gains,
                "summary": self.summary.to_dict(orient="records"),
                "runs": self.runs.to_dict(orient="records"),
            }
        )

    def save(self, output_dir):
        """Write the report files into ``output_dir``, replacing earlier ones.

        Files: ``results.md`` (:meth:`to_markdown`), ``results.csv`` (the
        per-seed runs), ``summary.csv``, ``results.json`` (:meth:`to_dict`) and
        ``chart.png`` (primary metric per model). Each file is written to a
        temporary name then renamed, so that an interruption never leaves a
        half-written file. Under ``torchrun`` rank 0 writes them; the other
        ranks wait for it.

        Parameters
        ----------
        output_dir : str or path-like
            Directory to write into; created if missing.

        Returns
        -------
        output_dir : pathlib.Path
        """
        output_dir = Path(output_dir)
        D.on_main_process(
            f"writing the report to {output_dir}", self._write, output_dir
        )
        return output_dir

    def _write(self, output_dir):
        output_dir.mkdir(parents=True, exist_ok=True)
        _write_atomic(output_dir / "results.md", self.to_markdown().encode())
        _write_atomic(
            output_dir / "results.csv", self.runs.to_csv(index=False).encode()
        )
        _write_atomic(
            output_dir / "summary.csv", self.summary.to_csv(index=False).encode()
        )
        text = json.dumps(self.to_dict(), indent=2, allow_nan=False)
        _write_atomic(output_dir / "results.json", (text + "\n").encode())
        _write_atomic(output_dir / "chart.png", self._chart_png())
        logger.debug("wrote comparison files to %s", output_dir)

    def _chart_png(self):
        """Bar chart of the primary metric per model, as PNG bytes."""
        # The Figure API renders with Agg without touching pyplot's global state.
        from io import BytesIO

        from matplotlib.figure import Figure
        from matplotlib.patches import Patch

        summary = self.summary
        names = summary["model"].tolist() if len(summary) else []
        means = summary.get(f"{self.metric}_mean", pd.Series(dtype=float))
        stds = summary.get(f"{self.metric}_std", pd.Series(dtype=float))
        kinds = summary["kind"].tolist() if len(summary) else []

        fig = Figure(figsize=(max(4.0, 1.2 * len(names) + 2), 4), layout="tight")
        ax = fig.add_subplot()
        positions = np.arange(len(names))
        bars = ax.bar(
            positions,
            np.nan_to_num(means.to_numpy(dtype=float)),
            yerr=np.nan_to_num(stds.to_numpy(dtype=float)),
            capsize=4,
            color=[KIND_COLOURS.get(kind, "tab:gray") for kind in kinds],
        )
        ax.bar_label(bars, fmt="%.3f", label_type="center", color="white")
        ax.set_xticks(positions, names, rotation=30, ha="right")
        ax.set_ylabel(f"{self.metric} (mean ± std over seeds)")
        ax.set_title(self.dataset_name)
        present = [kind for kind in KIND_COLOURS if kind in kinds]
        if present:
            ax.legend(
                handles=[Patch(color=KIND_COLOURS[k], label=k) for k in present],
                loc="upper left",
                bbox_to_anchor=(1.0, 1.0),
            )
        buffer = BytesIO()
        fig.savefig(buffer, format="png", dpi=100)
        return buffer.getvalue()


def _write_atomic(path, data):
    """Write ``data`` to ``path`` through a temporary file and a rename."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _jsonable(value):
    """Convert NumPy scalars and containers to JSON types; NaN becomes None,
    paths become strings and anything else its ``repr``."""
    if isinstance(value, dict):
        return {str(key): _jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(item) for item in value]
    if isinstance(value, np.ndarray):
        return [_jsonable(item) for item in value.tolist()]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return repr(value)


def _format(value, spec):
    """Format a number; ``spec="auto"`` keeps three significant digits below
    100 and whole numbers with thousands separators above."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if spec == "auto":
        spec = ",.0f" if abs(value) >= 100 else ".3g"
    return format(value, spec)


def _format_p_value(p_value, n_resamples):
    # A p-value of zero only says that fewer than one resample in n crossed
    # zero; the two-sided p-value doubles that fraction, so it is below 2 / n.
    if p_value == 0 and n_resamples:
        return f"< {2 / n_resamples:.2g}"
    return _format(p_value, ".3f")


def _format_ratio(value):
    text = _format(value, ".2f")
    return text if text == "n/a" else f"{text}x"


def _mean_std(row, stem, spec):
    mean = row.get(f"{stem}_mean", float("nan"))
    std = row.get(f"{stem}_std", float("nan"))
    if isinstance(std, float) and math.isnan(std):
        return _format(mean, spec)
    return f"{_format(mean, spec)} ± {_format(std, spec)}"


def _markdown_rows(header, rows):
    lines = ["| " + " | ".join(header) + " |"]
    lines.append("|" + "|".join("---" for _ in header) + "|")
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def _summary_table(summary):
    header = ["model", "kind", "seeds"] + [title for _, title, _ in _TABLE_COLUMNS]
    rows = []
    for row in summary.to_dict(orient="records"):
        cells = [str(row["model"]), str(row["kind"]), str(row["n_seeds"])]
        cells += [_mean_std(row, stem, spec) for stem, _, spec in _TABLE_COLUMNS]
        rows.append(cells)
    return _markdown_rows(header, rows)


def _gains_table(gains):
    header = [
        "model",
        "vs text model",
        "metric",
        "gain",
        "interval",
        "p",
        "fit time",
        "peak memory",
    ]
    rows = []
    for gain in gains:
        level = f"{gain['confidence']:.0%}"
        rows.append(
            [
                str(gain["model"]),
                str(gain["baseline"]),
                gain["metric"],
                _format(gain["delta"], "+.3f"),
                f"{level} [{_format(gain['low'], '.3f')}, "
                f"{_format(gain['high'], '.3f')}]",
                _format_p_value(gain["p_value"], gain["n_resamples"]),
                _format_ratio(gain["time_ratio"]),
                _format_ratio(gain["memory_ratio"]),
            ]
        )
    return _markdown_rows(header, rows)
