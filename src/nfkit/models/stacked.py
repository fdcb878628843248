"""Families that are a stack of one equivariant layer and one invariant pool, declared in one entry each.

Invariant form::

    [linear → activation (→ ChannelNorm) (→ FeatureDropout)] × len(hidden_channels) → pool → MLP head

Equivariant form::

    [linear → activation (→ ChannelNorm)] × len(hidden_channels) → linear(→ out_channels)

A :class:`StackedFamily` names the layer, the pool, the group they respect and the activation
that commutes with it; :func:`register_stacked` turns it into a registered family with both forms.
Adding such a family is one layer file in :mod:`nfkit.layers`, one test file, and one entry in
:data:`FAMILIES` below.

* ``np``, ``hnp``: Zhou et al. 2023 (Eq. 2 and Sec. 3.2). Every part commutes with hidden-neuron
  permutations; ReLU and channel norm are not scale-equivariant (the negative control).
* ``monomial``: Tran et al., NeurIPS 2024. The group, and so the activation (ReLU for positive
  scaling, tanh for sign flips), comes from the network's own activations
  (:meth:`~nfkit.groups.HiddenNeuronGroup.monomial`), never from a flag; channel norm and dropout
  would break scale equivariance and are not offered.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from torch import nn

from nfkit.groups.base import Group
from nfkit.groups.neurons import HiddenNeuronGroup, permutations
from nfkit.layers.hnp import HNPLinear, HNPPool
from nfkit.layers.monomial import MonomialLinear, MonomialPool, equivariant_activation, monomial_group
from nfkit.layers.np import NPLinear, NPPool
from nfkit.models.base import StackedEquivariantModel, StackedInvariantModel, equivariant_stack, stack_width
from nfkit.models.registry import ModelFamily, register
from nfkit.spaces.spec import WeightSpaceSpec

__all__ = ["StackedFamily", "register_stacked", "FAMILIES"]


@dataclass(frozen=True)
class StackedFamily:
    """One stacked family.

    Attributes:
        name, summary: as in the registry.
        linear: ``(spec, c_in, c_out, group)`` → an equivariant layer.
        pool: ``(spec, channels, group)`` → an invariant pool with ``num_outputs(channels)``.
        group: ``spec`` → the group the family declares (it may raise
            :class:`~nfkit.errors.UnsupportedArchitectureError` for a network without that symmetry).
        activation: ``group`` → the entrywise nonlinearity that commutes with it.
        channel_norm: whether channel norm and feature dropout are offered (they commute with
            permutations only).
        hidden_channels, equivariant_hidden, head_hidden: default widths.
    """

    name: str
    summary: str
    linear: Callable[[WeightSpaceSpec, int, int, Group], nn.Module]
    pool: Callable[[WeightSpaceSpec, int, Group], nn.Module]
    group: Callable[[WeightSpaceSpec], Group]
    activation: Callable[[Group], str] = lambda group: "relu"
    channel_norm: bool = True
    hidden_channels: tuple[int, ...] = (16, 16, 16)
    equivariant_hidden: tuple[int, ...] = (16, 16, 16)
    head_hidden: tuple[int, ...] = (256, 256)


def _keyword(name: str, default: object) -> inspect.Parameter:
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default)


def register_stacked(entry: StackedFamily) -> ModelFamily:
    """Register ``entry`` with an invariant and an equivariant builder (options listed in their signatures)."""

    def trunk(spec: WeightSpaceSpec, group: Group, in_channels: int, hidden: Sequence[int], normalize: bool,
              dropout: float) -> nn.Sequential:
        return equivariant_stack(lambda c, h: entry.linear(spec, c, h, group), in_channels, hidden,
                                 activation=entry.activation(group), normalize=normalize, dropout=dropout)

    def build_invariant(spec: WeightSpaceSpec, out_features: int = 1, **options: object) -> StackedInvariantModel:
        o = {**defaults_invariant, **options}
        group = entry.group(spec)
        hidden = list(o["hidden_channels"])  # type: ignore[call-overload]
        width = stack_width(int(o["in_channels"]), hidden)  # type: ignore[call-overload]
        return StackedInvariantModel.with_head(
            spec, group, int(o["in_channels"]), out_features,  # type: ignore[call-overload]
            trunk=trunk(spec, group, int(o["in_channels"]), hidden, bool(o.get("normalize", False)),  # type: ignore[call-overload]
                        float(o.get("dropout", 0.0))),  # type: ignore[arg-type]
            trunk_width=width, readout=entry.pool(spec, width, group),
            head_hidden=list(o["head_hidden"]), head_dropout=float(o["head_dropout"]),  # type: ignore[call-overload, arg-type]
        )

    def build_equivariant(spec: WeightSpaceSpec, out_channels: int = 1, **options: object) -> StackedEquivariantModel:
        o = {**defaults_equivariant, **options}
        group = entry.group(spec)
        hidden = list(o["hidden_channels"])  # type: ignore[call-overload]
        in_channels = int(o["in_channels"])  # type: ignore[call-overload]
        return StackedEquivariantModel(
            spec, group, in_channels, out_channels,
            trunk=trunk(spec, group, in_channels, hidden, bool(o.get("normalize", False)), float(o.get("dropout", 0.0))),  # type: ignore[arg-type]
            readout=entry.linear(spec, stack_width(in_channels, hidden), out_channels, group),
        )

    regularisers = {"normalize": False, "dropout": 0.0} if entry.channel_norm else {}
    defaults_invariant: dict[str, object] = {
        "in_channels": 1, "hidden_channels": entry.hidden_channels, "head_hidden": entry.head_hidden,
        **regularisers, "head_dropout": 0.0,
    }
    defaults_equivariant: dict[str, object] = {"in_channels": 1, "hidden_channels": entry.equivariant_hidden, **regularisers}
    first = [inspect.Parameter("spec", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
    build_invariant.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [*first, inspect.Parameter("out_features", inspect.Parameter.POSITIONAL_OR_KEYWORD, default=1),
         *(_keyword(k, v) for k, v in defaults_invariant.items())])
    build_equivariant.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [*first, inspect.Parameter("out_channels", inspect.Parameter.POSITIONAL_OR_KEYWORD, default=1),
         *(_keyword(k, v) for k, v in defaults_equivariant.items())])
    build_invariant.__doc__ = f"The invariant {entry.name!r} model: features → ``(B, out_features)``. {entry.summary}."
    build_equivariant.__doc__ = f"The equivariant {entry.name!r} model: features → ``out_channels`` channels. {entry.summary}."
    return register(ModelFamily(entry.name, entry.summary, invariant=build_invariant, equivariant=build_equivariant))


def _permutations(spec: WeightSpaceSpec) -> Group:
    return permutations(spec.hidden_sizes)


def _monomial_activation(group: Group) -> str:
    assert isinstance(group, HiddenNeuronGroup)
    return equivariant_activation(group)


def _monomial_pool(spec: WeightSpaceSpec, channels: int, group: Group) -> nn.Module:
    assert isinstance(group, HiddenNeuronGroup)
    return MonomialPool(spec, channels, group)


#: The stacked families, one entry each.
FAMILIES: tuple[StackedFamily, ...] = (
    StackedFamily(
        "np",
        "NP layers, equivariant to permutations of every neuron layer (Zhou et al. 2023, Eq. 2)",
        linear=lambda spec, c, h, group: NPLinear(spec, c, h),
        pool=lambda spec, c, group: NPPool(spec),
        group=_permutations,
    ),
    StackedFamily(
        "hnp",
        "HNP layers, equivariant to hidden-neuron permutations (Zhou et al. 2023, Sec. 3.2)",
        linear=lambda spec, c, h, group: HNPLinear(spec, c, h),
        pool=lambda spec, c, group: HNPPool(spec),
        group=_permutations,
    ),
    StackedFamily(
        "monomial",
        "Monomial-NFN: equivariant to hidden permutations × scaling or sign flips (Tran et al. 2024)",
        linear=lambda spec, c, h, group: MonomialLinear(spec, c, h),
        pool=_monomial_pool,
        group=monomial_group,
        activation=_monomial_activation,
        channel_norm=False,
        hidden_channels=(16, 16, 5),
        equivariant_hidden=(16, 16),
        head_hidden=(200, 200),
    ),
)

for _entry in FAMILIES:
    register_stacked(_entry)
