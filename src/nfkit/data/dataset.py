"""Datasets of networks as weight-space features, with symmetry-compatible normalisation and augmentation."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, final

import numpy as np
import torch
from torch.utils.data import Dataset

from nfkit.spaces.kinds import AnyFeatures, AnySpec
from nfkit.errors import SpecMismatchError
from nfkit.groups.base import Group
from nfkit.spaces.features import WeightSpaceFeatures, stack

__all__ = ["AUGMENT_SCALE_RANGE", "network_augmentation", "AnyFeatures", "WeightDataset", "collate", "Compose", "SymmetryAugmentation", "Normalization"]

#: Either feature container (dense MLP/CNN or transformer weight spaces).
Transform = Callable[[Any], Any]  # features → features of the same kind


@final
class WeightDataset(Dataset[tuple[AnyFeatures, torch.Tensor]]):
    """Networks (a batch of features) with one label each.

    Args:
        features: ``WeightSpaceFeatures`` of batch N.
        labels: a tensor with N rows.
        transform: applied to each item's features (e.g. :class:`SymmetryAugmentation`).

    Items are ``(features with batch 1, label)``; :func:`collate` batches them.

    Example:
        >>> from nfkit.spaces import WeightSpaceSpec
        >>> spec = WeightSpaceSpec.mlp([2, 4, 1])
        >>> data = WeightDataset(spec.randn(10), torch.arange(10.0))
        >>> x, y = collate([data[0], data[3]])
        >>> len(x), y.tolist()
        (2, [0.0, 3.0])
    """

    def __init__(self, features: AnyFeatures, labels: torch.Tensor, transform: Transform | None = None) -> None:
        if len(labels) != len(features):
            raise SpecMismatchError(f"{len(features)} networks but {len(labels)} labels")
        self.features = features
        self.labels = labels
        self.transform = transform

    def __len__(self) -> int:
        return len(self.features)

    def __getitem__(self, index: int) -> tuple[AnyFeatures, torch.Tensor]:
        item = self.features[index]
        if self.transform is not None:
            item = self.transform(item)
        return item, self.labels[index]

    def subset(self, indices: Sequence[int] | torch.Tensor | np.ndarray, transform: Transform | None = None) -> WeightDataset:
        """The networks at ``indices`` (a split), optionally with another transform."""
        index = torch.as_tensor(indices, dtype=torch.long)
        return WeightDataset(self.features[index], self.labels[index], transform)


def collate(items: Sequence[tuple[AnyFeatures, torch.Tensor]]) -> tuple[AnyFeatures, torch.Tensor]:
    """Batch ``(features, label)`` items: features are stacked along the batch axis."""
    return stack([f for f, _ in items]), torch.stack([torch.as_tensor(y) for _, y in items])


@final
class Compose:
    """Apply feature transforms in order (e.g. an augmentation, then a normalisation)."""

    def __init__(self, *steps: Transform) -> None:
        self.steps = steps

    def __call__(self, features: WeightSpaceFeatures) -> WeightSpaceFeatures:
        for step in self.steps:
            features = step(features)
        return features


@final
class SymmetryAugmentation:
    """A transform that applies a random element of ``group`` (a function-preserving change).

    Use the *network's* group (:func:`network_augmentation`), not the model's: a model is already
    exactly invariant to its own group, so augmenting with it changes nothing. For ReLU nets,
    positive scalings from ``U[1, 10³]`` are the augmentation of the Monomial-NFN papers.
    """

    def __init__(self, group: Group, generator: torch.Generator | None = None) -> None:
        self.group = group
        self.generator = generator

    def __call__(self, features: WeightSpaceFeatures) -> WeightSpaceFeatures:
        return self.group.sample(self.generator).act(features)


#: Scales of the continuous factors when augmenting (Monomial-NFN's ``U[1, 10³]``).
AUGMENT_SCALE_RANGE = (1.0, 1e3)


def network_augmentation(spec: AnySpec, seed: int = 0) -> SymmetryAugmentation:
    """Random elements of the network's whole symmetry group (permutations × sign flips for a SIREN,
    × positive scalings for a ReLU net, × GL for a transformer), scales from :data:`AUGMENT_SCALE_RANGE`."""
    group = spec.symmetry_group().with_scale_range(*AUGMENT_SCALE_RANGE)
    return SymmetryAugmentation(group, torch.Generator().manual_seed(seed))


@final
@dataclass(frozen=True)
class Normalization:
    """Per-tensor affine normalisation chosen so that it commutes with the group.

    ``x ↦ (x - shift_i) / scale_i`` with one scalar pair per weight or bias tensor. Centering
    commutes with permutations but not with scaling or sign flips (``d(x - μ) ≠ dx - μ``), so:

    * permutations only: shift = the tensor's mean over the training set, scale = its std;
    * with scaling or sign flips: shift = 0, scale = the tensor's root mean square.

    A per-entry standardisation would break even permutation equivariance; it is never used.
    """

    shifts: tuple[float, ...]
    scales: tuple[float, ...]

    @staticmethod
    def identity(features: AnyFeatures) -> Normalization:
        """The normalisation that changes nothing (shift 0, scale 1 per tensor)."""
        count = len(list(features.tensors()))
        return Normalization((0.0,) * count, (1.0,) * count)

    @staticmethod
    def fit(features: AnyFeatures, group: Group) -> Normalization:
        """Statistics of a training set (features of batch N) for ``group``.

        Transformer groups contain GL factors, with which centering does not commute: root mean square only.
        """
        centre = group.commutes_with_centering
        shifts, scales = [], []
        for t in features.tensors():
            t = t.double()
            if centre:
                shifts.append(t.mean().item())
                scales.append(max(t.std().item(), 1e-12) if t.numel() > 1 else 1.0)
            else:
                shifts.append(0.0)
                scales.append(max(t.square().mean().sqrt().item(), 1e-12))
        return Normalization(tuple(shifts), tuple(scales))

    def __call__(self, features: WeightSpaceFeatures) -> WeightSpaceFeatures:
        tensors = [(t - s) / c for t, s, c in zip(features.tensors(), self.shifts, self.scales)]
        return type(features).from_tensors(features.spec, tensors)
