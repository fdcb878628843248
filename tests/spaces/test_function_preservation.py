"""Every group element the spec declares leaves the real network's function unchanged (float64)."""

import copy

import pytest
import torch
from torch import nn

from conftest import ACTIVATIONS, make_cnn, make_mlp
from nfkit.groups import Factor, HiddenNeuronGroup, positive_scalings, sign_flips
from nfkit.spaces import load_into, spec_of, weights_of

POSITIVELY_HOMOGENEOUS = {"relu", "leaky_relu"}
ODD = {"tanh", "sine"}


def _networks():
    for act in ACTIVATIONS:
        yield f"mlp-{act}", lambda act=act: make_mlp(act)
        yield f"mlp-{act}-nobias", lambda act=act: make_mlp(act, bias=False)
        yield f"mlp-deep-{act}", lambda act=act: make_mlp(act, sizes=(4, 7, 6, 5, 4, 2))
        yield f"cnn-{act}", lambda act=act: make_cnn(act)
    yield "cnn-relu-k5-pad2-stride1", lambda: make_cnn("relu", kernel=5, stride=1, padding=2)
    yield "cnn-tanh-k1-nobias", lambda: make_cnn("tanh", kernel=1, stride=1, bias=False)
    yield "cnn-flatten-1x1", lambda: nn.Sequential(
        nn.Conv2d(2, 6, 3), nn.ReLU(), nn.Conv2d(6, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4, 2)
    ).double()


NETWORKS = dict(_networks())


def _input(net: nn.Module, generator: torch.Generator) -> torch.Tensor:
    first = next(m for m in net.modules() if isinstance(m, (nn.Linear, nn.Conv2d)))
    if isinstance(first, nn.Linear):
        return torch.randn(8, first.in_features, generator=generator, dtype=torch.float64)
    size = 5 if first.in_channels == 2 else 11
    return torch.randn(8, first.in_channels, size, size, generator=generator, dtype=torch.float64)


def _transformed(net: nn.Module, element) -> nn.Module:
    return load_into(copy.deepcopy(net), element.act(weights_of(net)))


def _max_rel_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).abs().max() / b.abs().max()).item()


def _factor_groups(group: HiddenNeuronGroup):
    yield group.name, group
    for factor in group.factors:
        yield factor.value, HiddenNeuronGroup(group.hidden_sizes, [factor])


@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_declared_group_preserves_the_function(name, generator):
    net = NETWORKS[name]().eval()
    spec = spec_of(net)
    x = _input(net, generator)
    expected = net(x)
    for group_name, group in _factor_groups(spec.symmetry_group()):
        for _ in range(3):
            g = group.sample(generator)
            err = _max_rel_diff(_transformed(net, g)(x), expected)
            assert err < 1e-9, f"{name}: {group_name} changed the output by {err:.2e}"


@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_declared_group_matches_the_activation(name):
    spec = spec_of(NETWORKS[name]())
    activation = next(a for a in ACTIVATIONS if f"-{a}" in name) if "flatten" not in name else "relu"
    factors = spec.symmetry_group().factors
    assert Factor.PERMUTATION in factors
    assert (Factor.POSITIVE_SCALING in factors) == (activation in POSITIVELY_HOMOGENEOUS)
    assert (Factor.SIGN_FLIP in factors) == (activation in ODD)


@pytest.mark.parametrize("activation", ["tanh", "sine", "sigmoid", "gelu"])
def test_negative_control_scaling_changes_non_homogeneous_nets(activation, generator):
    for net in (make_mlp(activation), make_cnn(activation)):
        x = _input(net, generator)
        g = positive_scalings(spec_of(net).hidden_sizes).sample(generator)
        assert _max_rel_diff(_transformed(net, g)(x), net(x)) > 1e-3


@pytest.mark.parametrize("activation", ["relu", "leaky_relu", "sigmoid", "gelu", "silu"])
def test_negative_control_sign_flips_change_non_odd_nets(activation, generator):
    for net in (make_mlp(activation), make_cnn(activation)):
        x = _input(net, generator)
        g = sign_flips(spec_of(net).hidden_sizes).sample(generator)
        assert _max_rel_diff(_transformed(net, g)(x), net(x)) > 1e-3
