import pytest
import torch

from nfkit.errors import NonFiniteWeightsError, SpecMismatchError
from nfkit.spaces import LayerSpec, WeightSpaceFeatures, WeightSpaceSpec, cat_channels, stack

SPEC = WeightSpaceSpec((LayerSpec("conv", 4, 2, kernel=(3, 3)), LayerSpec("dense", 3, 4)))


def test_shapes_are_checked_on_construction():
    f = SPEC.randn(2, 3)
    with pytest.raises(SpecMismatchError, match=r"layer 1 .* weight has shape \(2, 3, 4, 2, 3\)"):
        WeightSpaceFeatures(SPEC, [f.weights[0][..., 0], f.weights[1]], f.biases)
    with pytest.raises(SpecMismatchError, match="batch and channels"):
        WeightSpaceFeatures(SPEC, [f.weights[0], f.weights[1][:1]], f.biases)
    with pytest.raises(SpecMismatchError, match="2 layers"):
        WeightSpaceFeatures(SPEC, f.weights[:1], f.biases[:1])
    with pytest.raises(SpecMismatchError, match="not a tensor"):
        WeightSpaceFeatures(SPEC, [f.weights[0], f.weights[1].numpy()], f.biases)


def test_immutable():
    f = SPEC.randn(1)
    with pytest.raises(AttributeError):
        f.weights = ()


def test_arithmetic_and_map():
    f, g = SPEC.randn(2, 3, dtype=torch.float64), SPEC.randn(2, 3, dtype=torch.float64)
    assert (f + g - g).allclose(f)
    assert (2 * f / 2).allclose(f) and (-f + f).allclose(SPEC.zeros(2, 3, dtype=torch.float64))
    assert (1 - f).allclose(f.map(lambda t: 1 - t))
    assert (f * g).weights[0].equal(f.weights[0] * g.weights[0])
    with pytest.raises(SpecMismatchError):
        f + WeightSpaceSpec.mlp([2, 3]).randn(2, 3)
    scale = torch.tensor(0.5, dtype=torch.float64, requires_grad=True)
    scaled = f * scale  # a learned scalar, as INR editing uses
    assert scaled.allclose(f * 0.5) and scaled.weights[0].requires_grad
    with pytest.raises(TypeError):
        f * torch.ones(3)


def test_batch_indexing_keeps_the_batch_axis():
    f = SPEC.randn(5, 2)
    assert len(f[0]) == 1 and len(f[-1]) == 1 and len(f[1:4]) == 3 and len(f[[0, 2]]) == 2
    assert f[-1].weights[1].equal(f.weights[1][4:])
    assert f[torch.tensor([True, False, True, False, True])].batch_size == 3
    with pytest.raises(IndexError):
        f[5]


def test_flatten_round_trip():
    f = SPEC.randn(3, 2)
    flat = f.flatten()
    assert flat.shape == (3, 2, 4 * 2 * 9 + 4 + 12 + 3)
    assert WeightSpaceFeatures.unflatten(SPEC, flat).allclose(f, rtol=0, atol=0)
    with pytest.raises(SpecMismatchError):
        WeightSpaceFeatures.unflatten(SPEC, flat[..., :-1])


def test_stack_and_cat_channels():
    a, b = SPEC.randn(2, 3), SPEC.randn(1, 3)
    s = stack([a, b])
    assert len(s) == 3 and s[2:].allclose(b)
    assert cat_channels([a, a]).channels == 6
    other = WeightSpaceSpec((LayerSpec("conv", 4, 2, kernel=(3, 3)), LayerSpec("dense", 3, 4, bias=False)))
    with pytest.raises(SpecMismatchError, match="item 1"):
        stack([a, other.randn(1, 3)])
    with pytest.raises(ValueError):
        stack([])


def test_to_detach_clone():
    f = SPEC.randn(1)
    g = f.to(torch.float64)
    assert g.dtype == torch.float64 and g.device == torch.device("cpu")
    assert f.clone().allclose(f) and f.detach().allclose(f)


def test_check_finite_names_the_tensor():
    f = SPEC.randn(2)
    bad = f.with_tensors(f.weights, [f.biases[0], f.biases[1].clone().fill_(float("inf"))])
    with pytest.raises(NonFiniteWeightsError, match="layer 2 bias"):
        bad.check_finite()
    assert f.check_finite() is f
