import pytest
import torch

from nfkit.errors import SpecMismatchError, UnsupportedModuleError
from nfkit.groups import Factor
from nfkit.spaces import Activation, Axis, LayerSpec, WeightSpaceSpec


def test_sizes_and_axes():
    spec = WeightSpaceSpec(
        (
            LayerSpec("conv", 16, 1, kernel=(3, 3)),
            LayerSpec("conv", 8, 16, kernel=(3, 3), bias=False),
            LayerSpec("dense", 10, 8, input_reduction="global_avg_pool"),
        )
    )
    assert spec.neuron_sizes == (1, 16, 8, 10)
    assert spec.hidden_sizes == (16, 8)
    assert spec.num_parameters == 16 * 9 + 16 + 8 * 16 * 9 + 80 + 10
    assert spec.weight_axes(0) == (Axis("neuron", 1), Axis("neuron", 0), Axis("kernel", 0), Axis("kernel", 1))
    assert spec.bias_axes(2) == (Axis("neuron", 3),)
    assert [spec.is_hidden(n) for n in range(4)] == [False, True, True, False]


def test_specs_are_frozen_and_hashable():
    a = WeightSpaceSpec.mlp([2, 3, 1], "tanh")
    b = WeightSpaceSpec.mlp([2, 3, 1], "tanh")
    assert a == b and hash(a) == hash(b) and len({a, b}) == 1
    assert a != WeightSpaceSpec.mlp([2, 3, 1], "relu")
    assert a.shape_key == WeightSpaceSpec.mlp([2, 3, 1], "relu").shape_key
    with pytest.raises(AttributeError):
        a.layers = ()  # type: ignore[misc]


@pytest.mark.parametrize(
    "activation, factors",
    [
        ("relu", {Factor.PERMUTATION, Factor.POSITIVE_SCALING}),
        ("leaky_relu", {Factor.PERMUTATION, Factor.POSITIVE_SCALING}),
        ("tanh", {Factor.PERMUTATION, Factor.SIGN_FLIP}),
        ("sine", {Factor.PERMUTATION, Factor.SIGN_FLIP}),
        ("gelu", {Factor.PERMUTATION}),
        ("sigmoid", {Factor.PERMUTATION}),
        ("identity", {Factor.PERMUTATION, Factor.POSITIVE_SCALING, Factor.SIGN_FLIP}),
    ],
)
def test_symmetry_group_follows_the_hidden_activations(activation, factors):
    assert WeightSpaceSpec.mlp([3, 4, 4, 2], activation).symmetry_group().factors == factors


def test_mixed_activations_keep_only_the_common_symmetry():
    spec = WeightSpaceSpec(
        (
            LayerSpec("dense", 4, 3, activation=Activation.parse("relu")),
            LayerSpec("dense", 4, 4, activation=Activation.parse("tanh")),
            LayerSpec("dense", 2, 4),
        )
    )
    assert spec.symmetry_group().factors == {Factor.PERMUTATION}


def test_randn_shapes_and_zero_biases_for_bias_free_layers():
    spec = WeightSpaceSpec.mlp([3, 4, 2], bias=False)
    f = spec.randn(5, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    assert f.weights[0].shape == (5, 2, 4, 3) and f.biases[1].shape == (5, 2, 2)
    assert f.dtype == torch.float64
    assert all(bool((b == 0).all()) for b in f.biases)


def test_inconsistent_layers_are_rejected():
    with pytest.raises(SpecMismatchError, match="takes 5 inputs"):
        WeightSpaceSpec((LayerSpec("dense", 4, 3), LayerSpec("dense", 2, 5)))
    with pytest.raises(SpecMismatchError, match="conv layer after a dense"):
        WeightSpaceSpec((LayerSpec("dense", 4, 3), LayerSpec("conv", 2, 4, kernel=(3, 3))))
    with pytest.raises(SpecMismatchError):
        WeightSpaceSpec(())
    with pytest.raises(SpecMismatchError):
        LayerSpec("dense", 4, 3, kernel=(3,))
    with pytest.raises(UnsupportedModuleError, match="supported"):
        WeightSpaceSpec.mlp([2, 3, 1], "softplus")


def test_require_compatible_names_both_specs():
    a = WeightSpaceSpec.mlp([2, 3, 1])
    with pytest.raises(SpecMismatchError, match=r"expected: dense 2→3.*\n.*got:      dense 2→4"):
        a.require_compatible(WeightSpaceSpec.mlp([2, 4, 1]))
