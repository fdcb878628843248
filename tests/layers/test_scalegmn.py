"""ScaleGMN: invariance and equivariance to permutations × the activation's scalings, factor by factor."""

import pytest
import torch

from conftest import make_cnn, make_mlp
from nfkit.errors import UnsupportedArchitectureError
from nfkit.groups import Factor, permutations, positive_scalings, sign_flips
from nfkit.layers.scalegmn import invariant_of
from nfkit.models import equivariant, invariant
from nfkit.spaces import spec_of
from nfkit.testing import assert_equivariant, assert_invariant, assert_not_equivariant

FACTORS = {"permutations": permutations, "positive scaling": positive_scalings, "sign flips": sign_flips}


@pytest.mark.parametrize("activation", ["relu", "tanh", "sine"])
@pytest.mark.parametrize("kind", ["mlp", "cnn"])
def test_symmetry_whole_group_each_factor_and_negative_control(activation, kind):
    net = make_mlp(activation) if kind == "mlp" else make_cnn(activation)
    spec = spec_of(net)
    torch.manual_seed(0)
    inv = invariant("scalegmn", spec, out_features=3, hidden_channels=[8, 8]).double()
    equi = equivariant("scalegmn", spec, out_channels=2, hidden_channels=[8, 8]).double()
    expected = {Factor.PERMUTATION, Factor.SIGN_FLIP if activation != "relu" else Factor.POSITIVE_SCALING}
    assert inv.group.factors == expected and equi.group.factors == expected
    x = spec.randn(2, 1, dtype=torch.float64)
    assert_invariant(inv, inv.group, x)
    assert_equivariant(equi, equi.group, x)
    for factor in expected:  # large scalings (1e-3..1e3) and sign flips on their own
        group = FACTORS[factor.value](spec.hidden_sizes)
        assert_invariant(inv, group, x)
        assert_equivariant(equi, group, x)
    larger = inv.group.negative_control()
    assert larger is not None
    assert_not_equivariant(inv, larger, x)
    assert_not_equivariant(equi, larger, x)


def test_the_invariant_layer_rho():
    z = torch.randn(4, 5, dtype=torch.float64)
    d = torch.rand(4, 1, dtype=torch.float64) * 1e3 + 1e-3
    s = torch.randint(0, 2, (4, 1)).double() * 2 - 1
    assert torch.allclose(invariant_of(z * d, signs=False), invariant_of(z, signs=False), rtol=1e-13)
    assert torch.equal(invariant_of(z * s, signs=True), invariant_of(z, signs=True))
    assert not torch.allclose(invariant_of(-z, signs=False), invariant_of(z, signs=False))
    assert torch.isfinite(invariant_of(torch.zeros(2, 3), signs=False)).all()


def test_networks_without_scaling_or_sign_symmetry_are_refused():
    with pytest.raises(UnsupportedArchitectureError, match="use 'np' or 'hnp'"):
        invariant("scalegmn", spec_of(make_mlp("gelu")))


def test_it_learns_a_scale_invariant_target():
    # the sign of the network's output at a fixed input, over random ReLU MLPs: invariant to the
    # group, and learnable from weights alone
    torch.manual_seed(0)
    spec = spec_of(make_mlp("relu"))
    model = invariant("scalegmn", spec, out_features=1, hidden_channels=[16, 16])
    from nfkit.spaces.functional import evaluate_networks

    data = spec.randn(128)
    probe = torch.ones(1, spec.neuron_sizes[0])
    target = (evaluate_networks(data, probe)[:, 0, 0] > 0).float()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(150):
        loss = torch.nn.functional.binary_cross_entropy_with_logits(model(data)[:, 0], target)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    accuracy = ((model(data)[:, 0] > 0).float() == target).float().mean()
    assert accuracy > 0.85
