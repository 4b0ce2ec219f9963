"""Shared fixtures: tiny models built once per session, toy data."""

import logging

import numpy as np
import pytest
import torch
from PIL import Image

from tests import tiny_models

logging.getLogger("transformers").setLevel(logging.ERROR)

# Tiny models gain nothing from intra-op threads, and on a shared machine the
# threads' spin-waiting makes a fit tens of times slower.
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    built = {}

    def get(name):
        if name not in built:
            built[name] = getattr(tiny_models, name)(root / name)
        return built[name]

    return get


@pytest.fixture(scope="session")
def bert(model_dir):
    return model_dir("bert")


@pytest.fixture(scope="session")
def roberta(model_dir):
    return model_dir("roberta")


@pytest.fixture(scope="session")
def clip(model_dir):
    return model_dir("clip")


@pytest.fixture(scope="session")
def flava(model_dir):
    return model_dir("flava")


@pytest.fixture(scope="session")
def vilt(model_dir):
    return model_dir("vilt")


@pytest.fixture(scope="session")
def pair(model_dir):
    return (model_dir("bert"), model_dir("vit"))


TEXTS = [
    "a happy dog runs",
    "sad rain all day",
    "the dog is glad",
    "grey sad clouds",
    "good happy sun",
    "a sad story",
    "happy play time",
    "gloomy sad night",
]
LABELS = ["pos", "neg", "pos", "neg", "pos", "neg", "pos", "neg"]


def colour_images(labels, size=24):
    """Red squares for one class, blue for the other: an easy image signal."""
    images = []
    for i, label in enumerate(labels):
        array = np.zeros((size, size, 3), dtype=np.uint8)
        array[..., 0 if label == "pos" else 2] = 200 + i
        images.append(Image.fromarray(array))
    return images


@pytest.fixture
def text_data():
    return list(TEXTS), list(LABELS)


@pytest.fixture
def pair_data():
    return list(zip(TEXTS, colour_images(LABELS))), list(LABELS)
