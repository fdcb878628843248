"""Permutation-invariant summaries of weights: every entry flattened, and StatNN's per-tensor statistics.

Unterthiner et al. 2020, "Predicting Neural Network Accuracy from Weights", Sec. 4: for every
weight and bias tensor the mean, variance and the 0, 25, 50, 75 and 100 % quantiles of its
entries. Statistics over all entries of a tensor do not depend on the order of neurons.
"""

from __future__ import annotations

import torch
from torch import nn

from nfkit.spaces.features import WeightSpaceFeatures
from nfkit.spaces.spec import WeightSpaceSpec
from nfkit.spaces.transformer_spec import TransformerSpec
from nfkit.spaces.universal import UniversalSpec

__all__ = ["QUANTILES", "Flattened", "entry_statistics", "layer_statistics", "LayerStatistics", "num_tensors", "WithInputStatistics"]

AnySpec = WeightSpaceSpec | TransformerSpec | UniversalSpec

#: The quantiles StatNN reads of every tensor.
QUANTILES = (0.0, 0.25, 0.5, 0.75, 1.0)


def num_tensors(spec: AnySpec) -> int:
    """How many weight and bias tensors a network of ``spec`` has."""
    return len(spec.tensor_shapes()) if isinstance(spec, (TransformerSpec, UniversalSpec)) else 2 * spec.num_layers


class Flattened(nn.Module):
    """All entries of every tensor, concatenated.

    Shapes:
        features ``(B, C, …)`` → ``(B, C·P)``.
    """

    def __init__(self, spec: AnySpec) -> None:
        super().__init__()
        self.entries = spec.zeros(1).flatten().shape[-1]

    def num_outputs(self, channels: int) -> int:
        """``channels · P``."""
        return channels * self.entries

    def forward(self, features: WeightSpaceFeatures) -> torch.Tensor:
        return features.flatten().flatten(1)


def entry_statistics(flat: torch.Tensor) -> torch.Tensor:
    """Mean, variance and quantiles (0, 25, 50, 75, 100 %) over the last axis.

    Shapes:
        ``(B, C, N)`` → ``(B, C, 7)``.

    Example:
        >>> entry_statistics(torch.arange(5.0).view(1, 1, 5)).tolist()
        [[[2.0, 2.0, 0.0, 1.0, 2.0, 3.0, 4.0]]]
    """
    q = torch.tensor(QUANTILES, dtype=flat.dtype, device=flat.device)
    quantiles = torch.quantile(flat, q, dim=-1).movedim(0, -1)
    mean = flat.mean(dim=-1, keepdim=True)
    var = flat.var(dim=-1, unbiased=False, keepdim=True)
    return torch.cat([mean, var, quantiles], dim=-1)


def layer_statistics(features: WeightSpaceFeatures) -> torch.Tensor:
    """:func:`entry_statistics` of every tensor, per channel.

    Shapes:
        features ``(B, C, …)`` with L layers → ``(B, C · 2L · 7)``.

    Example:
        >>> from nfkit.spaces import WeightSpaceSpec
        >>> layer_statistics(WeightSpaceSpec.mlp([3, 4, 2]).randn(5, 2)).shape
        torch.Size([5, 56])
    """
    return torch.cat([entry_statistics(t.flatten(2)) for t in features.tensors()], dim=-1).flatten(1)


class LayerStatistics(nn.Module):
    """:func:`layer_statistics` as a module.

    Shapes:
        features ``(B, C, …)`` with T tensors → ``(B, C · T · 7)``.
    """

    def __init__(self, spec: AnySpec) -> None:
        super().__init__()
        self.tensors = num_tensors(spec)

    def num_outputs(self, channels: int) -> int:
        """``channels · T · 7`` (mean, variance, five quantiles per tensor)."""
        return channels * self.tensors * (2 + len(QUANTILES))

    def forward(self, features: WeightSpaceFeatures) -> torch.Tensor:
        return layer_statistics(features)


class WithInputStatistics(nn.Module):
    """``x ↦ [x, f(x)]`` along channels, read as StatNN's statistics of ``x`` next to ``pool(f(x))``.

    For a permutation-equivariant ``f`` and invariant ``pool`` the result is invariant too (statistics over
    all entries of a tensor ignore every permutation). It is the readout of ``statistics=True``: the
    equivariant trunk then has to add to what StatNN (Unterthiner et al. 2020) reads, not relearn it.

    Shapes:
        features ``(B, C, …)`` with T tensors → ``(B, C · T · 7 + pool.num_outputs(e))`` (``f``: C → e channels).
    """

    def __init__(self, spec: AnySpec, trunk: nn.Module, pool: nn.Module, in_channels: int) -> None:
        super().__init__()
        self.trunk = trunk
        self.pool = pool
        self.statistics = LayerStatistics(spec)
        self.in_channels = in_channels

    def num_outputs(self, channels: int) -> int:
        """Statistics of the ``in_channels`` inputs and the pool's width for ``channels`` trunk channels."""
        return self.statistics.num_outputs(self.in_channels) + int(getattr(self.pool, "num_outputs")(channels))

    def forward(self, features: WeightSpaceFeatures) -> torch.Tensor:
        return torch.cat([self.statistics(features), self.pool(self.trunk(features))], dim=1)
