"""TextClassifier against the Hugging Face Trainer and pipeline on clip-art titles.

Fit: ``TextClassifier.fit`` against ``transformers.Trainer`` on
``AutoModelForSequenceClassification`` (its defaults, with the same epochs, batch
size, learning rate and seed; ``report_to=[]``, no saving, ``use_cpu=True``), and
against the common recipe that pads every text to ``max_length=512``. Each run is
a fresh process and measures wall time from raw texts to a fitted model (loading
included), samples/s (rows x epochs / wall), peak RSS and test accuracy.

Predict: ``predict_proba`` against ``transformers.pipeline("text-classification")``
on the same fitted weights: our fitted model is saved as a Hugging Face folder
(encoder + our pooling head, a ``PreTrainedModel``) whose pipeline outputs are
checked equal to ``predict_proba``.

Run from the repository root::

    PYTHONPATH=$PWD python benchmarks/perf_text.py --rows 640 --epochs 1
"""

import argparse
import pickle
import tempfile
from pathlib import Path

import numpy as np

try:
    from benchmarks import _harness as H
except ImportError:  # run as a script
    import _harness as H

SCRIPT = Path(__file__).resolve()


# --- data -----------------------------------------------------------------------
def load_split(config):
    """(train texts, train labels, test texts, test labels) for a config."""
    from multimodal_clf.datasets import load_clipart

    frame = load_clipart(config["data"])
    train = frame[frame["split"] == "train"]
    train = train.sample(n=min(config["rows"], len(train)), random_state=config["seed"])
    test = frame[frame["split"] == "test"].head(config["test_rows"])
    return (
        train["text"].tolist(),
        train["label"].tolist(),
        test["text"].tolist(),
        test["label"].tolist(),
    )


# --- fit contenders ---------------------------------------------------------------
def warm_imports():
    """Import the model and tokenizer code up front, so timers start equal.

    transformers imports model code lazily on first use; without this, whichever
    contender imports it inside its timer pays a few seconds the other does not.
    """
    import transformers.models.bert.modeling_bert  # noqa: F401
    from transformers import AutoConfig, AutoModel, AutoTokenizer  # noqa: F401


ABLATIONS = {
    "whole-table": "all token-embedding rows trained",
    "unfused": "AdamW without the fused kernel",
    "random-batches": "random batches, not grouped by length",
}


def ablate(name):
    """Switch one speed-up off, to measure what it buys."""
    import contextlib

    import torch

    import multimodal_clf._estimator as estimator_module
    from multimodal_clf.engine import Trainer

    if name == "whole-table":
        estimator_module.train_used_embeddings = lambda *args: contextlib.nullcontext()
    elif name == "unfused":
        configure = Trainer.configure_optimizer

        def unfused(trainer):
            groups = configure(trainer).param_groups
            keep = ("params", "lr", "weight_decay")
            return torch.optim.AdamW(
                [{k: g[k] for k in keep} for g in groups], foreach=False
            )

        Trainer.configure_optimizer = unfused
    elif name == "random-batches":

        def random_batches(trainer, data, epoch):
            order = torch.randperm(len(data), generator=trainer.generator).numpy()
            size = trainer.batch_size
            step = size * trainer.gradient_accumulation_steps
            return [
                [order[j : j + size] for j in range(i, min(i + step, len(order)), size)]
                for i in range(0, len(order), step)
            ]

        Trainer.train_batches = random_batches


def fit_ours(config):
    from multimodal_clf import TextClassifier

    warm_imports()
    if config.get("ablate"):
        ablate(config["ablate"])
    texts, labels, test_texts, test_labels = load_split(config)
    clock = H.Clock()
    clf = TextClassifier(
        H.minilm_path(),
        epochs=config["epochs"],
        batch_size=config["batch_size"],
        learning_rate=config["learning_rate"],
        random_state=config["seed"],
        device="cpu",
        verbose=0,
    )
    clf.fit(texts, labels)
    clock.stop()
    peak = H.peak_rss_mib()
    accuracy = clf.score(test_texts, test_labels) if test_texts else None
    if config.get("save"):
        Path(config["save"]).write_bytes(pickle.dumps(clf))
    return _fit_record(config, len(texts), clock, peak, accuracy)


