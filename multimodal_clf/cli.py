"""The ``multimodal-clf`` command: train, predict and compare from the shell.

The command only parses options and calls the public API: the dataset loaders
of :mod:`multimodal_clf.datasets`, the estimators, and
:func:`multimodal_clf.research.compare`. Run ``multimodal-clf --help``.
"""

import argparse
import contextlib
import json
import logging
import math
import os
import sys
import tempfile
import textwrap
import warnings
from pathlib import Path

from multimodal_clf._aliases import (
    ALIASES,
    SpecError,
    parse_model,
    parse_model_paths,
)
from multimodal_clf._version import __version__

__all__ = ["build_parser", "main"]

logger = logging.getLogger(__name__)

#: Exit status of a run stopped with Ctrl-C, as shells report SIGINT.
EXIT_INTERRUPTED = 130
#: Exit status of a usage or input error.
EXIT_USAGE = 2

#: Dataset name -> (training split, evaluation split) of the published layouts.
DATASETS = {
    "hateful_memes": ("train", "dev_seen"),
    "snli_ve": ("train", "dev"),
    "vqa_v2": ("train", "val"),
    "clipart": ("train", "test"),
    "clipart_mini": ("train", "test"),
    "csv": (None, None),
}

_MODEL_HELP = (
    "A model is MODEL[:MODALITIES]. MODEL is an alias ({aliases}), a name given "
    "with --model-path, a Hugging Face hub id (owner/name) or a local folder; or "
    "a pair TEXT+IMAGE of a text encoder and an image encoder (minilm+dinov2). "
    "Text encoders become a TextClassifier; CLIP, FLAVA, ViLT and pairs a "
    "MultimodalClassifier. The suffix :text or :image trains a one-modality "
    "ablation of a multimodal model (clip:image, minilm+dinov2:image); no suffix "
    "reads both."
)


def _paragraphs(*texts):
    """Wrap each text to the terminal's usual width, a blank line between."""
    return "\n\n".join(textwrap.fill(text, 79) for text in texts)


