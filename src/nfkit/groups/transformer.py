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
"""

from __future__ import annotations

import enum
import math
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol, final

import torch

from nfkit.errors import GroupMismatchError
from nfkit.groups.base import Group, GroupElement
from nfkit.groups.neurons import DEFAULT_SCALE_RANGE, MonomialElement

__all__ = [
    "TransformerFactor",
    "BlockElement",
    "TransformerElement",
    "TransformerGroup",
    "TransformerSizes",
    "BlockSizes",
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


def random_gl(
    count: int, n: int, *, condition: float, scale_range: tuple[float, float], generator: torch.Generator | None
) -> torch.Tensor:
    """``count`` random invertible ``n×n`` matrices ``s · U diag(σ) Vᵀ`` (float64).

    U, V are Haar-random orthogonal; ``log σ`` is uniform on ``±½ log(condition)``, so every
    condition number is at most ``condition``; the overall scale ``s`` is log-uniform in ``scale_range``.
    """
    def orthogonal() -> torch.Tensor:
        q, r = torch.linalg.qr(torch.randn(count, n, n, generator=generator, dtype=torch.float64))
        return q * torch.sign(torch.diagonal(r, dim1=-2, dim2=-1)).unsqueeze(-2)

    half = 0.5 * math.log(condition)
    sigma = torch.exp((torch.rand(count, n, generator=generator, dtype=torch.float64) * 2 - 1) * half)
    low, high = (math.log(x) for x in scale_range)
    scale = torch.exp(low + (high - low) * torch.rand(count, 1, 1, generator=generator, dtype=torch.float64))
    return scale * (orthogonal() * sigma.unsqueeze(-2)) @ orthogonal().transpose(-1, -2)


@final
@dataclass(frozen=True)
class BlockElement:
    """One block's ``(τ, A, N, π_O, π_A)`` and the control permutation ``π_I`` of the block input.

    Shapes: ``heads (h,)``, ``query_key (h, d_k, d_k)``, ``value_output (h, d_v, d_v)``,
    ``stream (D,)``, ``ffn (d_ff,)``, ``inputs (D,)``; permutations are source indices.
    """

    heads: torch.Tensor
    query_key: torch.Tensor
    value_output: torch.Tensor
    stream: torch.Tensor
    ffn: torch.Tensor
    inputs: torch.Tensor

    def compose(self, other: BlockElement) -> BlockElement:
        """``self ∘ other`` (``other`` acts first): ``τ = τ_o[τ_s]``, ``A = A_o[τ_s] A_s``."""
        t = self.heads
        return BlockElement(
            other.heads[t],
            other.query_key[t] @ self.query_key,
            other.value_output[t] @ self.value_output,
            other.stream[self.stream],
            other.ffn[self.ffn],
            other.inputs[self.inputs],
        )

    def inverse(self) -> BlockElement:
        """``τ⁻¹`` and ``A⁻¹_{τ⁻¹(i)}``."""
        t = torch.argsort(self.heads)
        return BlockElement(
            t,
            torch.linalg.inv(self.query_key[t]),
            torch.linalg.inv(self.value_output[t]),
            torch.argsort(self.stream),
            torch.argsort(self.ffn),
            torch.argsort(self.inputs),
        )


@final
class TransformerElement(GroupElement):
    """One :class:`BlockElement` per block, and a permutation of the classifier head's hidden neurons."""

    def __init__(self, blocks: Iterable[BlockElement], head: MonomialElement | None = None) -> None:
        self.blocks = tuple(blocks)
        self.head = head

    def compose(self, other: GroupElement) -> TransformerElement:
        if not isinstance(other, TransformerElement) or len(other.blocks) != len(self.blocks):
            raise GroupMismatchError(f"cannot compose {self!r} with {other!r}")
        head = None if self.head is None or other.head is None else self.head.compose(other.head)
        return TransformerElement((s.compose(o) for s, o in zip(self.blocks, other.blocks)), head)

    def inverse(self) -> TransformerElement:
        return TransformerElement((b.inverse() for b in self.blocks), None if self.head is None else self.head.inverse())

    def allclose(self, other: GroupElement, *, rtol: float = 1e-10, atol: float = 0.0) -> bool:
        if not isinstance(other, TransformerElement) or len(other.blocks) != len(self.blocks):
            return False
        for s, o in zip(self.blocks, other.blocks):
            for name in ("heads", "stream", "ffn", "inputs"):
                if not torch.equal(getattr(s, name), getattr(o, name)):
                    return False
            if not (torch.allclose(s.query_key, o.query_key, rtol=rtol, atol=atol) and torch.allclose(
                s.value_output, o.value_output, rtol=rtol, atol=atol
            )):
                return False
        if self.head is None or other.head is None:
            return self.head is None and other.head is None
        return self.head.allclose(other.head)

    def __repr__(self) -> str:
        return f"TransformerElement(blocks={len(self.blocks)})"