def fit_trainer(config):
    import torch
    from transformers import (
        AutoModelForSequenceClassification,
        AutoTokenizer,
        Trainer,
        TrainingArguments,
        set_seed,
    )

    warm_imports()
    texts, labels, test_texts, test_labels = load_split(config)
    classes = sorted(set(labels))
    label_ids = {label: i for i, label in enumerate(classes)}
    padding = {"padding": "max_length", "max_length": 512} if config["pad"] else {}
    clock = H.Clock()
    set_seed(config["seed"])
    tokenizer = AutoTokenizer.from_pretrained(H.minilm_path())
    model = AutoModelForSequenceClassification.from_pretrained(
        H.minilm_path(), num_labels=len(classes)
    )

    def dataset(texts, labels):
        encoded = tokenizer(texts, truncation=True, **padding)
        return [
            {**{k: v[i] for k, v in encoded.items()}, "labels": label_ids[label]}
            for i, label in enumerate(labels)
        ]

    with tempfile.TemporaryDirectory() as out:
        args = TrainingArguments(
            output_dir=out,
            num_train_epochs=config["epochs"],
            per_device_train_batch_size=config["batch_size"],
            per_device_eval_batch_size=config["batch_size"],
            learning_rate=config["learning_rate"],
            seed=config["seed"],
            report_to=[],
            save_strategy="no",
            use_cpu=True,
            disable_tqdm=True,
        )
        trainer = Trainer(
            model=model,
            args=args,
            train_dataset=dataset(texts, labels),
            processing_class=tokenizer,
        )
        trainer.train()
        clock.stop()
        peak = H.peak_rss_mib()
        accuracy = None
        if test_texts:
            with torch.inference_mode():
                logits = trainer.predict(dataset(test_texts, test_labels)).predictions
            truth = np.array([label_ids[label] for label in test_labels])
            accuracy = float((logits.argmax(1) == truth).mean())
    return _fit_record(config, len(texts), clock, peak, accuracy)


def _fit_record(config, n_rows, clock, peak, accuracy):
    return {
        "fit_s": clock.wall,
        "samples_per_s": n_rows * config["epochs"] / clock.wall,
        "fit_cpu_s": clock.cpu,
        "samples_per_cpu_s": n_rows * config["epochs"] / clock.cpu,
        "peak_rss_mib": peak,
        "accuracy": accuracy,
        "rows": n_rows,
    }


# --- predict contenders --------------------------------------------------------
def _mean_pool_class():
    """A ``PreTrainedModel`` computing exactly what our fitted text model computes."""
    from torch import nn
    from transformers import BertModel, BertPreTrainedModel
    from transformers.modeling_outputs import SequenceClassifierOutput

    class MeanPoolBertForSequenceClassification(BertPreTrainedModel):
        def __init__(self, config):
            super().__init__(config)
            self.bert = BertModel(config, add_pooling_layer=False)
            self.norm = nn.LayerNorm(config.hidden_size)
            self.classifier = nn.Linear(config.hidden_size, config.num_labels)
            self.post_init()

        def forward(self, input_ids=None, attention_mask=None, **kwargs):
            states = self.bert(
                input_ids=input_ids, attention_mask=attention_mask
            ).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(states.dtype)
            pooled = (states * mask).sum(1) / mask.sum(1).clamp(min=1.0)
            return SequenceClassifierOutput(logits=self.classifier(self.norm(pooled)))

    return MeanPoolBertForSequenceClassification


def export_for_pipeline(clf, folder):
    """Save a fitted TextClassifier as a Hugging Face folder with the same weights."""
    import torch

    encoder = clf.model_.backbone.encoder
    config = encoder.config
    config.num_labels = len(clf.classes_)
    config.id2label = {i: str(c) for i, c in enumerate(clf.classes_)}
    config.label2id = {str(c): i for i, c in enumerate(clf.classes_)}
    model = _mean_pool_class()(config)
    head = clf.model_.head
    with torch.no_grad():
        model.bert.load_state_dict(encoder.state_dict(), strict=False)
        model.norm.load_state_dict(head.norms["text"].state_dict())
        model.classifier.load_state_dict(head.mlp[-1].state_dict())
    model.save_pretrained(folder)
    clf.tokenizer_.save_pretrained(folder)


