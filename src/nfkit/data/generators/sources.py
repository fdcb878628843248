"""Image data that ships inside packages (nothing is downloaded).

* ``digits``: scikit-learn's 1,797 handwritten digits, 8×8 (UCI optdigits), read straight from the
  CSV inside the installed package (``pip install 'nfkit[zoo]'``).
* ``topics``: a generated topic-mixture text corpus, for text transformers (no corpus ships).
"""

from __future__ import annotations

import gzip
import importlib.resources
from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["ImageSplit", "TokenSplit", "load_digits", "topic_mixture_text"]


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
