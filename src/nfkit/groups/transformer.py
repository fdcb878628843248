"""The symmetry group of multi-head attention encoders (Transformer-NFN, ICLR 2025, Sec. 3).

Per block, an element is ``(τ, {A_i}, {N_i}, π_O, π_A)``: a head permutation τ (new head i
takes old head ``τ(i)``), one ``A_i ∈ GL(d_k)`` and one ``N_i ∈ GL(d_v)`` per head, a permutation
``π_O`` of the D index between attention output and FFN input, and a permutation ``π_A`` of the
FFN hidden neurons. In the row-vector convention ``Q = X W_Q`` it acts by

    W_Q⁽ⁱ⁾ ↦ W_Q^{(τ(i))} A_i,      W_K⁽ⁱ⁾ ↦ W_K^{(τ(i))} A_i^{-⊤},   (so W_Q W_Kᵀ is unchanged)
    W_V⁽ⁱ⁾ ↦ W_V^{(τ(i))} N_i,      W_O⁽ⁱ⁾ ↦ N_i⁻¹ W_O^{(τ(i))} P_O,  (so W_V W_O is unchanged up to P_O)
    b_Q, b_K, b_V like the rows of their matrices;  b_O ↦ b_O P_O,
    W_A ↦ P_Oᵀ W_A P_A, b_A ↦ b_A P_A, W_B ↦ P_Aᵀ W_B, b_B ↦ b_B

(the paper's Eq. for ``G_U``; W_A, W_B are stored in ``(out, in)`` layout, so ``ffn_in`` is
``W_Aᵀ``). ``π_O`` is a symmetry only where :attr:`AttentionBlockSpec.stream_permutable`.
A classifier head's hidden neurons are permuted as in any MLP.

``INPUT_PERMUTATION`` (permuting the rows of W_Q, W_K, W_V alone) is *not* a symmetry of any
transformer: it exists for negative controls.

The group is the :class:`~nfkit.groups.UniversalGroup` on named sets (:func:`transformer_sets`); its
elements are :class:`~nfkit.groups.UniversalElement` s. Each ``A_i`` is stored as the set's matrix
``A_iᵀ`` (the column-vector convention every set uses), and which axes each set moves is
:meth:`nfkit.spaces.TransformerSpec.universal`.
"""

from __future__ import annotations

import enum
from collections.abc import Hashable, Iterable, Sequence
from typing import Protocol, final

from nfkit.groups.base import Group
from nfkit.groups.neurons import hidden_set_name
from nfkit.groups.sets import NeuronSet
from nfkit.groups.universal import DEFAULT_SCALE_RANGE, UniversalGroup, random_gl

__all__ = [
    "TransformerFactor",
    "TransformerGroup",
    "TransformerSizes",
    "BlockSizes",
    "transformer_sets",
    "random_gl",
    "FACTOR_ORDER",
]


class BlockSizes(Protocol):
    """The sizes of one attention block the group needs (an ``AttentionBlockSpec`` has them)."""

    @property
    def d_model(self) -> int: ...
    @property
    def heads(self) -> int: ...
    @property
    def d_k(self) -> int: ...
    @property
    def d_v(self) -> int: ...
    @property
    def d_ff(self) -> int: ...


class _HiddenSizes(Protocol):
    @property
    def hidden_sizes(self) -> tuple[int, ...]: ...


class TransformerSizes(Protocol):
    """What the group reads of a transformer weight space (a ``TransformerSpec`` has it): block sizes, the
    classifier head's hidden sizes, and a key that is equal for equal shapes."""

    @property
    def blocks(self) -> Sequence[BlockSizes]: ...
    @property
    def head(self) -> _HiddenSizes | None: ...
    @property
    def shape_key(self) -> Hashable: ...


class TransformerFactor(enum.Enum):
    """One factor of a transformer's group."""

    HEAD_PERMUTATION = "heads"
    QUERY_KEY_GL = "GL(d_k)"
    VALUE_OUTPUT_GL = "GL(d_v)"
    FFN_PERMUTATION = "FFN perms"
    STREAM_PERMUTATION = "stream perms"
    CLASSIFIER_PERMUTATION = "classifier perms"
    INPUT_PERMUTATION = "input perms (no symmetry)"


FACTOR_ORDER = tuple(TransformerFactor)


