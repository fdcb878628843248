"""The ``"monomial"`` family: Monomial-NFN (Tran et al., NeurIPS 2024).

Invariant form (the paper's Sec. 6 and its CNN-generalisation model)::

    [MonomialLinear → σ] × len(hidden_channels) → MonomialPool (invariant map, hidden-axis means) → MLP head

Equivariant form::

    [MonomialLinear → σ] × len(hidden_channels) → MonomialLinear(→ out_channels)

The group and the nonlinearity σ both follow from ``spec.symmetry_group()`` (see
:func:`nfkit.layers.monomial.monomial_group`), never from a flag: for ReLU-like networks the
group is permutations × positive scaling and σ = ReLU; for odd activations (Tanh, Sine) it is
permutations × sign flips and σ = tanh. A network with neither symmetry is refused with
:class:`~nfkit.errors.UnsupportedArchitectureError`.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from nfkit.layers.monomial import MonomialLinear, MonomialPool, equivariant_activation, monomial_group
from nfkit.layers.pointwise import FeatureActivation
from nfkit.models.base import StackedEquivariantModel, StackedInvariantModel, mlp_head
from nfkit.models.registry import ModelFamily, register
from nfkit.spaces.spec import WeightSpaceSpec

__all__ = ["monomial_invariant", "monomial_equivariant"]


def _trunk(spec: WeightSpaceSpec, in_channels: int, hidden_channels: Sequence[int]) -> nn.Sequential:
    activation = equivariant_activation(monomial_group(spec))
    modules: list[nn.Module] = []
    width = in_channels
    for h in hidden_channels:
        modules += [MonomialLinear(spec, width, h), FeatureActivation(activation)]
        width = h
    return nn.Sequential(*modules)


def monomial_invariant(
    spec: WeightSpaceSpec,
    out_features: int = 1,
    *,
    in_channels: int = 1,
    hidden_channels: Sequence[int] = (16, 16, 5),
    head_hidden: Sequence[int] = (200, 200),
    head_dropout: float = 0.0,
) -> StackedInvariantModel:
    """Monomial-NFN invariant model: features ``(B, in_channels, …)`` → ``(B, out_features)``."""
    group = monomial_group(spec)
    width = hidden_channels[-1] if hidden_channels else in_channels
    readout = MonomialPool(spec, width, group)
    return StackedInvariantModel(
        spec,
        group,
        in_channels,
        out_features,
        trunk=_trunk(spec, in_channels, hidden_channels),
        readout=readout,
        head=mlp_head(readout.num_outputs, head_hidden, out_features, head_dropout),
    )


def monomial_equivariant(
    spec: WeightSpaceSpec,
    out_channels: int = 1,
    *,
    in_channels: int = 1,
    hidden_channels: Sequence[int] = (16, 16),
) -> StackedEquivariantModel:
    """Monomial-NFN equivariant model: features → features with ``out_channels`` channels."""
    width = hidden_channels[-1] if hidden_channels else in_channels
    return StackedEquivariantModel(
        spec,
        monomial_group(spec),
        in_channels,
        out_channels,
        trunk=_trunk(spec, in_channels, hidden_channels),
        readout=MonomialLinear(spec, width, out_channels),
    )


register(
    ModelFamily(
        "monomial",
        "Monomial-NFN: equivariant to hidden permutations × scaling or sign flips (Tran et al. 2024)",
        invariant=monomial_invariant,
        equivariant=monomial_equivariant,
    )
)
