"""UniversalCanonicalization: one point per scaling/sign orbit of any traced network; the canonical
weights compute the module's function; unf and statnn with it are invariant to the whole group."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from torch import nn

from nfkit.errors import UnsupportedArchitectureError
from nfkit.groups.universal import UniversalElement, UniversalGroup
from nfkit.layers.canonical_universal import UniversalCanonicalization, canonicalisation_order
from nfkit.models import invariant
from nfkit.nets import LoRALinear, RecurrentClassifier, SmallResNet, mlp, small_cnn_zoo
from nfkit.spaces import NeuronSet, TensorAxis, TensorSpec, UniversalSpec, universal_spec_of
from nfkit.spaces.trace import universal_load_into, universal_weights_of
from nfkit.testing import assert_invariant, assert_not_equivariant, check_symmetry

NETWORKS = {
    "relu-mlp": lambda: mlp((3, 5, 4, 2)),
    "tanh-mlp": lambda: nn.Sequential(nn.Linear(3, 5), nn.Tanh(), nn.Linear(5, 4), nn.Tanh(), nn.Linear(4, 2)),
    "cnn": lambda: small_cnn_zoo(nn.ReLU, padding=1),
    "gru": lambda: RecurrentClassifier(7, 4, 3, "gru", embedding=3),
    "lstm": lambda: RecurrentClassifier(3, 4, 2, "lstm", tokens=False),
    "lora": lambda: nn.Sequential(LoRALinear(4, 5, rank=2), nn.ReLU(), nn.Linear(5, 2)),
}
INPUTS = {
    "relu-mlp": lambda g: torch.randn(6, 3, generator=g, dtype=torch.float64),
    "tanh-mlp": lambda g: torch.randn(6, 3, generator=g, dtype=torch.float64),
    "cnn": lambda g: torch.randn(2, 1, 28, 28, generator=g, dtype=torch.float64),
    "gru": lambda g: torch.randint(0, 7, (2, 5), generator=g),
    "lstm": lambda g: torch.randn(2, 5, 3, generator=g, dtype=torch.float64),
    "lora": lambda g: torch.randn(6, 4, generator=g, dtype=torch.float64),
}


def _flat(front: UniversalCanonicalization):
    return lambda f: torch.cat([t.flatten(1) for t in front(f).tensors()], dim=1)


@pytest.mark.parametrize("net", list(NETWORKS))
def test_every_point_of_an_orbit_maps_to_the_same_weights(net: str) -> None:
    spec = universal_spec_of(NETWORKS[net]())
    front = UniversalCanonicalization(spec).double()
    x = spec.randn(3, 2, dtype=torch.float64)
    # the group the front serves: every set's permutations with its scalings/signs (a LoRA rank's GL(r)
    # is not canonicalised, only its permutations)
    group = UniversalGroup([replace(s, kind="permutation", factors=s.factors if s.kind == "permutation" else frozenset(),
                                    blocks="") for s in spec.sets])
    for subgroup in group.factor_subgroups()[1:]:  # scalings 1e-3..1e3 alone, sign flips alone
        report = check_symmetry(_flat(front), subgroup, x)
        assert report.passed, report
    # with the permutations too, the canonical weights move by the permutation alone
    g = group.sample(torch.Generator().manual_seed(1))
    permutation = UniversalElement({k: (src, torch.ones_like(d)) for k, (src, d) in g.permutations.items()})
    assert front(x.transform(g)).allclose(front(x).transform(permutation), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("net", list(NETWORKS))
def test_canonical_weights_compute_the_modules_function(net: str) -> None:
    torch.manual_seed(0)
    module = NETWORKS[net]().double()
    spec = universal_spec_of(module)
    inputs = INPUTS[net](torch.Generator().manual_seed(2))
    before = module(inputs)
    canonical = UniversalCanonicalization(spec)(universal_weights_of(module, spec))
    assert not canonical.allclose(universal_weights_of(module, spec))  # it did move the weights
    after = universal_load_into(module, canonical)(inputs)
    torch.testing.assert_close(after, before, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("family", ["unf", "statnn", "np"])
@pytest.mark.parametrize("net", ["tanh-mlp", "gru", "lstm", "lora"])
def test_canonical_models_are_invariant_to_the_networks_whole_group(family: str, net: str) -> None:
    spec = universal_spec_of(NETWORKS[net]())
    if family == "np" and any(len({a.set for a in t.axes if a}) < len([a for a in t.axes if a]) for t in spec.tensors):
        pytest.skip("np refuses a tensor with one set on two axes")
    model = invariant(family, spec, 2, hidden_channels=[3, 3], canonical=True).double()
    x = spec.randn(2, dtype=torch.float64)
    has_gl = any(s.kind == "gl" for s in spec.sets)
    assert model.group.name == spec.symmetry_group().name.replace(" × GL", "" if has_gl else " × GL")
    assert_invariant(model, model.group, x)
    for subgroup in model.group.factor_subgroups():  # permutations, scalings 1e-3..1e3, sign flips, each alone
        assert_invariant(model, subgroup, x)
    control = model.group.negative_control()  # the diagonal factor the network lacks is not removed
    assert control is not None
    assert_not_equivariant(model, control, x)


def test_the_gru_decides_its_hidden_signs_from_the_tensors_that_see_one_flip() -> None:
    spec = universal_spec_of(RecurrentClassifier(5, 4, 3, "gru", tokens=False))
    (step,) = canonicalisation_order(spec)
    read = {name for name, _ in step.out + step.into}
    assert "recurrent.weight_ih_l0[n]" in read and "recurrent.weight_hh_l0[r]" in read
    assert "recurrent.weight_hh_l0[n]" not in read  # the hidden set on two axes: d_i d_j


def test_refused_where_there_is_nothing_to_decide_or_no_tensor_to_decide_it_from() -> None:
    with pytest.raises(UnsupportedArchitectureError, match="neither"):
        UniversalCanonicalization(universal_spec_of(SmallResNet(width=3)))
    with pytest.raises(UnsupportedArchitectureError, match="neither"):
        invariant("unf", universal_spec_of(SmallResNet(width=3)), 1, canonical=True)
    h = NeuronSet("h", 3, factors=frozenset({"sign"}))
    square = TensorSpec("W", (3, 3), (TensorAxis("h", "out"), TensorAxis("h", "in")), "W")
    with pytest.raises(UnsupportedArchitectureError, match="cannot canonicalise .* h"):
        UniversalCanonicalization(UniversalSpec((square,), (h,)))
