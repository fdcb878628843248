"""Monomial-NFN layers: equivariance, the reference's parameter counts, and a loop reference."""

import pytest
import torch

from conftest import make_cnn, make_mlp
from nfkit.errors import UnsupportedArchitectureError
from nfkit.groups import Factor, permutations, positive_scalings, sign_flips
from nfkit.layers.monomial import MonomialInvariantMap, MonomialLinear, MonomialPool, monomial_group
from nfkit.spaces import WeightSpaceSpec, spec_of
from nfkit.testing import assert_equivariant, assert_invariant, assert_not_equivariant, check_symmetry

count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731


def test_group_follows_the_activation():
    assert monomial_group(spec_of(make_mlp("relu"))).factors == {Factor.PERMUTATION, Factor.POSITIVE_SCALING}
    assert monomial_group(spec_of(make_mlp("tanh"))).factors == {Factor.PERMUTATION, Factor.SIGN_FLIP}
    with pytest.raises(UnsupportedArchitectureError, match="use 'np' or 'hnp'"):
        monomial_group(spec_of(make_mlp("gelu")))


def test_parameter_counts_match_the_paper_layers():
    # results.md §5.4: HNPSLinear 3,344 and HNPS_SirenLinear 3,856 on SIREN 2-32-32-1 at 16 channels
    assert count(MonomialLinear(WeightSpaceSpec.mlp([2, 32, 32, 1], "relu"), 16, 16)) == 3344
    assert count(MonomialLinear(WeightSpaceSpec.mlp([2, 32, 32, 1], "sine"), 16, 16)) == 3856


@pytest.mark.parametrize("activation", ["relu", "tanh", "sine"])
@pytest.mark.parametrize("kind", ["mlp", "mlp-2-layer", "cnn"])
@pytest.mark.parametrize("folded", ["exact", "factorised"])
def test_equivariance(activation, kind, folded):
    net = {"mlp": make_mlp(activation), "mlp-2-layer": make_mlp(activation, (3, 5, 2)), "cnn": make_cnn(activation)}[kind]
    spec = spec_of(net)
    layer = MonomialLinear(spec, 2, 3, folded=folded)
    x = spec.randn(2, 2)
    assert_equivariant(layer, layer.group, x)
    sizes = spec.hidden_sizes
    # the factors separately: large scalings (1e-3..1e3) and sign flips
    for factor in layer.group.factors:
        assert_equivariant(layer, {"permutations": permutations, "positive scaling": positive_scalings,
                                   "sign flips": sign_flips}[factor.value](sizes), x)
    if Factor.POSITIVE_SCALING in layer.group.factors:
        # with exponent characters the layer commutes with every non-zero diagonal
        assert_equivariant(layer, layer.group * sign_flips(sizes), x)
    else:
        # the sign variant's extra terms break positive scaling: its negative control
        assert_not_equivariant(layer, layer.group * positive_scalings(sizes), x)


def test_linear_terms_against_the_paper_equations():
    """Tran et al. 2024, Eq. (5)-(7), entry by entry, for a ReLU MLP 3-4-5-2."""
    spec = WeightSpaceSpec.mlp([3, 4, 5, 2], "relu")
    layer = MonomialLinear(spec, 2, 3).double()
    with torch.no_grad():
        layer.constant.normal_()
    x = spec.randn(1, 2, dtype=torch.float64)
    (W1, W2, W3), (b1, b2, b3) = [w[0] for w in x.weights], [b[0] for b in x.biases]
    names = [f.name for f in layer.fields]
    block = {names[n]: (g, members) for g, members in enumerate(layer.blocks) for n in members}
    with torch.no_grad():
        y = layer(x)
        # first layer: W1 rows and b1 together, mixing over (channel, input index)
        g, members = block["W1"]
        assert [names[n] for n in members] == ["W1", "b1"]
        mixer = layer.mixers[g]  # rows (c'·3 + k | c'), cols (c·3 + q | c)
        for j in range(4):
            inp = torch.cat([W1[:, j, :].reshape(-1), b1[:, j]])
            out = mixer @ inp
            assert torch.allclose(out[:9].view(3, 3), y.weights[0][0, :, j, :])
            assert torch.allclose(out[9:], y.biases[0][0, :, j])
        # hidden W2 and b2: pointwise channel mixing
        g, _ = block["W2"]
        assert torch.allclose(torch.einsum("dc,cjk->djk", layer.mixers[g], W2), y.weights[1][0])
        g, _ = block["b2"]
        assert torch.allclose(layer.mixers[g] @ b2, y.biases[1][0])
        # last layer: mixing over the output index p
        g, _ = block["W3"]
        assert torch.allclose(
            torch.einsum("dc,ck->dk", layer.mixers[g], W3.reshape(4, 5)), y.weights[2][0].reshape(6, 5)
        )
        g, _ = block["b3"]
        assert torch.allclose(layer.mixers[g] @ b3.reshape(-1) + layer.constant, y.biases[2][0].reshape(-1))


def test_invariant_map_is_invariant_per_field():
    for activation in ("relu", "tanh"):
        spec = spec_of(make_cnn(activation))
        group = monomial_group(spec)
        inv = MonomialInvariantMap(spec, 2, group)
        with torch.no_grad():
            inv.gamma.normal_()
            inv.beta.normal_()
        inv = inv.double()
        scalings = positive_scalings if activation == "relu" else sign_flips

        def flat(f, inv=inv):
            return torch.cat([t.flatten(1) for t in inv(f)], dim=1)

        # scaling alone moves no position, so every output entry must be exactly invariant
        report = check_symmetry(flat, scalings(spec.hidden_sizes), spec.randn(2, 2, dtype=torch.float64))
        assert report.passed, report


def test_wide_inputs_are_factorised_by_default_and_keep_the_group():
    mnist = WeightSpaceSpec.mlp([784, 64, 64, 10], "relu")
    layer = MonomialLinear(mnist, 32, 32)
    assert layer.factorised_blocks and count(layer) < 100_000  # the exact W⁽¹⁾ block alone: (32·785)²
    wide = WeightSpaceSpec.mlp([300, 5, 4, 3], "tanh")
    layer, pool = MonomialLinear(wide, 2, 3), MonomialPool(wide, 3, monomial_group(wide))
    assert layer.factorised_blocks and list(pool.projections) == ["0"]
    x = wide.randn(2, 2, dtype=torch.float64)
    layer, pool = layer.double(), pool.double()
    assert_equivariant(layer, layer.group, x)
    assert_not_equivariant(layer, layer.group * positive_scalings(wide.hidden_sizes), x)
    pool.group = layer.group
    assert_invariant(pool, inputs=layer(x))
    assert pool(layer(x)).shape == (2, pool.num_outputs(3))


def test_gradients_are_finite_with_zero_biases():
    spec = WeightSpaceSpec.mlp([3, 4, 5, 2], bias=False)
    model_layer = MonomialLinear(spec, 1, 2)
    inv = MonomialInvariantMap(spec, 2, model_layer.group)
    out = sum(t.sum() for t in inv(model_layer(spec.randn(2))))
    out.backward()
    assert all(torch.isfinite(p.grad).all() for p in list(model_layer.parameters()) + list(inv.parameters()))