class CommandError(Exception):
    """A problem with the command line or its inputs, reported in one line."""


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line on stderr and exit 2."""

    def error(self, message):
        self.exit(
            EXIT_USAGE,
            f"{self.prog}: error: {message} (see '{self.prog} --help')\n",
        )


# --------------------------------------------------------------------------
# Option types
# --------------------------------------------------------------------------


def _number(text, cast):
    """``cast(text)``, or None when ``text`` is not such a number."""
    try:
        return cast(text)
    except ValueError:
        return None


def _positive_int(text):
    value = _number(text, int)
    if value is None or value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}")
    return value


def _positive_float(text):
    value = _number(text, float)
    if value is None or not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}")
    return value


def _fraction(text):
    value = _number(text, float)
    if value is None or not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1), got {text!r}")
    return value


def _seeds(text):
    """``N`` is seeds 0..N-1; ``a,b,c`` lists them, and ``a,`` is seed ``a`` alone."""
    parts = text.split(",")
    if len(parts) > 1 and parts[-1] == "":
        parts = parts[:-1]
    values = [_number(part, int) for part in parts]
    if None in values:
        raise argparse.ArgumentTypeError(
            f"expected a count such as 3 or a list such as 0,1,2; got {text!r}"
        )
    if "," not in text:
        if values[0] < 1:
            raise argparse.ArgumentTypeError(
                f"the number of seeds must be >= 1, got {values[0]}"
            )
        return tuple(range(values[0]))
    if len(set(values)) != len(values):
        raise argparse.ArgumentTypeError(f"seeds must differ, got {text!r}")
    return tuple(values)


def _freeze(text):
    """A number of layers, or comma-separated towers / parameter prefixes."""
    if text.isdigit():
        return int(text)
    names = [part.strip() for part in text.split(",") if part.strip()]
    if not names:
        raise argparse.ArgumentTypeError(
            f"expected a number of layers or names such as image; got {text!r}"
        )
    return names


# --------------------------------------------------------------------------
# The parser
# --------------------------------------------------------------------------


def _add_model_options(parser):
    group = parser.add_argument_group("model")
    group.add_argument(
        "--model-path",
        action="append",
        metavar="ALIAS=FOLDER",
        help="use a local folder for an alias or a new name (repeatable); "
        "for machines without access to the model hub",
    )
    group.add_argument(
        "--epochs", type=_positive_int, default=3, help="passes over the data"
    )
    group.add_argument("--batch-size", type=_positive_int, default=16)
    group.add_argument(
        "--learning-rate", type=_positive_float, default=2e-5, help="of the backbone"
    )
    group.add_argument(
        "--head-learning-rate",
        type=_positive_float,
        help="of the head (default: --learning-rate, or 1e-3 with a frozen backbone)",
    )
    group.add_argument(
        "--freeze-backbone",
        action="store_true",
        help="train only the head; backbone features are computed once and cached",
    )
    group.add_argument(
        "--freeze",
        type=_freeze,
        metavar="PARTS",
        help="freeze part of the backbone: a number of layers, or comma-separated "
        "towers (text, image, joint) or parameter prefixes; a tower a model lacks is "
        "skipped for that model (so --freeze image leaves text models alone)",
    )
    group.add_argument(
        "--fusion",
        choices=("concat", "late", "product"),
        help="how text+image models combine text and image features (default: concat)",
    )
    group.add_argument(
        "--max-length", type=_positive_int, help="longest token sequence kept"
    )
    group.add_argument(
        "--class-weight",
        choices=("balanced",),
        help="weigh classes inversely to their frequency in the loss",
    )
    group.add_argument(
        "--device", default="auto", help="auto, cpu, cuda, cuda:N or mps"
    )


def _add_data_options(parser):
    group = parser.add_argument_group("data")
    group.add_argument(
        "--dataset",
        required=True,
        choices=tuple(DATASETS),
        help="hateful_memes (evaluated on dev_seen), snli_ve (dev), vqa_v2 (val), "
        "clipart (test), clipart_mini (bundled; test), csv (--train-file)",
    )
    group.add_argument(
        "--data-dir", help="the dataset's folder, in its published layout"
    )
    group.add_argument("--eval-split", help="evaluation split of a published dataset")
    group.add_argument(
        "--image-root",
        help="folder that relative image paths start from (csv), or the image "
        "folder (snli_ve, vqa_v2)",
    )
    group.add_argument("--train-file", help="csv: the training CSV")
    group.add_argument(
        "--eval-file",
        help="csv: the evaluation CSV; without it a stratified --eval-fraction "
        "of the training file is held out",
    )
    group.add_argument("--eval-fraction", type=_fraction, default=0.2)
    group.add_argument("--text-column", default="text")
    group.add_argument(
        "--image-column", default="image", help="'none' for a text-only CSV"
    )
    group.add_argument("--label-column", default="label")
    group.add_argument(
        "--top-k-answers",
        type=_positive_int,
        help="vqa_v2: how many of the most common answers are classes (default: 3129)",
    )
    group.add_argument(
        "--max-rows",
        type=_positive_int,
        help="keep at most this many training rows and evaluation rows "
        "(stratified), for quick runs",
    )
    group.add_argument(
        "--split-seed",
        type=int,
        default=0,
        help="seed of --max-rows and of the held-out fraction",
    )


def build_parser():
    """Return the argument parser of the ``multimodal-clf`` command.

    Returns
    -------
    argparse.ArgumentParser
    """
    aliases = ", ".join(f"{name} = {hub_id}" for name, (hub_id, _) in ALIASES.items())
    model_help = _MODEL_HELP.format(aliases=", ".join(ALIASES))
    parser = _Parser(
        prog="multimodal-clf",
        description="Train, apply and compare text and text+image classifiers.",
        epilog=f"Aliases: {aliases}.",
    )
    parser.add_argument("--version", action="version", version=__version__)
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="log progress messages"
    )
    parser.add_argument(
        "--traceback",
        action="store_true",
        help="show the full traceback of an error instead of one line",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    formatter = argparse.RawDescriptionHelpFormatter

    train = commands.add_parser(
        "train",
        help="fit one model, evaluate it, save it with its metrics",
        description=_paragraphs(
            "Fit one model on a dataset's training split, evaluate it on the "
            "evaluation split, and write OUTPUT/metrics.json (accuracy, f1, "
            "roc_auc, log_loss) and the fitted model to OUTPUT/model/.",
            model_help,
        ),
        epilog="example: multimodal-clf train --model clip --dataset hateful_memes "
        "--data-dir data/hateful_memes --epochs 5 --output runs/clip",
        formatter_class=formatter,
    )
    train.add_argument("--model", required=True, help="the model spec (see above)")
    train.add_argument("--output", required=True, help="run folder to write")
    train.add_argument(
        "--seed", type=int, default=0, help="random_state of the estimator"
    )
    train.add_argument(
        "--quiet", action="store_true", help="no progress bars and no summary"
    )
    _add_model_options(train)
    _add_data_options(train)

    predict = commands.add_parser(
        "predict",
        help="predict the labels of a CSV with a trained model",
        epilog="example: multimodal-clf predict --model-dir runs/clip --input "
        "new.csv --output predictions.csv",
        description="Read a CSV of texts and image paths, predict with a model "
        "saved by 'train', and write a CSV: the predicted label, then one "
        "probability column per class (proba_<class>). An 'id' column of the "
        "input is copied first.",
    )
    predict.add_argument(
        "--model-dir",
        required=True,
        help="the folder 'train' wrote (or its model/ subfolder)",
    )
    predict.add_argument("--input", required=True, help="CSV of rows to predict")
    predict.add_argument(
        "--output", required=True, help="CSV to write; '-' writes to stdout"
    )
    predict.add_argument("--text-column", default="text")
    predict.add_argument("--image-column", default="image")
    predict.add_argument(
        "--image-root",
        help="folder that relative image paths start from (default: the CSV's)",
    )
    predict.add_argument(
        "--batch-size", type=_positive_int, help="rows per forward pass"
    )
    predict.add_argument(
        "--device", help="auto, cpu, cuda, cuda:N or mps (default: as trained)"
    )

    compare = commands.add_parser(
        "compare",
        help="fit several models over several seeds; does the image help?",
        description=_paragraphs(
            "Fit every model with every seed on the same split, score it on the "
            "evaluation split, test the gain of each image or multimodal model "
            "over the best text model with a paired bootstrap, and write "
            "results.md, results.csv, summary.csv, results.json, chart.png and "
            "verdict.txt to OUTPUT. Ctrl-C stops after writing the finished runs "
            "(exit status 130).",
            model_help,
        ),
        epilog="example: multimodal-clf compare --models bert,clip,clip:image "
        "--dataset clipart --data-dir data/clipart --seeds 3 --output "
        "results/clipart",
        formatter_class=formatter,
    )
    compare.add_argument(
        "--models",
        required=True,
        help="comma-separated model specs, e.g. bert,clip,clip:image",
    )
    compare.add_argument("--output", required=True, help="folder for the report")
    compare.add_argument(
        "--seeds",
        type=_seeds,
        default=(0, 1, 2),
        help="number of seeds (3 is 0,1,2) or a comma-separated list (42, is seed "
        "42 alone)",
    )
    compare.add_argument(
        "--metric",
        choices=("auto", "accuracy", "f1", "roc_auc", "log_loss"),
        default="auto",
        help="primary metric; auto is roc_auc for two classes, accuracy for more",
    )
    compare.add_argument(
        "--n-resamples",
        type=_positive_int,
        default=1000,
        help="bootstrap resamples of each gain's interval",
    )
    compare.add_argument("--name", help="dataset name shown in the report")
    compare.add_argument("--quiet", action="store_true", help="no progress bars")
    _add_model_options(compare)
    _add_data_options(compare)
    return parser


# --------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------


def _freeze_for(spec, freeze):
    """The ``freeze`` value for one model: tower names it lacks are dropped."""
    if freeze is None or isinstance(freeze, int):
        return freeze
    towers = {"text", "image", "joint"}
    kept = [name for name in freeze if name not in towers or name in spec.towers()]
    if len(kept) < len(freeze):
        logger.info(
            "%s: --freeze skips %s (its towers: %s)",
            spec.name,
            ", ".join(sorted(set(freeze) - set(kept))),
            ", ".join(spec.towers()),
        )
    if not kept:
        return None
    return kept[0] if len(kept) == 1 else kept


def make_estimator(spec, args, *, verbose=1, random_state=None):
    """Build the unfitted estimator a model spec names, with the options.

    Parameters
    ----------
    spec : ModelSpec
    args : argparse.Namespace
        Parsed ``train`` or ``compare`` options.
    verbose : int, default=1
    random_state : int or None, default=None

    Returns
    -------
    TextClassifier or MultimodalClassifier
    """
    from multimodal_clf import MultimodalClassifier, TextClassifier

    params = dict(
        batch_size=args.batch_size,
        epochs=args.epochs,
        learning_rate=args.learning_rate,
        head_learning_rate=args.head_learning_rate,
        freeze_backbone=args.freeze_backbone,
        freeze=_freeze_for(spec, args.freeze),
        max_length=args.max_length,
        class_weight=args.class_weight,
        device=args.device,
        verbose=verbose,
        random_state=random_state,
    )
    if spec.is_text_only:
        return TextClassifier(spec.backbone, **params)
    return MultimodalClassifier(
        spec.backbone,
        fusion=args.fusion or "concat",
        modalities=spec.modalities,
        **params,
    )


def _parse_models(texts, args):
    """Model specs from the command line; every problem is reported at once."""
    paths = parse_model_paths(args.model_path)
    specs, problems = [], []
    for text in texts:
        try:
            specs.append(parse_model(text, paths))
        except SpecError as error:
            problems.append(str(error))
    if problems:
        raise CommandError(" ".join(problems))
    if args.fusion is not None and all(spec.is_text_only for spec in specs):
        names = ", ".join(spec.name for spec in specs)
        raise CommandError(
            f"--fusion applies to text+image models, and {names} "
            f"{'is' if len(specs) == 1 else 'are'} text-only; leave it out."
        )
    return specs


# --------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------


def _load_data(args):
    """Return ``(train, evaluation, evaluation split name)`` as DataFrames."""
    from multimodal_clf import datasets

    name = args.dataset
    if name == "csv":
        return _load_csv_data(args)
    for option in ("train_file", "eval_file"):
        if getattr(args, option):
            flag = "--" + option.replace("_", "-")
            raise CommandError(f"{flag} is for --dataset csv, not {name}.")
    if args.top_k_answers is not None and name != "vqa_v2":
        raise CommandError(f"--top-k-answers is for --dataset vqa_v2, not {name}.")
    if args.image_root and name not in ("snli_ve", "vqa_v2"):
        raise CommandError(
            f"--image-root does not apply to --dataset {name}: its images are "
            "found from --data-dir."
        )

    train_split, eval_split = DATASETS[name]
    eval_split = args.eval_split or eval_split
    if eval_split == train_split:
        logger.warning(
            "--eval-split %s is the training split: the scores are on the rows "
            "the models were fitted on and overstate how well they generalise.",
            eval_split,
        )
    if name == "clipart_mini":
        if args.data_dir:
            raise CommandError(
                "--dataset clipart_mini is bundled with the package and takes no "
                "--data-dir; use --dataset clipart for the full set."
            )
        return (
            datasets.load_clipart_mini(train_split),
            datasets.load_clipart_mini(eval_split),
            eval_split,
        )
    if not args.data_dir:
        raise CommandError(f"--dataset {name} needs --data-dir, its folder.")
    root = args.data_dir
    if name == "hateful_memes":
        train = datasets.load_hateful_memes(root, train_split)
        evaluation = datasets.load_hateful_memes(root, eval_split)
    elif name == "snli_ve":
        train = datasets.load_snli_ve(root, train_split, image_dir=args.image_root)
        evaluation = datasets.load_snli_ve(root, eval_split, image_dir=args.image_root)
    elif name == "vqa_v2":
        top_k = (
            {} if args.top_k_answers is None else {"top_k_answers": args.top_k_answers}
        )
        train = datasets.load_vqa_v2(
            root, train_split, image_dir=args.image_root, **top_k
        )
        evaluation = datasets.load_vqa_v2(
            root, eval_split, answers=train.attrs["answers"], image_dir=args.image_root
        )
    else:
        train = datasets.load_clipart(root, train_split)
        evaluation = datasets.load_clipart(root, eval_split)
    return train, evaluation, eval_split


def _load_csv_data(args):
    from multimodal_clf.datasets import load_csv

    if args.data_dir or args.eval_split:
        raise CommandError(
            "--dataset csv reads --train-file (and --eval-file), not --data-dir "
            "or --eval-split."
        )
    if not args.train_file:
        raise CommandError("--dataset csv needs --train-file FILE.")
    image_column = None if args.image_column.lower() == "none" else args.image_column
    options = dict(
        text_column=args.text_column,
        image_column=image_column,
        label_column=args.label_column,
        image_root=args.image_root,
    )
    train = load_csv(args.train_file, **options)
    if args.eval_file:
        return train, load_csv(args.eval_file, **options), Path(args.eval_file).name
    from sklearn.model_selection import train_test_split

    labels = _labels(train)
    try:
        fit_rows, eval_rows = train_test_split(
            range(len(train)),
            test_size=args.eval_fraction,
            stratify=labels,
            random_state=args.split_seed,
        )
    except ValueError as error:
        raise CommandError(
            f"cannot hold out a stratified {args.eval_fraction:g} of "
            f"{args.train_file} ({error}). Pass --eval-file, or change "
            "--eval-fraction."
        ) from None
    split = f"held-out {args.eval_fraction:g} of {Path(args.train_file).name}"
    return (
        train.iloc[sorted(fit_rows)].reset_index(drop=True),
        train.iloc[sorted(eval_rows)].reset_index(drop=True),
        split,
    )


def _labels(frame):
    """The label column as a NumPy array; nullable integers become int64."""
    import numpy as np

    if "label" not in frame:
        raise CommandError("the data has no label column; pass --label-column.")
    column = frame["label"]
    if column.isna().any():
        raise CommandError(
            f"{int(column.isna().sum())} row(s) have no label; training and "
            "evaluation need labelled rows (test splits of some datasets have "
            "none: pick another --eval-split)."
        )
    if str(column.dtype) in ("Int8", "Int16", "Int32", "Int64"):
        return column.astype("int64").to_numpy()
    return np.asarray(column.to_numpy())


def _subsample(frame, max_rows, seed, what):
    """At most ``max_rows`` rows, stratified by label when every class allows."""
    if max_rows is None or len(frame) <= max_rows:
        return frame
    from sklearn.model_selection import train_test_split

    labels = _labels(frame)
    try:
        keep, _ = train_test_split(
            range(len(frame)), train_size=max_rows, stratify=labels, random_state=seed
        )
    except ValueError:
        keep, _ = train_test_split(
            range(len(frame)), train_size=max_rows, random_state=seed
        )
    logger.info("--max-rows: kept %d of %d %s rows", max_rows, len(frame), what)
    return frame.iloc[sorted(keep)].reset_index(drop=True)


def _features(frame):
    """The input columns an estimator reads."""
    return frame[[c for c in ("text", "image") if c in frame.columns]]


def _prepare(args):
    """Load the data with ``--max-rows`` applied; log what was loaded."""
    train, evaluation, eval_split = _load_data(args)
    train = _subsample(train, args.max_rows, args.split_seed, "training")
    evaluation = _subsample(evaluation, args.max_rows, args.split_seed, "evaluation")
    logger.info(
        "%s: %d training rows, %d evaluation rows (%s)",
        args.dataset,
        len(train),
        len(evaluation),
        eval_split,
    )
    _check_eval_labels(train, evaluation, args)
    return train, evaluation, eval_split


def _check_eval_labels(train, evaluation, args):
    """Refuse, before any training, evaluation labels that training lacks."""
    seen = set(_labels(train).tolist())
    unseen = sorted({str(v) for v in _labels(evaluation).tolist() if v not in seen})
    if not unseen:
        return
    shown = ", ".join(unseen[:5])
    if len(unseen) > 5:
        shown += f" (and {len(unseen) - 5} more)"
    fix = (
        f"--max-rows {args.max_rows} kept too few training rows to hold every "
        "class: raise it"
        if args.max_rows is not None
        else "every evaluation label must appear in the training data"
    )
    raise CommandError(
        f"the evaluation split holds labels that the training split lacks: {shown}; "
        f"nothing was trained. A model cannot predict a class it never saw: {fix}."
    )


# --------------------------------------------------------------------------
# Output
# --------------------------------------------------------------------------


def _write_text(path, text):
    """Write ``text`` to ``path`` once (by rank 0 under ``torchrun``)."""
    from multimodal_clf.engine import _distributed as D

    D.on_main_process(f"writing {path}", _write_file, Path(path), text)


def _write_file(path, text):
    """Write ``text`` to ``path`` through a temporary file and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def evaluation_metrics(y_true, proba, classes):
    """Accuracy, F1, ROC AUC and log loss of predicted probabilities.

    Computed with :func:`multimodal_clf.research.score_probabilities`, so they
    mean the same as in a comparison report: F1 of ``classes[1]`` for two
    classes and macro F1 for more; ROC AUC one-vs-rest for more than two.

    Parameters
    ----------
    y_true : array-like of shape (n_rows,)
        True labels, each one of ``classes``.
    proba : ndarray of shape (n_rows, n_classes)
    classes : ndarray of shape (n_classes,)

    Returns
    -------
    dict of str to float or None
        None for ROC AUC when the evaluation rows lack a class.
    """
    import numpy as np

    from multimodal_clf.research import METRICS, score_probabilities

    index = {label: i for i, label in enumerate(np.asarray(classes).tolist())}
    values = np.asarray(y_true).tolist()
    unseen = sorted({str(v) for v in values if v not in index})
    if unseen:
        raise CommandError(
            f"the evaluation split holds labels never seen in training: "
            f"{', '.join(unseen[:5])}; every evaluation label must be a class."
        )
    encoded = np.array([index[v] for v in values])
    n_classes = len(index)
    metrics = {}
    for metric in METRICS:
        if metric == "roc_auc" and np.unique(encoded).size < n_classes:
            metrics[metric] = None
            continue
        metrics[metric] = score_probabilities(encoded, proba, metric, n_classes)
    return metrics