def predict_texts(config):
    from multimodal_clf.datasets import load_clipart

    frame = load_clipart(config["data"])
    return frame["text"].tolist()[: config["predict_rows"]]


def predict_ours(config):
    clf = pickle.loads(Path(config["model"]).read_bytes())
    texts = predict_texts(config)
    clf.predict_proba(texts[:8])
    clock = H.Clock()
    proba = clf.predict_proba(texts)
    clock.stop()
    np.save(config["out"], proba)
    return _predict_record(len(texts), clock)


def predict_pipeline(config):
    from transformers import AutoTokenizer, pipeline

    model = _mean_pool_class().from_pretrained(config["folder"])
    tokenizer = AutoTokenizer.from_pretrained(config["folder"])
    pipe = pipeline("text-classification", model=model, tokenizer=tokenizer, device=-1)
    kwargs = {"top_k": None}
    if config["batch_size"]:
        kwargs["batch_size"] = config["batch_size"]
    texts = predict_texts(config)
    pipe(texts[:8], **kwargs)
    clock = H.Clock()
    out = pipe(texts, **kwargs)
    clock.stop()
    labels = [model.config.id2label[i] for i in range(model.config.num_labels)]
    proba = np.array(
        [[{d["label"]: d["score"] for d in row}[c] for c in labels] for row in out]
    )
    np.save(config["out"], proba)
    return _predict_record(len(texts), clock)


def _predict_record(n_rows, clock):
    return {
        "predict_s": clock.wall,
        "samples_per_s": n_rows / clock.wall,
        "predict_cpu_s": clock.cpu,
        "samples_per_cpu_s": n_rows / clock.cpu,
    }


WORKERS = {
    "fit-ours": fit_ours,
    "fit-trainer": fit_trainer,
    "predict-ours": predict_ours,
    "predict-pipeline": predict_pipeline,
}


# --- the benchmark ---------------------------------------------------------------
def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=640, help="training rows")
    parser.add_argument("--test-rows", type=int, default=403, help="test rows")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--learning-rate", type=float, default=5e-5)
    parser.add_argument(
        "--pad-rows",
        type=int,
        default=64,
        help="training rows for the pad-to-512 recipe (0 skips it)",
    )
    parser.add_argument(
        "--predict-rows", type=int, default=2013, help="texts to predict"
    )
    parser.add_argument(
        "--ablations",
        default="",
        help="comma-separated speed-ups to switch off in extra runs: "
        + ", ".join(ABLATIONS),
    )
    parser.add_argument("--skip-fit", action="store_true")
    parser.add_argument("--skip-predict", action="store_true")
    return H.common_arguments(parser).parse_args(argv)


def run_fit(args):
    base = {
        "data": args.data,
        "rows": args.rows,
        "test_rows": args.test_rows,
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "learning_rate": args.learning_rate,
        "seed": args.seed,
    }
    contenders = {
        "TextClassifier": ("fit-ours", base),
        "Trainer (dynamic padding)": ("fit-trainer", {**base, "pad": False}),
    }
    if args.pad_rows:
        small = {**base, "rows": args.pad_rows, "test_rows": 0, "pad": True}
        contenders["Trainer (pad to 512)"] = ("fit-trainer", small)
    for name in args.ablations.split(",") if args.ablations else []:
        label = f"TextClassifier, {ABLATIONS[name]}"
        contenders[label] = ("fit-ours", {**base, "ablate": name})
    runs = H.interleaved(
        SCRIPT,
        contenders,
        repeats=args.repeats,
        threads=args.threads,
        timeout=args.timeout,
    )
    ours = runs["TextClassifier"]
    rows = []
    for name, results in runs.items():
        accuracy = (
            H.median(results, "accuracy")
            if results[0]["accuracy"] is not None
            else None
        )
        rows.append(
            [
                name,
                results[0]["rows"],
                f"{H.median(results, 'samples_per_s'):.2f}",
                f"{H.median(results, 'fit_s'):.1f} ({H.spread(results, 'fit_s')})",
                f"{H.median(results, 'peak_rss_mib'):.0f}",
                "n/a" if accuracy is None else f"{accuracy:.3f}",
                f"{H.ratio(ours, results, 'samples_per_s'):.2f}x",
                f"{H.ratio(ours, results, 'samples_per_cpu_s'):.2f}x",
                f"{H.ratio(ours, results, 'peak_rss_mib'):.2f}",
            ]
        )
    table = H.markdown_table(
        [
            "contender",
            "train rows",
            "samples/s",
            "fit wall s (min-max)",
            "peak RSS MiB",
            "test accuracy",
            "our speed-up (wall)",
            "our speed-up (CPU s)",
            "our RSS / theirs",
        ],
        rows,
    )
    return runs, table


