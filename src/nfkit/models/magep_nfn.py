"""The ``"magep"`` family: MAGEP-NFN (Vo et al., "Equivariant Polynomial Functional Networks", ICML 2025).

Invariant form (the paper's CNN-generalisation model, ``hidden_channels=[20, 20]``)::

    MonomialLinear(spec → spec without kernels, in → h₁) → σ
    → [MagepLinear(h → h') → σ] for each width in hidden_channels
    → MagepInvariant(→ h_last) → MLP head

Equivariant form::

    MonomialLinear(spec → kernel-free, in → h₁) → σ → [MagepLinear → σ]… → MonomialLinear(→ spec, out_channels)

As for ``monomial``, the group and σ follow from the spec: permutations × positive scaling
with ReLU for ReLU-like networks, permutations × sign flips with tanh for odd activations.
The polynomial layers themselves respect every non-zero diagonal; σ decides which subgroup
the model keeps. The Fourier features that the reference code placed *before* these layers
for INRs broke sign invariance; nothing here acts on raw weights non-equivariantly.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from nfkit.layers.magep import MagepInvariant, MagepLinear
from nfkit.layers.monomial import MonomialLinear, equivariant_activation, monomial_group
from nfkit.layers.pointwise import FeatureActivation
from nfkit.models.base import StackedEquivariantModel, StackedInvariantModel, equivariant_stack, stack_width
from nfkit.models.registry import ModelFamily, register
from nfkit.spaces.spec import WeightSpaceSpec

__all__ = ["magep_invariant", "magep_equivariant"]


def _trunk(
    spec: WeightSpaceSpec, in_channels: int, hidden_channels: Sequence[int], learnable_contractions: bool, folded: str
) -> nn.Sequential:
    if not hidden_channels:
        raise ValueError("magep needs at least one hidden width")
    activation = equivariant_activation(monomial_group(spec))
    inner = spec.without_kernels()
    # a monomial layer folds conv kernels into channels first; the polynomial layers work on the result
    first = [MonomialLinear(spec, in_channels, hidden_channels[0], out_spec=inner, folded=folded),
             FeatureActivation(activation)]
    rest = equivariant_stack(
        lambda c, h: MagepLinear(inner, c, h, learnable_contractions=learnable_contractions, folded=folded),
        hidden_channels[0], hidden_channels, activation=activation,
    )
    return nn.Sequential(*first, *rest)


def magep_invariant(
    spec: WeightSpaceSpec,
    out_features: int = 1,
    *,
    in_channels: int = 1,
    hidden_channels: Sequence[int] = (20, 20),
    head_hidden: Sequence[int] = (500, 500),
    head_dropout: float = 0.0,
    learnable_contractions: bool = True,
    folded: str = "auto",
) -> StackedInvariantModel:
    """MAGEP-NFN invariant model: features ``(B, in_channels, …)`` → ``(B, out_features)``.

    ``folded``: ``"auto"`` factorises the blocks over a folded input/output index above
    :data:`~nfkit.layers.folded.FOLDED_AUTO_ENTRIES` entries (a 784-input MLP), ``"exact"``, ``"factorised"``.
    """
    width = stack_width(in_channels, hidden_channels)
    return StackedInvariantModel.with_head(
        spec, monomial_group(spec), in_channels, out_features,
        trunk=_trunk(spec, in_channels, hidden_channels, learnable_contractions, folded), trunk_width=width,
        readout=MagepInvariant(spec.without_kernels(), width, width, learnable_contractions=learnable_contractions,
                               folded=folded),
        head_hidden=head_hidden, head_dropout=head_dropout,
    )


def magep_equivariant(
    spec: WeightSpaceSpec,
    out_channels: int = 1,
    *,
    in_channels: int = 1,
    hidden_channels: Sequence[int] = (16, 16),
    learnable_contractions: bool = True,
    folded: str = "auto",
) -> StackedEquivariantModel:
    """MAGEP-NFN equivariant model: features → features with ``out_channels`` channels (``folded`` as for the invariant form)."""
    width = hidden_channels[-1] if hidden_channels else in_channels
    return StackedEquivariantModel(
        spec,
        monomial_group(spec),
        in_channels,
        out_channels,
        trunk=_trunk(spec, in_channels, hidden_channels, learnable_contractions, folded),
        readout=MonomialLinear(spec.without_kernels(), width, out_channels, out_spec=spec, folded=folded),
    )


register(
    ModelFamily(
        "magep",
        "MAGEP-NFN polynomial layers over path products (Vo et al. 2025)",
        invariant=magep_invariant,
        equivariant=magep_equivariant,
    )
)
