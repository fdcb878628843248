"""Entrywise operations on weight-space features that keep permutation equivariance.

Each acts on every entry (or every entry's channel vector) alike, so it commutes with
any permutation of neurons. Whether it also commutes with scaling or sign flips depends
on the function: ReLU commutes with positive scaling, odd functions with sign flips,
and :class:`ChannelNorm` with neither; the models that use them declare their group
accordingly, and the checker tests it.
"""

from __future__ import annotations

import math
from typing import final

import torch
from torch import nn

from nfkit.spaces.activations import Activation
from nfkit.spaces.features import WeightSpaceFeatures

__all__ = ["FeatureActivation", "ChannelNorm", "FeatureDropout", "GaussianFourierFeatures"]


@final
class FeatureActivation(nn.Module):
    """An elementwise activation applied to every weight and bias entry.

    Shapes:
        features → features of the same shapes.

    Example:
        >>> from nfkit.spaces import WeightSpaceSpec
        >>> f = WeightSpaceSpec.mlp([2, 3, 1]).randn(2)
        >>> bool(FeatureActivation("relu")(f).weights[0].min() >= 0)
        True
    """

    def __init__(self, activation: str | Activation = "relu") -> None:
        super().__init__()
        self.activation = Activation.parse(activation)
        self.fn = self.activation.module()

    def forward(self, features: WeightSpaceFeatures) -> WeightSpaceFeatures:
        return features.map(self.fn)

    def extra_repr(self) -> str:
        return str(self.activation)


@final
class ChannelNorm(nn.Module):
    """Layer normalisation over the channel axis, per entry, with a per-channel affine.

    ``x[c] ↦ γ_c (x[c] - mean_c x) / sqrt(var_c x + ε) + β_c`` at every weight and bias entry.
    Permutation-equivariant; not scale- or sign-equivariant.

    Shapes:
        features with C channels → features of the same shapes.
    """

    def __init__(self, channels: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def _normalise(self, t: torch.Tensor) -> torch.Tensor:
        mean = t.mean(dim=1, keepdim=True)
        var = t.var(dim=1, keepdim=True, unbiased=False)
        shape = (1, -1) + (1,) * (t.dim() - 2)
        return (t - mean) * torch.rsqrt(var + self.eps) * self.weight.view(shape) + self.bias.view(shape)

    def forward(self, features: WeightSpaceFeatures) -> WeightSpaceFeatures:
        return features.map(self._normalise)


@final
class FeatureDropout(nn.Module):
    """Elementwise dropout on every entry (identity in eval mode).

    Equivariant in distribution: a permuted input gets an identically distributed mask.

    Shapes:
        features → features of the same shapes.
    """

    def __init__(self, p: float = 0.1) -> None:
        super().__init__()
        self.dropout = nn.Dropout(p)

    def forward(self, features: WeightSpaceFeatures) -> WeightSpaceFeatures:
        return features.map(self.dropout)


@final
class GaussianFourierFeatures(nn.Module):
    """Random Fourier features of every entry's channels: ``x ↦ [sin(2π xB), cos(2π xB)]``, ``B ~ N(0, σ²)``.

    Tancik et al. 2020; the input layer of the NFN and Monomial-NFN INR classifiers (Zhou et al.
    2023, App. C; mapping 128, σ = 3 or 10). Every entry is mapped alike, so it commutes with neuron
    permutations; sine and cosine together are neither odd nor homogeneous, so it commutes with no
    sign flip or scaling: a model with those symmetries must use it after a sign- or
    scale-invariant front, never before.

    Args:
        in_channels: C.
        mapping: number of frequencies M (the output has 2M channels).
        scale: σ, the standard deviation of the frequencies.
        seed: the frequencies are a fixed buffer drawn from this seed (saved with the model).

    Shapes:
        features with C channels → features with 2M channels.

    Example:
        >>> from nfkit.spaces import WeightSpaceSpec
        >>> GaussianFourierFeatures(1, mapping=8)(WeightSpaceSpec.mlp([2, 4, 1]).randn(3)).channels
        16
    """

    def __init__(self, in_channels: int, mapping: int = 128, scale: float = 10.0, seed: int = 0) -> None:
        super().__init__()
        if mapping <= 0 or not scale > 0:
            raise ValueError(f"mapping and scale must be positive, got {mapping} and {scale}")
        generator = torch.Generator().manual_seed(seed)
        self.register_buffer("frequencies", torch.randn(in_channels, mapping, generator=generator) * scale)
        self.out_channels = 2 * mapping

    def _map(self, t: torch.Tensor) -> torch.Tensor:
        frequencies: torch.Tensor = self.frequencies  # type: ignore[assignment]
        angles = 2 * math.pi * (t.movedim(1, -1) @ frequencies.to(t.dtype))
        return torch.cat([angles.sin(), angles.cos()], dim=-1).movedim(-1, 1)

    def forward(self, features: WeightSpaceFeatures) -> WeightSpaceFeatures:
        return features.map(self._map)
