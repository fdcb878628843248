"""LearnedOptimizer: equivariance of a step (float64) with negative controls, plain-loop training, state."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from nfkit.errors import NfkitError, SpecMismatchError, UnsupportedModuleError
from nfkit.groups.neurons import positive_scalings
from nfkit.optim import LearnedOptimizer, UpdateRule
from nfkit.spaces import load_into, spec_of, weights_of
from nfkit.spaces.features import WeightSpaceFeatures


def _net(sizes: tuple[int, ...] = (5, 7, 6, 3), dtype: torch.dtype = torch.float64, seed: int = 0) -> nn.Sequential:
    torch.manual_seed(seed)
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b, dtype=dtype))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def _batches(n: int, inputs: int = 5, classes: int = 3) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(1)
    return [(torch.randn(16, inputs, generator=g, dtype=torch.float64), torch.randint(0, classes, (16,), generator=g)) for _ in range(n)]


def _train(net: nn.Module, optimizer: torch.optim.Optimizer, batches: list[tuple[torch.Tensor, torch.Tensor]]) -> None:
    for x, y in batches:
        optimizer.zero_grad()
        nn.functional.cross_entropy(net(x), y).backward()
        optimizer.step()


def _fresh_rule(family: str, seed: int = 0) -> UpdateRule:
    torch.manual_seed(seed)
    rule = UpdateRule(spec_of(_net()), family, hidden_channels=[8, 8], beta=1.0).double()  # type: ignore[arg-type]
    return rule


def _step_error(rule: UpdateRule, element_of: str = "group", steps: int = 4) -> float:
    """max |step(g·W) − g·step(W)| / max |step(W)|, with a random element of the optimizer's group (or a larger one)."""
    net = _net()
    optimizer = LearnedOptimizer(net, rule)
    group = optimizer.group if element_of == "group" else optimizer.group * positive_scalings(optimizer.spec.hidden_sizes)
    element = group.sample(torch.Generator().manual_seed(3))
    moved = load_into(copy.deepcopy(net), weights_of(net).transform(element))
    before = weights_of(net)
    _train(net, optimizer, _batches(steps))
    _train(moved, LearnedOptimizer(moved, rule), _batches(steps))
    expected = weights_of(net).transform(element)
    got = weights_of(moved)
    assert isinstance(expected, WeightSpaceFeatures) and isinstance(got, WeightSpaceFeatures) and isinstance(before, WeightSpaceFeatures)
    change = max(float((a - b).abs().max()) for a, b in zip(weights_of(net).tensors(), before.tensors()))
    return max(float((a - b).abs().max()) for a, b in zip(expected.tensors(), got.tensors())) / change


@pytest.mark.parametrize("family", ["np", "hnp", "per-parameter"])
def test_a_step_of_a_permuted_network_is_the_permuted_step(family: str) -> None:
    assert _step_error(_fresh_rule(family)) < 1e-10


class _Positional(nn.Module):
    """f with a learned offset per weight entry: sees positions, so it is not permutation-equivariant."""

    def __init__(self, features: WeightSpaceFeatures) -> None:
        super().__init__()
        self.weight_offsets = nn.ParameterList([nn.Parameter(torch.randn_like(t[:, :1])) for t in features.weights])
        self.bias_offsets = nn.ParameterList([nn.Parameter(torch.randn_like(t[:, :1])) for t in features.biases])

    def forward(self, features: WeightSpaceFeatures) -> WeightSpaceFeatures:
        return features.with_tensors(list(self.weight_offsets), list(self.bias_offsets))


def test_negative_control_an_update_network_that_sees_positions_is_not_equivariant() -> None:
    rule = _fresh_rule("np")
    spec = rule.spec
    rule.network = _Positional(spec.randn(1, channels=1, dtype=torch.float64))
    assert _step_error(rule) > 1e-3


def test_negative_control_a_step_is_not_equivariant_to_rescaling_hidden_neurons() -> None:
    # ReLU networks compute the same function after positive rescaling, but their gradients do not
    # transform the same way: the optimizer's group is permutations only, and the check can tell
    assert _step_error(_fresh_rule("np"), element_of="larger group") > 1e-3


@pytest.mark.parametrize("family", ["np", "per-parameter"])
def test_trains_an_ordinary_module_in_a_plain_loop(family: str) -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 4))
    x = torch.randn(256, 8)
    y = (x[:, :4].argmax(dim=1))
    optimizer = LearnedOptimizer(net, family, hidden_channels=[8, 8])
    first = None
    for _ in range(150):
        loss = nn.functional.cross_entropy(net(x), y)
        first = float(loss.detach()) if first is None else first
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert float(nn.functional.cross_entropy(net(x), y).detach()) < 0.3 * first


def test_state_dict_restores_the_run_exactly() -> None:
    batches = _batches(6)
    net = _net()
    optimizer = LearnedOptimizer(net, "np", hidden_channels=[8])
    _train(net, optimizer, batches[:3])
    saved_net, saved_state = copy.deepcopy(net.state_dict()), copy.deepcopy(optimizer.state_dict())
    _train(net, optimizer, batches[3:])

    other = _net(seed=5)
    other.load_state_dict(saved_net)
    restored = LearnedOptimizer(other, "np", hidden_channels=[8])  # fresh rule, replaced by the state's
    restored.load_state_dict(saved_state)
    _train(other, restored, batches[3:])
    for a, b in zip(net.parameters(), other.parameters()):
        assert torch.equal(a, b)


def test_save_and_load_a_rule_file(tmp_path: torch.Tensor) -> None:
    rule = _fresh_rule("np").float()
    rule.save(tmp_path / "optimizer.pt")  # type: ignore[operator]
    net = _net(dtype=torch.float32)
    loaded = LearnedOptimizer.load(tmp_path / "optimizer.pt", net)  # type: ignore[operator]
    for a, b in zip(rule.parameters(), loaded.rule.parameters()):
        assert torch.equal(a, b)
    # np's parameters do not depend on widths or input/output sizes: the rule moves to another MLP
    LearnedOptimizer.load(tmp_path / "optimizer.pt", _net((9, 20, 11, 4), dtype=torch.float32))  # type: ignore[operator]


def test_bad_inputs_are_clear_errors(tmp_path: torch.Tensor) -> None:
    bad = tmp_path / "bad.pt"  # type: ignore[operator]
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(NfkitError, match="not a readable learned-optimizer file"):
        LearnedOptimizer.load(bad, _net())
    with pytest.raises(NfkitError, match="does not exist"):
        LearnedOptimizer.load(tmp_path / "missing.pt", _net())  # type: ignore[operator]
    with pytest.raises(SpecMismatchError, match="different layer structure"):
        LearnedOptimizer(_net((5, 7, 3)), _fresh_rule("np"))
    with pytest.raises(SpecMismatchError, match="depends on layer sizes"):
        LearnedOptimizer(_net((9, 7, 6, 3)), _fresh_rule("hnp"))
    with pytest.raises(UnsupportedModuleError):
        LearnedOptimizer(nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4)), "np")
    with pytest.raises(NfkitError, match="no update family"):
        LearnedOptimizer(_net(), "adamw")