# --------------------------------------------------------------------------
# Commands
# --------------------------------------------------------------------------


def _output_folder(text):
    """Check ``--output`` before any training: a folder, existing or creatable."""
    output = Path(text).expanduser()
    if output.exists() and not output.is_dir():
        raise CommandError(f"--output {text} is a file; pass a folder for the results.")
    parent = output if output.exists() else output.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK):
        raise CommandError(
            f"--output {text} cannot be created: {parent} is not a writable folder."
        )
    return output


def _check_output_file(text):
    """Refuse, before any work, an ``--output`` file that cannot be written."""
    output = Path(text).expanduser()
    if output.is_dir():
        raise CommandError(
            f"--output {text} is a folder; pass a file path, or - for stdout."
        )
    parent = output.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK):
        raise CommandError(
            f"--output {text} cannot be written: {parent} is not a writable folder."
        )


def _train(args):
    from multimodal_clf.research import measure
    from multimodal_clf.research._report import _jsonable

    (spec,) = _parse_models([args.model], args)
    estimator = make_estimator(
        spec, args, verbose=0 if args.quiet else 1, random_state=args.seed
    )
    output = _output_folder(args.output)
    train, evaluation, eval_split = _prepare(args)

    fit = measure(estimator.fit, _features(train), _labels(train))
    interrupted = bool(getattr(estimator, "interrupted_", False))
    predict = measure(estimator.predict_proba, _features(evaluation))
    metrics = evaluation_metrics(
        _labels(evaluation), predict.result, estimator.classes_
    )

    record = {
        "model": spec.name,
        "estimator": type(estimator).__name__,
        "dataset": args.dataset,
        "eval_split": eval_split,
        "n_train": len(train),
        "n_eval": len(evaluation),
        "classes": estimator.classes_,
        "metrics": metrics,
        "fit_seconds": fit.wall_seconds,
        "predict_seconds": predict.wall_seconds,
        "peak_memory_mb": max(fit.peak_memory_bytes, predict.peak_memory_bytes) / 2**20,
        "memory_kind": fit.memory_kind,
        "epochs_run": getattr(estimator, "n_iter_", None),
        "interrupted": interrupted,
        "params": estimator.get_params(deep=False),
        "command": ["multimodal-clf", *sys.argv[1:]],
    }
    _write_text(
        output / "metrics.json",
        json.dumps(_jsonable(record), indent=2, allow_nan=False) + "\n",
    )
    saved = _save_model(estimator, output / "model")
    if not args.quiet:
        shown = "  ".join(
            f"{name} {value:.4f}"
            for name, value in metrics.items()
            if value is not None
        )
        print(
            f"{spec.name} on {args.dataset} {eval_split} ({len(evaluation)} rows): "
            f"{shown}"
        )
        print(f"metrics: {output / 'metrics.json'}")
        if saved:
            print(f"model: {output / 'model'}")
    if interrupted:
        print(
            "interrupted: the model keeps the weights reached so far.", file=sys.stderr
        )
        return EXIT_INTERRUPTED
    return 0