def run_predict(args):
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model = tmp / "clf.pkl"
        folder = tmp / "hf"
        print("fitting the model to predict with")
        H.run_isolated(
            SCRIPT,
            "fit-ours",
            {
                "data": args.data,
                "rows": args.rows,
                "test_rows": 0,
                "epochs": args.epochs,
                "batch_size": args.batch_size,
                "learning_rate": args.learning_rate,
                "seed": args.seed,
                "save": str(model),
            },
            threads=args.threads,
            timeout=args.timeout,
        )
        clf = pickle.loads(model.read_bytes())
        export_for_pipeline(clf, folder)
        base = {"data": args.data, "predict_rows": args.predict_rows}
        contenders = {
            "predict_proba": (
                "predict-ours",
                {**base, "model": str(model), "out": str(tmp / "ours.npy")},
            ),
            "pipeline (default batch_size)": (
                "predict-pipeline",
                {
                    **base,
                    "folder": str(folder),
                    "batch_size": 0,
                    "out": str(tmp / "pipe.npy"),
                },
            ),
            f"pipeline (batch_size={args.batch_size})": (
                "predict-pipeline",
                {
                    **base,
                    "folder": str(folder),
                    "batch_size": args.batch_size,
                    "out": str(tmp / "pipe_b.npy"),
                },
            ),
        }
        runs = H.interleaved(
            SCRIPT,
            contenders,
            repeats=args.repeats,
            threads=args.threads,
            timeout=args.timeout,
        )
        ours = np.load(tmp / "ours.npy")
        difference = max(
            float(np.abs(ours - np.load(tmp / name)).max())
            for name in ("pipe.npy", "pipe_b.npy")
        )
    ours = runs["predict_proba"]
    rows = [
        [
            name,
            f"{H.median(results, 'samples_per_s'):.1f}",
            f"{H.median(results, 'predict_s'):.2f} ({H.spread(results, 'predict_s')})",
            f"{H.ratio(ours, results, 'samples_per_s'):.2f}x",
            f"{H.ratio(ours, results, 'samples_per_cpu_s'):.2f}x",
        ]
        for name, results in runs.items()
    ]
    header = ["contender", "samples/s", "wall s (min-max)", "our speed-up (wall)"]
    table = H.markdown_table(header + ["our speed-up (CPU s)"], rows)
    table += (
        f"\n\nLargest difference between predict_proba and the pipeline's "
        f"probabilities: {difference:.2e}."
    )
    return runs, table, difference


def main(argv=None):
    args = parse_args(argv)
    if args.worker:
        H.worker_main(WORKERS, args)
        return
    print(f"machine: {H.machine()}")
    payload = {"args": vars(args)}
    if not args.skip_fit:
        print("fit:")
        payload["fit"], fit_table = run_fit(args)
        print(fit_table)
    if not args.skip_predict:
        print("predict:")
        payload["predict"], predict_table, payload["max_difference"] = run_predict(args)
        print(predict_table)
    print(f"raw results: {H.save('perf_text', payload)}")


if __name__ == "__main__":
    main()
