"""StatNN's statistics and the ``statistics=True`` readout of the permutation families: invariant to the
declared group (and, after the canonical front, to the network's whole group), not to a larger one."""

from __future__ import annotations

import pytest
import torch

from conftest import make_mlp
from nfkit.errors import UnknownOptionError
from nfkit.layers.statistics import LayerStatistics, WithInputStatistics, entry_statistics
from nfkit.models import invariant
from nfkit.nets import RecurrentClassifier, SmallResNet
from nfkit.spaces import spec_of, universal_spec_of
from nfkit.testing import assert_invariant, assert_not_equivariant

SPECS = {
    "tanh-mlp": lambda: spec_of(make_mlp("tanh")),
    "gru": lambda: universal_spec_of(RecurrentClassifier(7, 4, 3, "gru", tokens=False)),
    "resnet": lambda: universal_spec_of(SmallResNet(width=3)),
}


def test_entry_statistics_are_statnns() -> None:
    x = torch.randn(2, 3, 101, dtype=torch.float64)
    stats = entry_statistics(x)
    torch.testing.assert_close(stats[..., 0], x.mean(-1))
    torch.testing.assert_close(stats[..., 1], x.var(-1, unbiased=False))
    torch.testing.assert_close(stats[..., 2], x.min(-1).values)
    torch.testing.assert_close(stats[..., 4], x.median(-1).values)
    torch.testing.assert_close(stats[..., 6], x.max(-1).values)


@pytest.mark.parametrize("family", ["np", "hnp", "unf"])
@pytest.mark.parametrize("net", list(SPECS))
def test_statistics_readout_keeps_the_declared_invariance(family: str, net: str) -> None:
    spec = SPECS[net]()
    if family in ("np", "hnp") and net == "gru":
        pytest.skip("np and hnp refuse a tensor with one set on two axes")
    model = invariant(family, spec, 2, hidden_channels=[3, 3], statistics=True).double()
    assert isinstance(model.readout, WithInputStatistics)
    x = spec.randn(2, dtype=torch.float64)
    assert_invariant(model, model.group, x)
    control = model.group.negative_control()
    assert control is not None
    assert_not_equivariant(model, control, x)
    if net != "resnet":  # with the canonical front: the network's whole group, each factor alone too
        canonical = invariant(family, spec, 2, hidden_channels=[3], statistics=True, canonical=True).double()
        assert canonical.group.name == spec.symmetry_group().name
        for group in (canonical.group, *canonical.group.factor_subgroups()):
            assert_invariant(canonical, group, x)


def test_the_readout_width_and_the_refusal_for_monomial() -> None:
    spec = SPECS["tanh-mlp"]()
    model = invariant("hnp", spec, 1, hidden_channels=[4], statistics=True)
    assert model.readout.num_outputs(4) == LayerStatistics(spec).num_outputs(1) + model.readout.pool.num_outputs(4)
    assert model(spec.randn(3)).shape == (3, 1)
    with pytest.raises(UnknownOptionError, match="statistics"):
        invariant("monomial", spec, 1, statistics=True)
