import pytest
import torch

from nfkit.errors import GroupMismatchError
from nfkit.groups import (
    Factor,
    HiddenNeuronGroup,
    MonomialElement,
    permutations,
    positive_scalings,
    sign_flips,
    trivial,
)
from nfkit.spaces import WeightSpaceSpec

SIZES = (4, 3, 5)
SPEC = WeightSpaceSpec.mlp([2, *SIZES, 3])
GROUPS = {
    "trivial": trivial(SIZES),
    "perm": permutations(SIZES),
    "scale": positive_scalings(SIZES),
    "sign": sign_flips(SIZES),
    "perm×scale": permutations(SIZES) * positive_scalings(SIZES),
    "perm×sign": permutations(SIZES) * sign_flips(SIZES),
    "monomial": permutations(SIZES) * positive_scalings(SIZES) * sign_flips(SIZES),
}


@pytest.fixture(params=sorted(GROUPS))
def group(request: pytest.FixtureRequest) -> HiddenNeuronGroup:
    return GROUPS[request.param]


def test_identity_acts_trivially(group, generator):
    x = SPEC.randn(2, 3, generator=generator, dtype=torch.float64)
    assert group.identity().act(x).allclose(x, rtol=0, atol=0)


def test_inverse(group, generator):
    g = group.sample(generator)
    assert (g @ g.inverse()).allclose(group.identity())
    assert (g.inverse() @ g).allclose(group.identity())
    x = SPEC.randn(2, 3, generator=generator, dtype=torch.float64)
    assert g.inverse().act(g.act(x)).allclose(x, rtol=1e-12, atol=0)


def test_associativity(group, generator):
    g, h, k = (group.sample(generator) for _ in range(3))
    assert ((g @ h) @ k).allclose(g @ (h @ k))


def test_acting_with_a_composition_equals_acting_twice(group, generator):
    g, h = group.sample(generator), group.sample(generator)
    x = SPEC.randn(2, 3, generator=generator, dtype=torch.float64)
    assert (g @ h).act(x).allclose(g.act(h.act(x)), rtol=1e-12, atol=0)


def test_sampling_is_deterministic_and_in_the_group(group):
    a = group.sample(torch.Generator().manual_seed(7))
    b = group.sample(torch.Generator().manual_seed(7))
    assert a.allclose(b)
    for src, d in zip(a.sources, a.scales):
        if Factor.PERMUTATION not in group.factors:
            assert torch.equal(src, torch.arange(src.numel()))
        if Factor.SIGN_FLIP not in group.factors:
            assert bool((d > 0).all())
        if Factor.POSITIVE_SCALING not in group.factors:
            assert bool((d.abs() == 1).all())


def test_positive_scales_span_the_range():
    g = positive_scalings([10_000]).sample(torch.Generator().manual_seed(0))
    d = g.scales[0]
    assert d.min() < 2e-3 and d.max() > 5e2 and d.min() >= 1e-3 and d.max() <= 1e3


def test_input_and_output_neurons_are_never_acted_on(generator):
    x = SPEC.randn(1, 1, generator=generator, dtype=torch.float64)
    y = GROUPS["monomial"].sample(generator).act(x)
    # the column sums of |W1| per input neuron and the last bias are preserved up to scaling/order
    assert torch.equal(y.biases[-1], x.biases[-1])
    assert torch.allclose(
        torch.sort(y.weights[0][0, 0, :, 0].abs() / (y.weights[0][0, 0, :, 1].abs())).values,
        torch.sort(x.weights[0][0, 0, :, 0].abs() / (x.weights[0][0, 0, :, 1].abs())).values,
    )


def test_action_formula_on_a_single_hidden_layer():
    spec = WeightSpaceSpec.mlp([1, 2, 1])
    x = spec.zeros(1, 1, dtype=torch.float64)
    x = x.with_tensors(
        [torch.tensor([[[[1.0], [2.0]]]], dtype=torch.float64), torch.tensor([[[[3.0, 4.0]]]], dtype=torch.float64)],
        [torch.tensor([[[5.0, 6.0]]], dtype=torch.float64), torch.tensor([[[7.0]]], dtype=torch.float64)],
    )
    g = MonomialElement([torch.tensor([1, 0])], [torch.tensor([10.0, -2.0])])
    y = g.act(x)
    # new neuron 0 is old neuron 1 scaled by 10, new neuron 1 is old neuron 0 scaled by -2
    assert y.weights[0].flatten().tolist() == [20.0, -2.0]
    assert y.biases[0].flatten().tolist() == [60.0, -10.0]
    assert y.weights[1].flatten().tolist() == [0.4, -1.5]
    assert y.biases[1].flatten().tolist() == [7.0]


def test_names_products_and_subgroups():
    assert GROUPS["perm×scale"].name == "permutations × positive scaling"
    assert GROUPS["trivial"].name == "trivial"
    assert GROUPS["monomial"].contains(GROUPS["perm×sign"])
    assert not GROUPS["perm×sign"].contains(GROUPS["perm×scale"])
    assert GROUPS["perm"] == permutations(SIZES) and hash(GROUPS["perm"]) == hash(permutations(SIZES))
    assert not permutations(SIZES).contains(permutations((4, 3)))
    with pytest.raises(GroupMismatchError):
        permutations(SIZES) * permutations((1, 2))


def test_bad_elements_are_rejected():
    with pytest.raises(GroupMismatchError, match="not a permutation"):
        MonomialElement([torch.tensor([0, 0])], [torch.ones(2)])
    with pytest.raises(GroupMismatchError, match="non-zero"):
        MonomialElement([torch.tensor([0, 1])], [torch.tensor([1.0, 0.0])])
    with pytest.raises(GroupMismatchError):
        MonomialElement([torch.tensor([0, 1])], [])
    with pytest.raises(ValueError):
        HiddenNeuronGroup([3], [Factor.POSITIVE_SCALING], scale_range=(0.0, 1.0))


def test_acting_on_features_of_other_sizes_is_an_error(generator):
    g = permutations((4, 3)).sample(generator)
    with pytest.raises(GroupMismatchError, match="hidden sizes"):
        g.act(SPEC.randn(1))
    with pytest.raises(GroupMismatchError):
        g @ permutations(SIZES).sample(generator)
