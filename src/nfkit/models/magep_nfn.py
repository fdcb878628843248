"""The ``"magep"`` family: MAGEP-NFN (Vo et al., "Equivariant Polynomial Functional Networks", ICML 2025).

Invariant form (the paper's CNN-generalisation model, ``hidden_channels=[20, 20]``)::

    MonomialLinear(spec → spec without kernels, in → h₁) → σ
    → [MagepLinear(h → h') → σ] for each width in hidden_channels
    → MagepInvariant(→ h_last) → MLP head

Equivariant form::

    MonomialLinear(spec → kernel-free, in → h₁) → σ → [MagepLinear → σ]… → MonomialLinear(→ spec, out_channels)

As for ``monomial``, the group and σ follow from the spec: permutations × positive scaling
with ReLU for ReLU-like networks, permutations × sign flips with tanh for odd activations.
The polynomial layers themselves respect every non-zero diagonal; σ decides which subgroup
the model keeps. The Fourier features that the reference code placed *before* these layers
for INRs broke sign invariance; nothing here acts on raw weights non-equivariantly.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import final

import torch
from torch import nn

from nfkit.groups.neurons import Factor
from nfkit.layers.magep import MagepInvariant, MagepLinear
from nfkit.layers.monomial import MonomialLinear, monomial_group
from nfkit.layers.pointwise import FeatureActivation
from nfkit.models.base import EquivariantModel, InvariantModel, mlp_head
from nfkit.models.registry import ModelFamily, register
from nfkit.spaces.features import WeightSpaceFeatures
from nfkit.spaces.spec import WeightSpaceSpec

__all__ = ["MagepInvariantNFN", "MagepEquivariantNFN"]


def _trunk(spec: WeightSpaceSpec, in_channels: int, hidden_channels: Sequence[int], learnable_contractions: bool) -> nn.Sequential:
    if not hidden_channels:
        raise ValueError("magep needs at least one hidden width")
    group = monomial_group(spec)
    activation = "relu" if Factor.POSITIVE_SCALING in group.factors else "tanh"
    inner = spec.without_kernels()
    modules: list[nn.Module] = [
        MonomialLinear(spec, in_channels, hidden_channels[0], out_spec=inner),
        FeatureActivation(activation),
    ]
    width = hidden_channels[0]
    for h in hidden_channels:
        modules += [MagepLinear(inner, width, h, learnable_contractions=learnable_contractions), FeatureActivation(activation)]
        width = h
    return nn.Sequential(*modules)


@final
class MagepInvariantNFN(InvariantModel):
    """MAGEP-NFN invariant model.

    Shapes:
        features ``(B, in_channels, …)`` → ``(B, out_features)``.
    """

    def __init__(
        self,
        spec: WeightSpaceSpec,
        out_features: int = 1,
        *,
        in_channels: int = 1,
        hidden_channels: Sequence[int] = (20, 20),
        head_hidden: Sequence[int] = (500, 500),
        head_dropout: float = 0.0,
        learnable_contractions: bool = True,
    ) -> None:
        super().__init__(spec, monomial_group(spec), in_channels)
        self.out_features = out_features
        self.trunk = _trunk(spec, in_channels, hidden_channels, learnable_contractions)
        width = hidden_channels[-1]
        self.invariant = MagepInvariant(
            spec.without_kernels(), width, width, learnable_contractions=learnable_contractions
        )
        self.head = mlp_head(width, head_hidden, out_features, head_dropout)

    def forward(self, features: WeightSpaceFeatures) -> torch.Tensor:
        self.validate(features)
        return self.head(self.invariant(self.trunk(features)))


@final
class MagepEquivariantNFN(EquivariantModel):
    """MAGEP-NFN equivariant model.

    Shapes:
        features with ``in_channels`` channels → features with ``out_channels`` channels.
    """

    def __init__(
        self,
        spec: WeightSpaceSpec,
        out_channels: int = 1,
        *,
        in_channels: int = 1,
        hidden_channels: Sequence[int] = (16, 16),
        learnable_contractions: bool = True,
    ) -> None:
        super().__init__(spec, monomial_group(spec), in_channels)
        self.out_channels = out_channels
        self.trunk = _trunk(spec, in_channels, hidden_channels, learnable_contractions)
        self.readout = MonomialLinear(spec.without_kernels(), hidden_channels[-1], out_channels, out_spec=spec)

    def forward(self, features: WeightSpaceFeatures) -> WeightSpaceFeatures:
        self.validate(features)
        return self.project(self.readout(self.trunk(features)))


register(
    ModelFamily(
        "magep",
        "MAGEP-NFN polynomial layers over path products (Vo et al. 2025)",
        invariant=MagepInvariantNFN,
        equivariant=MagepEquivariantNFN,
    )
)
