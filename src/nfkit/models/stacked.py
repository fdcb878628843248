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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

from torch import nn

from nfkit.groups.base import Group
from nfkit.groups.neurons import HiddenNeuronGroup
from nfkit.layers.canonical import with_canonical_front
from nfkit.layers.hnp import HNPLinear, HNPPool
from nfkit.layers.monomial import MonomialInvariantFront, MonomialLinear, MonomialPool, equivariant_activation, monomial_group
from nfkit.layers.np import NPLinear, NPPool
from nfkit.layers.pointwise import GaussianFourierFeatures
from nfkit.layers.statistics import WithInputStatistics
from nfkit.layers.unf import UNFLinear, UNFPool
from nfkit.models.base import StackedEquivariantModel, StackedInvariantModel, equivariant_stack, stack_width
from nfkit.errors import UnknownOptionError, UnsupportedArchitectureError
from nfkit.models.registry import ModelFamily, register
from nfkit.spaces.spec import WeightSpaceSpec
from nfkit.spaces.universal import UniversalSpec

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
        folded: whether ``linear`` and ``pool`` take the ``folded`` option (families that fold
            unpermuted input/output neurons into channels; :mod:`nfkit.layers.folded`).
        spaces: the weight spaces it reads (as in :class:`~nfkit.models.registry.ModelFamily`).
        invariant_front: ``(spec, channels, group)`` → a map to features invariant to the group's
            scalings/signs and equivariant to its permutations; with it the invariant form offers
            ``trunk_channels``: the family's layers, this front, then an HNP trunk of those widths
            (Monomial-NFN's INR classifier).
        canonical: whether the invariant form offers ``canonical=True``: a
            :class:`~nfkit.layers.canonical.Canonicalization` front, after which the permutation-
            invariant model is invariant to the network's scalings or sign flips too. A family with an
            ``invariant_front`` is already invariant to those; for it ``canonical=True`` (with
            ``trunk_channels``) canonicalises the input and drops ``invariant_front``: the family's
            layers then see one point of each orbit, and the HNP trunk follows them directly. Unlike
            an entrywise ``|x|`` this keeps the relative signs of a neuron's entries.
    """

    name: str
    summary: str
    linear: Callable[..., nn.Module]
    pool: Callable[..., nn.Module]
    group: Callable[[WeightSpaceSpec], Group]
    activation: Callable[[Group], str] = lambda group: "relu"
    channel_norm: bool = True
    hidden_channels: tuple[int, ...] = (16, 16, 16)
    equivariant_hidden: tuple[int, ...] = (16, 16, 16)
    head_hidden: tuple[int, ...] = (256, 256)
    folded: bool = False
    canonical: bool = False
    spaces: tuple[str, ...] = ("dense",)
    invariant_front: Callable[..., nn.Module] | None = None


def register_stacked(entry: StackedFamily) -> ModelFamily:
    """Register ``entry`` with an invariant and an equivariant builder (options listed in their signatures)."""

    def trunk(spec: WeightSpaceSpec, group: Group, in_channels: int, hidden: Sequence[int], normalize: bool,
              dropout: float, fourier_features: int = 0, fourier_scale: float = 10.0,
              folding: Mapping[str, str] = MappingProxyType({})) -> nn.Sequential:
        front: list[nn.Module] = []
        if fourier_features > 0:  # offered only where the group is permutations alone (see below)
            fourier = GaussianFourierFeatures(in_channels, fourier_features, fourier_scale)
            front, in_channels = [fourier], fourier.out_channels
        stack = equivariant_stack(lambda c, h: entry.linear(spec, c, h, group, **folding), in_channels, hidden,
                                  activation=entry.activation(group), normalize=normalize, dropout=dropout)
        return nn.Sequential(*front, *stack)

    def build_invariant(
        spec: WeightSpaceSpec,
        out_features: int = 1,
        *,
        in_channels: int = 1,
        hidden_channels: Sequence[int] = entry.hidden_channels,
        head_hidden: Sequence[int] = entry.head_hidden,
        normalize: bool = False,
        dropout: float = 0.0,
        head_dropout: float = 0.0,
        fourier_features: int = 0,
        fourier_scale: float = 10.0,
        folded: str = "auto",
        canonical: bool = False,
        trunk_channels: Sequence[int] = (),
        statistics: bool = False,
        recompute: int = 0,
    ) -> StackedInvariantModel:
        group = entry.group(spec)
        folding = {"folded": folded} if entry.folded else {}
        width = stack_width(2 * fourier_features if fourier_features > 0 else in_channels, hidden_channels)
        layers = trunk(spec, group, in_channels, hidden_channels, normalize, dropout, fourier_features, fourier_scale,
                       folding)
        readout: nn.Module
        if trunk_channels:
            if entry.invariant_front is None:
                raise UnknownOptionError(f"{entry.name!r} has no invariant front for a permutation trunk")
            assert isinstance(spec, WeightSpaceSpec)
            # past the front only permutations act: an HNP trunk and pool keep the whole group's invariance
            hnp = equivariant_stack(lambda c, h: HNPLinear(spec, c, h, folded=folded), width, trunk_channels)
            # canonical: the canonical front (below) replaces the invariant one and goes first, so its
            # decisions depend on the fixed weights, never on learned features (canonicalising the
            # layers' outputs flipped many nets at once as the layers trained, and the loss jumped)
            front = [] if canonical else [entry.invariant_front(spec, width, group)]
            layers = nn.Sequential(*layers, *front, *hnp)
            width, readout = trunk_channels[-1], HNPPool(spec, folded=folded)
        elif canonical and entry.invariant_front is not None:
            raise UnknownOptionError(
                f"{entry.name!r} is invariant to the network's scalings and sign flips already; canonical=True "
                f"chooses the front before its HNP trunk, so give trunk_channels too (e.g. [32, 32, 32])"
            )
        else:
            readout = entry.pool(spec, width, group, **folding)
        if statistics:
            # StatNN's statistics of the (canonicalised) input beside the pooled trunk
            readout, layers = WithInputStatistics(spec, layers, readout, in_channels), nn.Sequential()
        if canonical:
            # the front removes the network's scalings/sign flips; the permutation-equivariant trunk
            # after it (Fourier features included) then makes the model invariant to both
            group, layers = with_canonical_front(spec, group, layers)
        return StackedInvariantModel.with_head(
            spec, group, in_channels, out_features,
            trunk=layers,
            trunk_width=width,
            readout=readout, head_hidden=head_hidden, head_dropout=head_dropout, recompute=recompute,
        )

    def build_equivariant(
        spec: WeightSpaceSpec,
        out_channels: int = 1,
        *,
        in_channels: int = 1,
        hidden_channels: Sequence[int] = entry.equivariant_hidden,
        normalize: bool = False,
        dropout: float = 0.0,
        folded: str = "auto",
        recompute: int = 0,
    ) -> StackedEquivariantModel:
        group = entry.group(spec)
        folding = {"folded": folded} if entry.folded else {}
        return StackedEquivariantModel(
            spec, group, in_channels, out_channels,
            trunk=trunk(spec, group, in_channels, hidden_channels, normalize, dropout, folding=folding),
            readout=entry.linear(spec, stack_width(in_channels, hidden_channels), out_channels, group, **folding),
            recompute=recompute,
        )

    if not entry.folded:  # NP permutes every neuron: nothing is folded, the option is not offered
        for builder in (build_invariant, build_equivariant):
            signature = inspect.signature(builder)
            setattr(builder, "__signature__", signature.replace(
                parameters=[p for p in signature.parameters.values() if p.name != "folded"]))
    if entry.invariant_front is None:
        signature = inspect.signature(build_invariant)
        setattr(build_invariant, "__signature__", signature.replace(
            parameters=[p for p in signature.parameters.values() if p.name != "trunk_channels"]))
    if not entry.canonical:
        signature = inspect.signature(build_invariant)
        setattr(build_invariant, "__signature__", signature.replace(
            parameters=[p for p in signature.parameters.values() if p.name != "canonical"]))
    if not entry.channel_norm:
        # channel norm, feature dropout, Fourier features and raw statistics break scale and sign equivariance: not offered (the registry checks options
        # against the advertised signature, so asking for them is an UnknownOptionError)
        for builder in (build_invariant, build_equivariant):
            signature = inspect.signature(builder)
            setattr(builder, "__signature__", signature.replace(
                parameters=[p for p in signature.parameters.values()
                            if p.name not in ("normalize", "dropout", "fourier_features", "fourier_scale", "statistics")]))
    build_invariant.__doc__ = f"The invariant {entry.name!r} model: features → ``(B, out_features)``. {entry.summary}."
    build_equivariant.__doc__ = f"The equivariant {entry.name!r} model: features → ``out_channels`` channels. {entry.summary}."
    return register(ModelFamily(entry.name, entry.summary, invariant=build_invariant, equivariant=build_equivariant,
                                spaces=entry.spaces))


def _permutation_group(spec: WeightSpaceSpec | UniversalSpec) -> Group:
    """What NP, HNP and UNF respect: the hidden-neuron permutations of a dense spec, every set's permutations of a traced one."""
    return spec.permutation_group()


def _distinct_labels(spec: UniversalSpec, family: str) -> UniversalSpec:
    """NP's and HNP's terms (Zhou et al. 2023, Eq. 2) are those of tensors whose axes carry distinct
    permutations; on such a traced network UNF's construction gives exactly them. A tensor with one set on
    two axes (a recurrent hidden-to-hidden matrix) needs UNF's diagonal terms: refused."""
    for t in spec.tensors:
        labels = [a.set for a in t.axes if a is not None]
        if len(labels) != len(set(labels)):
            raise UnsupportedArchitectureError(
                f"{family} needs tensors whose axes carry distinct permutations; {t.name} carries one set twice "
                f"(use 'unf', which has the diagonal terms)"
            )
    return spec


def _np_linear(spec: WeightSpaceSpec | UniversalSpec, c: int, h: int, *, permute_io: bool, folded: str = "auto") -> nn.Module:
    if isinstance(spec, UniversalSpec):
        return UNFLinear(_distinct_labels(spec, "np" if permute_io else "hnp"), c, h, permute_io=permute_io)
    return NPLinear(spec, c, h) if permute_io else HNPLinear(spec, c, h, folded=folded)


def _np_pool(spec: WeightSpaceSpec | UniversalSpec, *, permute_io: bool, folded: str = "auto") -> nn.Module:
    if isinstance(spec, UniversalSpec):
        return UNFPool(spec, permute_io=permute_io)
    return NPPool(spec) if permute_io else HNPPool(spec, folded=folded)


def _monomial_activation(group: Group) -> str:
    assert isinstance(group, HiddenNeuronGroup)
    return equivariant_activation(group)


def _monomial_pool(spec: WeightSpaceSpec, channels: int, group: Group, folded: str = "auto") -> nn.Module:
    assert isinstance(group, HiddenNeuronGroup)
    return MonomialPool(spec, channels, group, folded=folded)


#: The stacked families, one entry each.
FAMILIES: tuple[StackedFamily, ...] = (
    StackedFamily(
        "np",
        "NP layers, equivariant to permutations of every neuron layer (Zhou et al. 2023, Eq. 2)",
        linear=lambda spec, c, h, group: _np_linear(spec, c, h, permute_io=True),
        pool=lambda spec, c, group: _np_pool(spec, permute_io=True),
        group=_permutation_group,
        canonical=True,
        spaces=("dense", "universal"),
    ),
    StackedFamily(
        "hnp",
        "HNP layers, equivariant to hidden-neuron permutations (Zhou et al. 2023, Sec. 3.2)",
        linear=lambda spec, c, h, group, folded="auto": _np_linear(spec, c, h, permute_io=False, folded=folded),
        pool=lambda spec, c, group, folded="auto": _np_pool(spec, permute_io=False, folded=folded),
        group=_permutation_group,
        folded=True,
        canonical=True,
        spaces=("dense", "universal"),
    ),
    StackedFamily(
        "monomial",
        "Monomial-NFN: equivariant to hidden permutations × scaling or sign flips (Tran et al. 2024)",
        linear=lambda spec, c, h, group, folded="auto": MonomialLinear(spec, c, h, folded=folded),
        pool=_monomial_pool,
        group=monomial_group,
        activation=_monomial_activation,
        channel_norm=False,
        hidden_channels=(16, 16, 5),
        equivariant_hidden=(16, 16),
        head_hidden=(200, 200),
        folded=True,
        canonical=True,
        invariant_front=lambda spec, c, group: MonomialInvariantFront(spec, c, group),
    ),
    StackedFamily(
        "unf",
        "Universal Neural Functionals: maximal permutation-equivariant layers of any traced network (Zhou, Finn, Harrison 2024)",
        linear=lambda spec, c, h, group: UNFLinear(spec, c, h),
        pool=lambda spec, c, group: UNFPool(spec),
        group=_permutation_group,
        canonical=True,
        spaces=("dense", "universal"),
    ),
)

for _entry in FAMILIES:
    register_stacked(_entry)
