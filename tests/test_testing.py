"""The checker, tested against deliberately broken layers."""

import pytest
import torch
from torch import nn

from nfkit.groups import permutations, positive_scalings
from nfkit.layers import NPLinear, NPPool
from nfkit.spaces import WeightSpaceFeatures, WeightSpaceSpec
from nfkit.testing import (
    assert_equivariant,
    assert_invariant,
    assert_not_equivariant,
    check_symmetry,
)

SPEC = WeightSpaceSpec.mlp([3, 5, 4, 2])


class BrokenEquivariant(nn.Module):
    """An NP layer plus a term that reads one hidden neuron by index: not permutation-equivariant."""

    def __init__(self, strength: float = 1.0) -> None:
        super().__init__()
        self.spec, self.group, self.in_channels = SPEC, permutations(SPEC.hidden_sizes), 2
        self.layer = NPLinear(SPEC, 2, 2)
        self.strength = strength

    def forward(self, x: WeightSpaceFeatures) -> WeightSpaceFeatures:
        y = self.layer(x)
        leak = x.weights[1][:, :, 0, 0, None, None] * self.strength  # neuron 0 of hidden layer 2, by position
        return y.with_tensors([y.weights[0], y.weights[1] + leak, y.weights[2]], y.biases)


class BrokenInvariant(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.spec, self.group, self.in_channels = SPEC, permutations(SPEC.hidden_sizes), 1
        self.pool = NPPool(SPEC)

    def forward(self, x: WeightSpaceFeatures) -> torch.Tensor:
        return self.pool(x) + x.biases[0][:, :, :1]  # the first hidden bias, by position


def test_correct_layer_passes_with_zero_configuration():
    layer = NPLinear(SPEC, 2, 3)
    layer.group = permutations(SPEC.hidden_sizes)
    report = assert_equivariant(layer)
    assert report.passed and report.kind == "equivariant" and report.max_error < 1e-12
    assert set(report.errors) == {f"{kind}[{i}]" for kind in ("weights", "biases") for i in range(3)}


def test_broken_equivariant_layer_is_caught_and_the_report_names_the_output():
    with pytest.raises(AssertionError) as info:
        assert_equivariant(BrokenEquivariant())
    message = str(info.value)
    assert "weights[1]" in message and "FAIL" in message
    # outputs that the leak does not touch are reported as fine
    report = check_symmetry(BrokenEquivariant())
    assert report.errors["weights[0]"] < 1e-12 and report.errors["weights[1]"] > 1e-3


def test_a_tiny_break_is_still_caught():
    report = check_symmetry(BrokenEquivariant(strength=1e-6))
    assert not report.passed


def test_broken_invariant_is_caught():
    with pytest.raises(AssertionError, match="not invariant"):
        assert_invariant(BrokenInvariant())
    assert_not_equivariant(BrokenInvariant(), permutations(SPEC.hidden_sizes))


def test_negative_control_fails_when_the_module_respects_the_larger_group():
    pool = NPPool(SPEC)
    pool.spec, pool.in_channels = SPEC, 1
    # NP pooling of a positive-scaled input is NOT invariant, so this control passes ...
    assert_not_equivariant(pool, permutations(SPEC.hidden_sizes) * positive_scalings(SPEC.hidden_sizes))
    # ... while claiming that NP pooling breaks permutations is caught as a wrong control
    with pytest.raises(AssertionError, match="negative control failed"):
        assert_not_equivariant(pool, permutations(SPEC.hidden_sizes))


def test_kind_mismatch_and_missing_declarations():
    layer = NPLinear(SPEC, 1, 1)
    group = permutations(SPEC.hidden_sizes)
    with pytest.raises(AssertionError, match="use assert_equivariant"):
        assert_invariant(layer, group, SPEC.randn(2))
    with pytest.raises(TypeError, match="does not declare `group`"):
        check_symmetry(layer)
    with pytest.raises(TypeError, match="does not declare `spec`"):
        check_symmetry(lambda x: x.weights[0].sum(), group)


def test_plain_functions_and_non_finite_outputs():
    group = permutations(SPEC.hidden_sizes)
    x = SPEC.randn(2)
    assert check_symmetry(lambda f: f.weights[0].sum(dim=(2, 3)), group, x).passed
    report = check_symmetry(lambda f: f.weights[0].sum(dim=(2, 3)) * float("nan"), group, x)
    assert report.max_error == float("inf") and not report.passed


def test_the_module_is_not_modified():
    layer = NPLinear(SPEC, 2, 3)
    layer.group = permutations(SPEC.hidden_sizes)
    layer.train()
    assert_equivariant(layer)
    assert layer.training and next(layer.parameters()).dtype == torch.float32
