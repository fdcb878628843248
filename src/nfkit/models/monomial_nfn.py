"""The ``"monomial"`` family: Monomial-NFN (Tran et al., NeurIPS 2024).

Invariant form (the paper's Sec. 6 and its CNN-generalisation model)::

    [MonomialLinear → σ] × len(hidden_channels) → MonomialInvariantMap → mean over hidden axes → MLP head

Equivariant form::

    [MonomialLinear → σ] × len(hidden_channels) → MonomialLinear(→ out_channels)

The group and the nonlinearity σ both follow from ``spec.symmetry_group()`` (see
:func:`nfkit.layers.monomial.monomial_group`), never from a flag: for ReLU-like networks the
group is permutations × positive scaling and σ = ReLU (``σ(dx) = dσ(x)``, d > 0); for odd
activations (Tanh, Sine) it is permutations × sign flips and σ = tanh (odd). A network with
neither symmetry is refused with :class:`~nfkit.errors.UnsupportedArchitectureError`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import final

import torch
from torch import nn

from nfkit.groups.neurons import Factor
from nfkit.layers.monomial import MonomialInvariantMap, MonomialLinear, monomial_group
from nfkit.layers.pointwise import FeatureActivation
from nfkit.models.base import EquivariantModel, InvariantModel, mlp_head
from nfkit.models.registry import ModelFamily, register
from nfkit.spaces.features import WeightSpaceFeatures
from nfkit.spaces.spec import WeightSpaceSpec

__all__ = ["MonomialInvariantNFN", "MonomialEquivariantNFN"]


def _trunk(spec: WeightSpaceSpec, in_channels: int, hidden_channels: Sequence[int]) -> nn.Sequential:
    group = monomial_group(spec)
    activation = "relu" if Factor.POSITIVE_SCALING in group.factors else "tanh"
    modules: list[nn.Module] = []
    width = in_channels
    for h in hidden_channels:
        modules += [MonomialLinear(spec, width, h), FeatureActivation(activation)]
        width = h
    return nn.Sequential(*modules)


@final
class MonomialInvariantNFN(InvariantModel):
    """Monomial-NFN invariant model.

    Shapes:
        features ``(B, in_channels, …)`` → ``(B, out_features)``.
    """

    def __init__(
        self,
        spec: WeightSpaceSpec,
        out_features: int = 1,
        *,
        in_channels: int = 1,
        hidden_channels: Sequence[int] = (16, 16, 5),
        head_hidden: Sequence[int] = (200, 200),
        head_dropout: float = 0.0,
    ) -> None:
        super().__init__(spec, monomial_group(spec), in_channels)
        self.out_features = out_features
        self.trunk = _trunk(spec, in_channels, hidden_channels)
        width = hidden_channels[-1] if hidden_channels else in_channels
        self.invariant = MonomialInvariantMap(spec, width, self.group)  # type: ignore[arg-type]
        self.head = mlp_head(sum(self.invariant.widths), head_hidden, out_features, head_dropout)

    def forward(self, features: WeightSpaceFeatures) -> torch.Tensor:
        self.validate(features)
        fields = self.invariant(self.trunk(features))
        pooled = [x.mean(dim=tuple(range(2, x.dim()))) if x.dim() > 2 else x for x in fields]
        return self.head(torch.cat(pooled, dim=1))


@final
class MonomialEquivariantNFN(EquivariantModel):
    """Monomial-NFN equivariant model.

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
    ) -> None:
        super().__init__(spec, monomial_group(spec), in_channels)
        self.out_channels = out_channels
        self.trunk = _trunk(spec, in_channels, hidden_channels)
        self.readout = MonomialLinear(spec, hidden_channels[-1] if hidden_channels else in_channels, out_channels)

    def forward(self, features: WeightSpaceFeatures) -> WeightSpaceFeatures:
        self.validate(features)
        return self.project(self.readout(self.trunk(features)))


register(
    ModelFamily(
        "monomial",
        "Monomial-NFN: equivariant to hidden permutations × scaling or sign flips (Tran et al. 2024)",
        invariant=MonomialInvariantNFN,
        equivariant=MonomialEquivariantNFN,
    )
)
