"""Fine-tune TextClassifier (MiniLM) on the clip-art titles; compare with TF-IDF.

Run from the repository root::

    python benchmarks/text_clipart.py [--epochs 5]
"""

import argparse
import json
import time

from _harness import clipart_splits, minilm_path
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score
from sklearn.pipeline import make_pipeline

from multimodal_clf import TextClassifier


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--learning-rate", type=float, default=1e-4)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="write the results as JSON here")
    args = parser.parse_args()

    train, test = clipart_splits()
    results = {}

    start = time.perf_counter()
    tfidf = make_pipeline(
        TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4), sublinear_tf=True),
        LogisticRegression(max_iter=2000, C=10),
    ).fit(train["text"], train["label"])
    predicted = tfidf.predict(test["text"])
    results["tfidf_logreg"] = {
        "accuracy": accuracy_score(test["label"], predicted),
        "macro_f1": f1_score(test["label"], predicted, average="macro"),
        "fit_seconds": time.perf_counter() - start,
    }

    start = time.perf_counter()
    clf = TextClassifier(
        minilm_path(),
        epochs=args.epochs,
        learning_rate=args.learning_rate,
        batch_size=args.batch_size,
        random_state=args.seed,
        verbose=0,
    ).fit(train, train["label"])
    fit_seconds = time.perf_counter() - start
    predicted = clf.predict(test)
    results["minilm_finetuned"] = {
        "accuracy": accuracy_score(test["label"], predicted),
        "macro_f1": f1_score(test["label"], predicted, average="macro"),
        "fit_seconds": fit_seconds,
    }

    print(f"clip-art titles: {len(train)} train rows, {len(test)} test rows")
    print(f"{'model':<20} {'accuracy':>9} {'macro-F1':>9} {'fit s':>8}")
    for name, row in results.items():
        print(
            f"{name:<20} {row['accuracy']:>9.3f} {row['macro_f1']:>9.3f} "
            f"{row['fit_seconds']:>8.1f}"
        )
    if args.out:
        with open(args.out, "w") as handle:
            json.dump({"args": vars(args), "results": results}, handle, indent=2)


if __name__ == "__main__":
    main()
