"""The ``"scalegmn"`` family: ScaleGMN (Kalogeropoulos, Bouritsas, Panagakis, NeurIPS 2024).

Invariant form::

    ScaleGMNTrunk (rounds of scale/sign-equivariant message passing) → ScaleGMNReadout → MLP head

Equivariant form::

    ScaleGMNTrunk → ScaleGMNDecoder(→ out_channels)

Declared group: the monomial group of the network (:func:`~nfkit.layers.monomial.monomial_group`):
hidden-neuron permutations × sign flips for odd activations (SIREN, tanh), × positive scaling for
ReLU-like ones. A network with neither (GELU, sigmoid) is refused with the families that fit it.
"""

from __future__ import annotations

from collections.abc import Sequence

from nfkit.layers.monomial import monomial_group
from nfkit.layers.scalegmn import ScaleGMNDecoder, ScaleGMNReadout, ScaleGMNTrunk
from nfkit.models.base import EquivariantModel, StackedInvariantModel
from nfkit.models.registry import ModelFamily, register
from nfkit.spaces.features import WeightSpaceFeatures
from nfkit.spaces.spec import WeightSpaceSpec

__all__ = ["scalegmn_invariant", "scalegmn_equivariant", "ScaleGMNEquivariant"]


def scalegmn_invariant(
    spec: WeightSpaceSpec,
    out_features: int = 1,
    *,
    in_channels: int = 1,
    hidden_channels: Sequence[int] = (64, 64, 64),
    head_hidden: Sequence[int] = (256, 256),
    head_dropout: float = 0.0,
) -> StackedInvariantModel:
    """ScaleGMN invariant model: features → ``(B, out_features)``."""
    group = monomial_group(spec)
    trunk = ScaleGMNTrunk(spec, in_channels, hidden_channels, group)
    return StackedInvariantModel.with_head(
        spec, group, in_channels, out_features, trunk=trunk, trunk_width=trunk.width,
        readout=ScaleGMNReadout(spec, group), head_hidden=head_hidden, head_dropout=head_dropout,
    )


class ScaleGMNEquivariant(EquivariantModel):
    """ScaleGMN's equivariant form: the trunk's node states decode a per-weight, per-bias output."""

    def __init__(self, spec: WeightSpaceSpec, in_channels: int, out_channels: int, hidden_channels: Sequence[int]) -> None:
        group = monomial_group(spec)
        super().__init__(spec, group, in_channels)
        self.out_channels = out_channels
        self.trunk = ScaleGMNTrunk(spec, in_channels, hidden_channels, group)
        self.decoder = ScaleGMNDecoder(spec, in_channels, self.trunk.width, out_channels, group)

    def forward(self, features: WeightSpaceFeatures) -> WeightSpaceFeatures:
        self.validate(features)
        return self.project(self.decoder(self.trunk(features), features))


def scalegmn_equivariant(
    spec: WeightSpaceSpec,
    out_channels: int = 1,
    *,
    in_channels: int = 1,
    hidden_channels: Sequence[int] = (64, 64, 64),
) -> ScaleGMNEquivariant:
    """ScaleGMN equivariant model: features → features with ``out_channels`` channels."""
    return ScaleGMNEquivariant(spec, in_channels, out_channels, hidden_channels)


register(
    ModelFamily(
        "scalegmn",
        "ScaleGMN: graph metanetwork equivariant to permutations × the activation's sign flips or positive scalings "
        "(Kalogeropoulos et al. 2024)",
        invariant=scalegmn_invariant,
        equivariant=scalegmn_equivariant,
    )
)