@final
class TransformerGroup(Group):
    """A product of :class:`TransformerFactor` s acting on the weight space of ``spec``.

    Args:
        spec: the transformer weight space, or anything with its sizes (:class:`TransformerSizes`).
        factors: which factors the group contains.
        condition: GL elements have condition number at most this.
        scale_range: their overall scale is drawn log-uniformly from it.

    Example:
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
        if condition < 1:
            raise ValueError(f"condition must be at least 1, got {condition}")
        self.condition = float(condition)
        self.scale_range = scale_range

    @property
    def name(self) -> str:
        parts = [f.value for f in FACTOR_ORDER if f in self.factors]
        return " × ".join(parts) if parts else "trivial"

    def with_scale_range(self, low: float, high: float) -> TransformerGroup:
        """The same group, drawing GL elements' overall scale from ``[low, high]``."""
        return TransformerGroup(self.spec, self.factors, condition=self.condition, scale_range=(low, high))

    def restrict(self, factors: Iterable[TransformerFactor]) -> TransformerGroup:
        """The group with exactly ``factors`` (same spec and sampling ranges)."""
        return TransformerGroup(self.spec, factors, condition=self.condition, scale_range=self.scale_range)

    def _block(self, block: BlockSizes, generator: torch.Generator | None, identity: bool) -> BlockElement:
        def perm(n: int, factor: TransformerFactor) -> torch.Tensor:
            return torch.randperm(n, generator=generator) if not identity and factor in self.factors else torch.arange(n)

        def gl(n: int, factor: TransformerFactor) -> torch.Tensor:
            if identity or factor not in self.factors:
                return torch.eye(n, dtype=torch.float64).expand(block.heads, n, n).clone()
            return random_gl(block.heads, n, condition=self.condition, scale_range=self.scale_range, generator=generator)

        F = TransformerFactor
        return BlockElement(
            perm(block.heads, F.HEAD_PERMUTATION),
            gl(block.d_k, F.QUERY_KEY_GL),
            gl(block.d_v, F.VALUE_OUTPUT_GL),
            perm(block.d_model, F.STREAM_PERMUTATION),
            perm(block.d_ff, F.FFN_PERMUTATION),
            perm(block.d_model, F.INPUT_PERMUTATION),
        )

    def _head(self, generator: torch.Generator | None, identity: bool) -> MonomialElement | None:
        if self.spec.head is None:
            return None
        sizes = self.spec.head.hidden_sizes
        permute = not identity and TransformerFactor.CLASSIFIER_PERMUTATION in self.factors
        return MonomialElement(
            [torch.randperm(n, generator=generator) if permute else torch.arange(n) for n in sizes],
            [torch.ones(n, dtype=torch.float64) for n in sizes],
        )

    def sample(self, generator: torch.Generator | None = None) -> TransformerElement:
        return TransformerElement((self._block(b, generator, False) for b in self.spec.blocks), self._head(generator, False))

    def identity(self) -> TransformerElement:
        return TransformerElement((self._block(b, None, True) for b in self.spec.blocks), self._head(None, True))

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
                                condition=self.condition, scale_range=scale_range)

    @property
    def commutes_with_centering(self) -> bool:
        return False  # GL mixes entries: only a per-tensor rescaling commutes with it

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TransformerGroup) and self.contains(other) and other.contains(self)

    def __hash__(self) -> int:
        return hash((self.spec.shape_key, self.factors))
