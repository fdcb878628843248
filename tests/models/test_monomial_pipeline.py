"""Monomial-NFN's INR pipeline (``trunk_channels``): monomial layers, an invariant front (``|x|``, or
the canonicalisation with ``canonical=True``), an HNP trunk. The whole is invariant to the network's
monomial group, each factor alone, and breaks under the factor it lacks; families without a front do
not offer the option."""

from __future__ import annotations

import pytest

import nfkit.models
from nfkit.errors import UnknownOptionError
from nfkit.layers.canonical import Canonicalization
from nfkit.layers.monomial import MonomialInvariantFront
from nfkit.spaces import WeightSpaceSpec
from nfkit.testing import assert_invariant, assert_not_equivariant


@pytest.mark.parametrize("canonical", [False, True], ids=["abs-front", "canonical-front"])
@pytest.mark.parametrize("activation", ["sine", "relu", "tanh"])
def test_invariant_to_the_whole_group(activation: str, canonical: bool) -> None:
    spec = WeightSpaceSpec.mlp([2, 6, 5, 3], activation)
    model = nfkit.models.invariant("monomial", spec, 4, hidden_channels=[3, 3], trunk_channels=[4, 4],
                                   canonical=canonical)
    front = Canonicalization if canonical else MonomialInvariantFront
    assert sum(isinstance(m, (Canonicalization, MonomialInvariantFront)) for m in model.modules()) == 1
    assert any(isinstance(m, front) for m in model.modules())
    assert_invariant(model)
    for factor in model.group.factor_subgroups():
        assert_invariant(model, factor)
    control = model.group.negative_control()
    assert control is not None
    assert_not_equivariant(model, control)


def test_only_families_with_a_front_offer_it() -> None:
    spec = WeightSpaceSpec.mlp([2, 6, 1], "sine")
    assert "trunk_channels" in nfkit.models.registry.family("monomial").options("invariant")
    with pytest.raises(UnknownOptionError):
        nfkit.models.invariant("hnp", spec, 1, trunk_channels=[4])


def test_canonical_front_needs_the_trunk() -> None:
    spec = WeightSpaceSpec.mlp([2, 6, 1], "sine")
    with pytest.raises(UnknownOptionError, match="trunk_channels"):
        nfkit.models.invariant("monomial", spec, 1, canonical=True)
