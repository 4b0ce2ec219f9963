"""Parameters of both estimators: declared, documented, stored and checked alike."""

import inspect
import re
import warnings

import numpy as np
import pytest
from sklearn.base import clone

from multimodal_clf import MultimodalClassifier, TextClassifier
from multimodal_clf._estimator import SHARED_RULES
from multimodal_clf._params import check_parameters

ESTIMATORS = [TextClassifier, MultimodalClassifier]

#: A value each rule must refuse, and the words it must answer with.
BAD = {
    "max_length": (0, "None or an int >= 1"),
    "batch_size": (0, "an int >= 1"),
    "epochs": (2.5, "an int >= 1"),
    "learning_rate": (0.0, "a float in (0, inf]"),
    "head_learning_rate": (-1e-3, "None or a float in (0, inf]"),
    "weight_decay": (-0.1, "a float in [0, inf]"),
    "warmup_ratio": (1.5, "a float in [0, 1]"),
    "class_weight": ("balance", "None, 'balanced' or a dict {label: weight}"),
    "validation_fraction": (1.0, "a float in [0, 1)"),
    "early_stopping": ("yes", "True or False"),
    "patience": (0, "an int >= 1"),
    "precision": ("fp64", "one of 'auto', 'fp32', 'bf16', 'fp16'"),
    "gradient_checkpointing": (2, "True or False"),
    "gradient_accumulation_steps": (0, "an int >= 1"),
    "freeze_backbone": (None, "True or False"),
    "freeze": (-1, "None, a number of layers >= 0, or parameter-name prefixes"),
    "device": ("gpu", "'auto', 'cpu', 'cuda', 'cuda:<index>' or 'mps'"),
    "cache_features": ("no", "True or False"),
    "checkpoint_dir": (3, "None or a str or os.PathLike"),
    "warm_start": (None, "True or False"),
    "random_state": (1.5, "None, an int or a numpy RandomState"),
    "verbose": (-1, "an int >= 0"),
    "text_column": ("", "a non-empty str"),
    "fusion": ("sum", "one of 'concat', 'late', 'product'"),
    "modalities": (("image", "text"), "('text', 'image'), ('text',) or ('image',)"),
    "head_hidden_size": (-1, "an int >= 0"),
    "modality_dropout": (1.0, "a float in [0, 1)"),
    "head_dropout": (1.0, "a float in [0, 1)"),
    "image_column": (3, "a non-empty str"),
    "image_root": (3, "None or a str or os.PathLike"),
    "max_image_pixels": (0, "an int >= 1"),
}


def parameters(cls):
    signature = inspect.signature(cls.__init__)
    return [name for name in signature.parameters if name != "self"]


@pytest.mark.parametrize("cls", ESTIMATORS)
def test_every_parameter_has_a_rule_and_a_doc(cls):
    names = parameters(cls)
    assert names[0] == "backbone"
    assert set(names[1:]) == set(cls._rules)
    assert set(SHARED_RULES) <= set(cls._rules)
    for name in names:
        assert re.search(rf"^\s+{name} : ", cls.__doc__, re.MULTILINE), name
    # Everything after the backbone is keyword-only.
    kinds = [p.kind for p in inspect.signature(cls.__init__).parameters.values()]
    assert kinds.count(inspect.Parameter.KEYWORD_ONLY) == len(names) - 1


def test_shared_parameters_have_the_same_defaults():
    text = inspect.signature(TextClassifier.__init__).parameters
    multi = inspect.signature(MultimodalClassifier.__init__).parameters
    for name in SHARED_RULES:
        assert text[name].default == multi[name].default, name


@pytest.mark.parametrize("cls", ESTIMATORS)
def test_init_stores_every_parameter_unchanged(cls):
    values = {name: object() for name in parameters(cls)}
    estimator = cls(**values)
    assert vars(estimator) == values
    assert estimator.get_params() == values


@pytest.mark.parametrize("cls", ESTIMATORS)
def test_defaults_pass_the_rules(cls):
    estimator = cls("unused")
    check_parameters(estimator, cls._rules)


