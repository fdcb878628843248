"""Canonicalization: one point per scaling/sign orbit; with it, NP/HNP become invariant to those symmetries."""

import pytest
import torch

from conftest import make_cnn, make_mlp
from nfkit.errors import UnsupportedArchitectureError, UnknownOptionError
from nfkit.groups import Factor, positive_scalings, sign_flips
from nfkit.layers.canonical import Canonicalization
from nfkit.models import invariant
from nfkit.spaces import WeightSpaceSpec, spec_of
from nfkit.testing import assert_invariant, assert_not_equivariant, check_symmetry

NETS = {
    "siren": lambda: spec_of(make_mlp("sine")),
    "tanh-cnn": lambda: spec_of(make_cnn("tanh")),
    "relu-mlp": lambda: spec_of(make_mlp("relu")),
    "relu-cnn": lambda: spec_of(make_cnn("relu")),
    "relu-nobias": lambda: WeightSpaceSpec.mlp([3, 5, 4, 2], "relu", bias=False),
}


@pytest.mark.parametrize("net", list(NETS))
def test_every_point_of_an_orbit_maps_to_the_same_weights(net):
    spec = NETS[net]()
    front = Canonicalization(spec).double()
    factor_groups = {Factor.POSITIVE_SCALING: positive_scalings, Factor.SIGN_FLIP: sign_flips}
    x = spec.randn(3, 1, dtype=torch.float64)

    def flat(f):
        return torch.cat([t.flatten(1) for t in front(f).tensors()], dim=1)

    for factor in front.factors:  # scalings from 1e-3 to 1e3, sign flips: the canonical weights do not move
        report = check_symmetry(flat, factor_groups[factor](spec.hidden_sizes), x)
        assert report.passed, report
    # the canonical weights compute the same function as the input: they are a point of its orbit
    group = spec.symmetry_group()
    canonical = front(x)
    if Factor.POSITIVE_SCALING in front.factors:
        rows = canonical.weights[0][:, 0].flatten(2)
        if spec.layers[0].bias:
            rows = torch.cat([rows, canonical.biases[0][:, 0].unsqueeze(-1)], dim=-1)
        assert torch.allclose(rows.norm(dim=-1), torch.ones(()).double())
    assert group.factors >= front.factors


@pytest.mark.parametrize("family", ["np", "hnp", "graph", "nft", "statnn", "inr2array"])
@pytest.mark.parametrize("net", ["siren", "relu-cnn"])
def test_canonical_models_are_invariant_to_the_networks_whole_group(family, net):
    spec = NETS[net]()
    model = invariant(family, spec, 3, hidden_channels=[4, 4], canonical=True).double()
    if family == "statnn":  # its group is what its statistics respect: entry permutations; the front adds the factor
        assert Factor.PERMUTATION in model.group.factors
    group = spec.symmetry_group()
    assert model.group.factors == group.factors
    x = spec.randn(2, 1, dtype=torch.float64)
    assert_invariant(model, group, x)
    for factor in group.factors:  # each factor on its own (scalings 1e-3..1e3, sign flips)
        assert_invariant(model, group.restrict([factor]), x)
    # negative control: the factor the network does not have is not removed
    missing = positive_scalings if Factor.POSITIVE_SCALING not in group.factors else sign_flips
    assert_not_equivariant(model, group * missing(spec.hidden_sizes), x)
    # with Fourier features after the front (they commute with permutations only) it still holds
    if family == "np":
        ff = invariant(family, spec, 3, hidden_channels=[4], canonical=True, fourier_features=4).double()
        assert_invariant(ff, group, x)


def test_the_option_is_refused_where_it_has_nothing_to_do():
    with pytest.raises(UnsupportedArchitectureError, match="neither"):
        invariant("np", spec_of(make_mlp("gelu")), 1, canonical=True)
    with pytest.raises(UnknownOptionError, match="canonical"):
        invariant("monomial", spec_of(make_mlp("relu")), 1, canonical=True)