def _save_model(estimator, folder):
    """Save a fitted estimator with its own ``save``; False when it has none."""
    save = getattr(estimator, "save", None)
    if save is None:
        print(
            f"warning: model not saved: {type(estimator).__name__} has no save() "
            "in this version of multimodal-clf; the metrics were written.",
            file=sys.stderr,
        )
        return False
    save(folder)
    return True


def _predict(args):
    import multimodal_clf
    from multimodal_clf.datasets import load_csv

    load = getattr(multimodal_clf, "load", None)
    if load is None:
        raise CommandError(
            "this version of multimodal-clf cannot load saved models "
            "(multimodal_clf.load is missing); upgrade the package."
        )
    folder = Path(args.model_dir)
    if not folder.is_dir():
        raise CommandError(f"--model-dir {args.model_dir}: folder does not exist.")
    if args.output != "-":
        _check_output_file(args.output)
    if (folder / "model").is_dir():
        folder = folder / "model"
    # The device is chosen at load time, which also drops fp16 off CUDA.
    estimator = load(folder, device=args.device)
    if args.batch_size is not None:
        estimator.set_params(batch_size=args.batch_size)

    modalities = tuple(estimator.get_params(deep=False).get("modalities", ("text",)))
    if "image" in modalities and args.image_column.lower() == "none":
        raise CommandError(
            f"the model in {args.model_dir} reads images ({', '.join(modalities)}), "
            "so --image-column cannot be none: name the column of image paths."
        )
    frame = load_csv(
        args.input,
        text_column=args.text_column if "text" in modalities else None,
        image_column=args.image_column if "image" in modalities else None,
        label_column=None,
        image_root=args.image_root,
    )
    proba = estimator.predict_proba(_features(frame))

    import pandas as pd

    out = pd.DataFrame(index=range(len(frame)))
    if "id" in frame.columns:
        out["id"] = frame["id"].to_numpy()
    out["prediction"] = estimator.classes_[proba.argmax(axis=1)]
    for column, label in enumerate(estimator.classes_.tolist()):
        out[f"proba_{label}"] = proba[:, column]
    if args.output == "-":
        out.to_csv(sys.stdout, index=False)
    else:
        _write_text(args.output, out.to_csv(index=False))
        print(f"wrote {len(out)} predictions to {args.output}", file=sys.stderr)
    return 0