@pytest.mark.parametrize("cls", ESTIMATORS)
def test_each_bad_value_is_reported(cls):
    for name in cls._rules:
        value, allowed = BAD[name]
        estimator = cls("unused", **{name: value})
        with pytest.raises(ValueError) as error:
            estimator.fit(["a", "b"], [0, 1])
        message = str(error.value)
        assert message.startswith(f"Invalid parameter for {cls.__name__}:\n")
        assert f"  - {name}: allowed {allowed}" in message
        assert f"; got {value!r}." in message
        assert message.endswith("Set them with set_params(...) or in the constructor.")


def test_bad_values_reported_together_with_suggestions():
    estimator = MultimodalClassifier(
        "unused", fusion="contact", precision="bf61", epochs=0, head_dropout=2.0
    )
    with pytest.raises(ValueError) as error:
        estimator.fit([("a", None)], [0])
    lines = str(error.value).splitlines()
    assert lines[0] == "Invalid parameters for MultimodalClassifier:"
    problems = [line for line in lines if line.startswith("  - ")]
    assert [line.split(":")[0] for line in problems] == [
        "  - epochs",
        "  - precision",
        "  - fusion",
        "  - head_dropout",
    ]
    assert "got 'contact'. Did you mean 'concat'?" in lines[3]
    assert "got 'bf61'. Did you mean 'bf16'?" in lines[2]


@pytest.mark.parametrize("value", [None, 0, 3, "text", ["text", "image"], ("image",)])
def test_freeze_accepts_documented_values(value):
    check_parameters(MultimodalClassifier("unused", freeze=value), SHARED_RULES)


def test_random_state_instances_accepted():
    estimator = TextClassifier("unused", random_state=np.random.RandomState(0))
    check_parameters(estimator, SHARED_RULES)
    copy = clone(estimator)
    assert isinstance(copy.random_state, np.random.RandomState)


# --- parameters that would have no effect -------------------------------------------
def _user_warnings(caught):
    return [w for w in caught if issubclass(w.category, UserWarning)]


def test_freeze_beyond_the_layers_warns_once_at_the_caller(bert, text_data):
    X, y = text_data
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        TextClassifier(bert, freeze=999, epochs=1, verbose=0).fit(X, y)
    (warning,) = _user_warnings(caught)
    assert str(warning.message) == (
        "freeze=999: the text tower has 2 layers, so all of them and its embeddings "
        "are frozen. Pass freeze=2 to say so, or freeze_backbone=True to train the "
        "head alone."
    )
    assert warning.filename == __file__

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        TextClassifier(bert, freeze=2, epochs=1, verbose=0).fit(X, y)
    assert _user_warnings(caught) == []


@pytest.mark.parametrize(
    ("model", "modalities", "feature"),
    [("flava", ("text", "image"), "joint"), ("pair", ("text",), "text")],
)
def test_fusion_with_one_feature_warns(request, pair_data, model, modalities, feature):
    X, y = pair_data
    backbone = request.getfixturevalue(model)
    clf = MultimodalClassifier(
        backbone, fusion="late", modalities=modalities, epochs=1, verbose=0
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        clf.fit(X, y)
    (warning,) = _user_warnings(caught)
    assert "fusion='late' has nothing to fuse: this " in str(warning.message)
    assert f"gives the head the single feature {feature!r}" in str(warning.message)
    assert warning.filename == __file__


def test_fusion_of_two_features_and_loading_do_not_warn(pair, pair_data, tmp_path):
    X, y = pair_data
    text = MultimodalClassifier(
        pair, fusion="late", modalities=("text",), epochs=1, verbose=0
    )
    with pytest.warns(UserWarning, match="nothing to fuse"):
        text.fit(X, y)
    text.save(tmp_path / "text")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        MultimodalClassifier(pair, fusion="late", epochs=1, verbose=0).fit(X, y)
        MultimodalClassifier.load(tmp_path / "text")
    assert [str(w.message) for w in _user_warnings(caught)] == []
