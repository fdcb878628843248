"""Gaussian Fourier features: entrywise, so permutation-equivariant, and (the negative control) nothing more."""

import pytest
import torch

from nfkit.errors import UnknownOptionError
from nfkit.groups import permutations, sign_flips
from nfkit.layers.pointwise import GaussianFourierFeatures
from nfkit.models import invariant
from nfkit.spaces import WeightSpaceSpec
from nfkit.testing import assert_equivariant, assert_invariant, assert_not_equivariant

SPEC = WeightSpaceSpec.mlp([2, 6, 5, 1], "sine")


def test_features_are_sines_and_cosines_of_random_frequencies():
    layer = GaussianFourierFeatures(1, mapping=4, scale=3.0).double()
    x = SPEC.randn(2, dtype=torch.float64)
    out = layer(x)
    angle = 2 * torch.pi * x.weights[0][:, 0, 1, 0] * layer.frequencies[0, 2]
    assert out.channels == 8
    assert torch.allclose(out.weights[0][:, 2, 1, 0], angle.sin()) and torch.allclose(out.weights[0][:, 6, 1, 0], angle.cos())
    assert torch.equal(GaussianFourierFeatures(1, 4, 3.0).frequencies, GaussianFourierFeatures(1, 4, 3.0).frequencies)


def test_commutes_with_permutations_but_not_with_sign_flips():
    layer = GaussianFourierFeatures(2, mapping=4).double()
    x = SPEC.randn(2, 2, dtype=torch.float64)
    assert_equivariant(layer, permutations(SPEC.hidden_sizes), x)
    assert_not_equivariant(layer, permutations(SPEC.hidden_sizes) * sign_flips(SPEC.hidden_sizes), x)


@pytest.mark.parametrize("family", ["np", "hnp"])
def test_permutation_families_offer_them_and_stay_invariant(family):
    model = invariant(family, SPEC, out_features=3, hidden_channels=[8, 8], fourier_features=8, fourier_scale=3.0).double()
    assert_invariant(model)
    assert_not_equivariant(model, model.group * sign_flips(SPEC.hidden_sizes))


def test_sign_symmetric_families_do_not_offer_them():
    with pytest.raises(UnknownOptionError):
        invariant("monomial", SPEC, fourier_features=8)
    with pytest.raises(ValueError):
        GaussianFourierFeatures(1, mapping=0)
