"""Monomial-NFN's INR pipeline (``trunk_channels``): monomial layers, an invariant front (``|x|``, or
the canonicalisation with ``canonical=True``), an HNP trunk. The whole is invariant to the network's
monomial group, each factor alone, and breaks under the factor it lacks; families without a front do
not offer the option."""

from __future__ import annotations

import pytest
import torch

import nfkit.models
from nfkit.errors import UnknownOptionError
from nfkit.layers.canonical import Canonicalization
from nfkit.layers.monomial import MonomialInvariantFront
from nfkit.spaces import WeightSpaceFeatures, WeightSpaceSpec
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


def _rescale_hidden_entries(x: WeightSpaceFeatures, generator: torch.Generator) -> WeightSpaceFeatures:
    """Every hidden-to-hidden weight and every bias of layers 2..L-1 times its *own* positive factor
    (1e-2..1e2): far more than the network's symmetry, which scales whole rows and columns together."""
    weights, biases = list(x.weights), list(x.biases)
    for i in range(1, len(weights) - 1):
        weights[i] = weights[i] * torch.exp(torch.randn(weights[i].shape, generator=generator, dtype=x.dtype) * 2)
        biases[i] = biases[i] * torch.exp(torch.randn(biases[i].shape, generator=generator, dtype=x.dtype) * 2)
    return x.with_tensors(weights, biases)


def test_the_published_readout_sees_only_the_signs_of_hidden_to_hidden_entries() -> None:
    """Monomial-NFN on a ReLU MLP (Tran et al. 2024, Sec. 5-6), as published: a hidden-to-hidden field
    carries one character per entry, so the layers only mix its channels pointwise (homogeneous of
    degree 1 in that one entry), and the readout's ``x / ‖x‖`` then leaves only the entry's sign. The
    model is therefore invariant to rescaling each such entry on its own, a far larger group than the
    network's. With ``canonical=True`` and an HNP trunk the magnitudes reach the readout."""
    torch.manual_seed(0)
    spec = WeightSpaceSpec.mlp([5, 6, 6, 3], "relu")
    x = spec.randn(4, dtype=torch.float64)
    moved = _rescale_hidden_entries(x, torch.Generator().manual_seed(1))
    published = nfkit.models.invariant("monomial", spec, 2).double().eval()
    canonical = nfkit.models.invariant("monomial", spec, 2, canonical=True, trunk_channels=[4, 4]).double().eval()
    with torch.no_grad():
        assert torch.allclose(published(moved), published(x), rtol=0, atol=1e-12)
        assert (canonical(moved) - canonical(x)).abs().max() > 1e-3