def _compare(args):
    from multimodal_clf.research import compare

    texts = [text for text in args.models.split(",") if text.strip()]
    if not texts:
        raise CommandError("--models is empty; name at least one model.")
    specs = _parse_models(texts, args)
    names = [spec.name for spec in specs]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise CommandError(f"--models names {', '.join(repeated)} more than once.")
    verbose = 0 if args.quiet else 1
    models = {spec.name: make_estimator(spec, args, verbose=verbose) for spec in specs}
    output = _output_folder(args.output)
    train, evaluation, eval_split = _prepare(args)

    result = compare(
        models,
        _features(train),
        _labels(train),
        _features(evaluation),
        _labels(evaluation),
        seeds=args.seeds,
        metric=args.metric,
        n_resamples=args.n_resamples,
        output_dir=output,
        dataset_name=args.name or args.dataset,
        verbose=verbose,
    )
    _write_text(output / "verdict.txt", result.verdict + "\n")
    print(result.to_markdown())
    print(result.verdict)
    if result.interrupted:
        print(
            f"interrupted: {len(result.runs)} of {result.n_runs_planned} runs "
            f"finished; the report in {output} covers them.",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
    return 0


_COMMANDS = {"train": _train, "predict": _predict, "compare": _compare}


def _configure_logging(verbose):
    """Warnings and errors on stderr; progress messages with ``-v``."""
    logging.basicConfig(format="%(levelname)s: %(message)s", level=logging.WARNING)
    logging.getLogger("multimodal_clf").setLevel(
        logging.INFO if verbose else logging.WARNING
    )
    # Loading a checkpoint without its classification head is the normal case
    # here, and without network the hub client logs every retry before the
    # error that the library reports anyway: both are noise on a command line.
    # Each package sets its own logger's level when imported, hence their calls.
    from huggingface_hub.utils import logging as hub_logging
    from transformers.utils import logging as transformers_logging

    hub_logging.set_verbosity_error()
    transformers_logging.set_verbosity_error()
    # Warnings become log lines of their own: "WARNING: UserWarning: ...",
    # without the source file and line of code that Python's format adds.
    logging.captureWarnings(True)
    warnings.formatwarning = _format_warning


def _format_warning(message, category, filename, lineno, line=None):
    return f"{category.__name__}: {message}"


@contextlib.contextmanager
def _output_on_main_rank():
    """Under ``torchrun``, let rank 0 alone print the command's output.

    Every rank runs the command on the same data and would print the same
    tables, messages, warnings and log lines. Errors are still printed by every
    rank.
    """
    from multimodal_clf.engine import _distributed as D

    if D.is_main_process() or not D.launched_distributed():
        yield
        return
    with open(os.devnull, "w", encoding="utf-8") as sink:
        with (
            D.quiet_on_other_ranks(),
            contextlib.redirect_stdout(sink),
            contextlib.redirect_stderr(sink),
        ):
            yield


def main(argv=None):
    """Run the ``multimodal-clf`` command.

    Parameters
    ----------
    argv : list of str, default=None
        The arguments after the program name; None reads ``sys.argv``.

    Returns
    -------
    int
        The exit status: 0 on success, 2 for a usage or input error, 130 when
        interrupted with Ctrl-C.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    _configure_logging(args.verbose)
    try:
        with _output_on_main_rank():
            return _COMMANDS[args.command](args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (CommandError, SpecError, ValueError, OSError) as error:
        if args.traceback:
            raise
        message = str(error) or type(error).__name__
        if isinstance(error, OSError) and "Hugging Face hub" in message:
            message += (
                " Without access to the hub, map the model to a local folder "
                "with --model-path NAME=FOLDER."
            )
        print(f"multimodal-clf {args.command}: error: {message}", file=sys.stderr)
        return EXIT_USAGE