def transformer_sets(spec: TransformerSizes) -> dict[TransformerFactor, list[NeuronSet]]:
    """The neuron sets of each factor: per block ``l`` the sets ``blocks.l.heads`` (τ),
    ``blocks.l.query_key`` and ``blocks.l.value_output`` (one GL per head, blocked by the heads),
    ``blocks.l.stream`` (π_O), ``blocks.l.ffn`` (π_A) and ``blocks.l.inputs`` (the control π_I); the
    classifier head's hidden layers ``head.h1 …``."""
    F = TransformerFactor
    sets: dict[TransformerFactor, list[NeuronSet]] = {f: [] for f in FACTOR_ORDER}
    for l, b in enumerate(spec.blocks):
        heads = f"blocks.{l}.heads"
        sets[F.HEAD_PERMUTATION].append(NeuronSet(heads, b.heads))
        sets[F.QUERY_KEY_GL].append(NeuronSet(f"blocks.{l}.query_key", b.d_k, "gl", blocks=heads))
        sets[F.VALUE_OUTPUT_GL].append(NeuronSet(f"blocks.{l}.value_output", b.d_v, "gl", blocks=heads))
        sets[F.STREAM_PERMUTATION].append(NeuronSet(f"blocks.{l}.stream", b.d_model))
        sets[F.FFN_PERMUTATION].append(NeuronSet(f"blocks.{l}.ffn", b.d_ff))
        sets[F.INPUT_PERMUTATION].append(NeuronSet(f"blocks.{l}.inputs", b.d_model))
    if spec.head is not None:
        sets[F.CLASSIFIER_PERMUTATION] = [
            NeuronSet(f"head.{hidden_set_name(l)}", n) for l, n in enumerate(spec.head.hidden_sizes, start=1)
        ]
    return sets


@final
class TransformerGroup(UniversalGroup):
    """A product of :class:`TransformerFactor` s acting on the weight space of ``spec``.

    Args:
        spec: the transformer weight space, or anything with its sizes (:class:`TransformerSizes`).
        factors: which factors the group contains.
        condition: GL elements have condition number at most this.
        scale_range: their overall scale is drawn log-uniformly from it.

    Example:
        >>> import torch
        >>> from nfkit.spaces.transformer_spec import AttentionBlockSpec, TransformerSpec
        >>> spec = TransformerSpec((AttentionBlockSpec(8, 2, 4, 4, 16),))
        >>> g = spec.symmetry_group().sample(torch.Generator().manual_seed(0))
        >>> x = spec.randn(1, dtype=torch.float64)
        >>> g.inverse().act(g.act(x)).allclose(x, rtol=1e-9, atol=1e-9)
        True
    """

    def __init__(
        self,
        spec: TransformerSizes,
        factors: Iterable[TransformerFactor] = (),
        *,
        condition: float = 100.0,
        scale_range: tuple[float, float] = DEFAULT_SCALE_RANGE,
    ) -> None:
        self.spec = spec
        self.factors: frozenset[TransformerFactor] = frozenset(factors)
        by_factor = transformer_sets(spec)
        chosen = [s for f in FACTOR_ORDER if f in self.factors for s in by_factor[f]]
        # a GL factor without the head permutation keeps the heads where they are
        names = {s.name for s in chosen}
        heads = [s for s in by_factor[TransformerFactor.HEAD_PERMUTATION] if s.name not in names
                 and any(g.blocks == s.name for g in chosen)]
        super().__init__(chosen + heads, scale_range, still=[s.name for s in heads], condition=condition)

    @property
    def name(self) -> str:
        parts = [f.value for f in FACTOR_ORDER if f in self.factors]
        return " × ".join(parts) if parts else "trivial"

    def with_scale_range(self, low: float, high: float) -> TransformerGroup:
        """The same group, drawing GL elements' overall scale from ``[low, high]``."""
        return TransformerGroup(self.spec, self.factors, condition=self._condition, scale_range=(low, high))

    @property
    def _condition(self) -> float:
        assert self.condition is not None
        return self.condition

    def restrict(self, factors: Iterable[TransformerFactor]) -> TransformerGroup:
        """The group with exactly ``factors`` (same spec and sampling ranges)."""
        return TransformerGroup(self.spec, factors, condition=self._condition, scale_range=self.scale_range)

    def contains(self, other: Group) -> bool:
        return (
            isinstance(other, TransformerGroup)
            and other.spec.shape_key == self.spec.shape_key
            and other.factors <= self.factors
        )

    def factor_subgroups(self) -> list[Group]:
        return [self.restrict({f}) for f in FACTOR_ORDER if f in self.factors]

    def negative_control(self) -> TransformerGroup | None:
        """The first factor missing in :class:`TransformerFactor` order, ending with the block-input
        permutation, which no transformer has."""
        for factor in FACTOR_ORDER:
            if factor not in self.factors:
                return self.restrict(self.factors | {factor})
        return None

    def rescalings(self, scale_range: tuple[float, float]) -> TransformerGroup:
        """Per-head ``GL(d_k) × GL(d_v)`` (every transformer has them), scales drawn from ``scale_range``."""
        return TransformerGroup(self.spec, [TransformerFactor.QUERY_KEY_GL, TransformerFactor.VALUE_OUTPUT_GL],
                                condition=self._condition, scale_range=scale_range)

    @property
    def commutes_with_centering(self) -> bool:
        return False  # GL mixes entries: only a per-tensor rescaling commutes with it

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TransformerGroup) and self.contains(other) and other.contains(self)

    def __hash__(self) -> int:
        return hash((self.spec.shape_key, self.factors))
