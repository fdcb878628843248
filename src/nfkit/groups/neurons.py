"""Monomial groups acting on the hidden neurons of MLPs and CNNs.

For a network with weights ``W⁽ⁱ⁾ ∈ ℝ^{n_i × n_{i-1}}`` (i = 1..L) and biases
``b⁽ⁱ⁾ ∈ ℝ^{n_i}``, a monomial element is one matrix ``g_ℓ = D_ℓ P_ℓ`` per hidden
neuron layer ℓ = 1..L-1 (a permutation ``P_ℓ`` followed by a diagonal ``D_ℓ``),
with ``g_0 = g_L = I``: input and output neurons are never acted on. It acts by

    W⁽ⁱ⁾ ↦ g_i W⁽ⁱ⁾ g_{i-1}⁻¹,      b⁽ⁱ⁾ ↦ g_i b⁽ⁱ⁾,

that is ``W'_{jk} = d_j W_{σ(j) σ'(k)} / d'_k`` where ``σ = π⁻¹`` is stored as the
*source index* of each new neuron. For conv layers a neuron is a channel and the
kernel axes ride along. This is the action of Zhou et al. 2023 (permutations),
and of Tran et al., "Equivariant Neural Functional Networks with Monomial Matrix
Group Symmetries" (NeurIPS 2024), Sec. 4 (monomial matrices).

Which subgroup holds for an architecture depends on its hidden activations
(:meth:`nfkit.spaces.WeightSpaceSpec.symmetry_group`):

* permutations always (elementwise activations commute with permutations);
* positive scaling when ``σ(d x) = d σ(x)`` for d > 0 (ReLU, LeakyReLU);
* sign flips when ``σ(-x) = -σ(x)`` (Tanh, Sine).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, Sequence
from typing import final

import torch

from nfkit.errors import GroupMismatchError
from nfkit.groups.base import Group
from nfkit.groups.sets import SCALE, SIGN, NeuronSet
from nfkit.groups.universal import DEFAULT_SCALE_RANGE, Permutation, UniversalElement, UniversalGroup

__all__ = [
    "Factor",
    "MonomialElement",
    "HiddenNeuronGroup",
    "hidden_set_name",
    "trivial",
    "permutations",
    "positive_scalings",
    "sign_flips",
    "DEFAULT_SCALE_RANGE",
]


class Factor(enum.Enum):
    """One factor of a hidden-neuron monomial group."""

    PERMUTATION = "permutations"
    POSITIVE_SCALING = "positive scaling"
    SIGN_FLIP = "sign flips"


_FACTOR_ORDER = (Factor.PERMUTATION, Factor.POSITIVE_SCALING, Factor.SIGN_FLIP)


def hidden_set_name(layer: int) -> str:
    """The neuron set of hidden neuron layer ℓ (1-based), ``"hℓ"``, as in :meth:`nfkit.spaces.WeightSpaceSpec.universal`."""
    return f"h{layer}"


@final
class MonomialElement(UniversalElement):
    """A monomial matrix ``D_ℓ P_ℓ`` per hidden neuron layer: a :class:`UniversalElement` on the sets ``h1 … h(L-1)``.

    Args:
        sources: per hidden layer ℓ, a ``LongTensor`` of shape ``(n_ℓ,)``: new neuron
            ``j`` takes the old neuron ``sources[ℓ][j]`` (i.e. ``σ = π⁻¹``).
        scales: per hidden layer ℓ, a tensor of shape ``(n_ℓ,)`` of non-zero factors ``d``.

    Example:
        >>> import torch
        >>> g = MonomialElement([torch.tensor([1, 0])], [torch.tensor([2.0, -1.0])])
        >>> h = g.inverse()
        >>> (g @ h).allclose(MonomialElement.identity_for([2]))
        True
    """

    __slots__ = ()

    def __init__(self, sources: Sequence[torch.Tensor], scales: Sequence[torch.Tensor]) -> None:
        if len(sources) != len(scales):
            raise GroupMismatchError(
                f"a monomial element needs one permutation and one scale vector per hidden layer, "
                f"got {len(sources)} permutations and {len(scales)} scale vectors"
            )
        super().__init__({hidden_set_name(l): (src, d) for l, (src, d) in enumerate(zip(sources, scales), start=1)})

    @classmethod
    def from_parts(
        cls, permutations: Mapping[str, Permutation], matrices: Mapping[str, torch.Tensor], blocks: Mapping[str, str]
    ) -> MonomialElement:
        layers = [permutations[hidden_set_name(l)] for l in range(1, len(permutations) + 1)]
        return cls([src for src, _ in layers], [d for _, d in layers])

    @staticmethod
    def identity_for(hidden_sizes: Sequence[int]) -> MonomialElement:
        """The identity on hidden layers of the given sizes ``(n_1, …, n_{L-1})``."""
        return MonomialElement(
            [torch.arange(n) for n in hidden_sizes], [torch.ones(n, dtype=torch.float64) for n in hidden_sizes]
        )

    @property
    def sources(self) -> tuple[torch.Tensor, ...]:
        """Per hidden layer, the source index of each new neuron."""
        return tuple(src for src, _ in self.permutations.values())

    @property
    def scales(self) -> tuple[torch.Tensor, ...]:
        """Per hidden layer, the factors ``d``."""
        return tuple(d for _, d in self.permutations.values())

    @property
    def hidden_sizes(self) -> tuple[int, ...]:
        """``(n_1, …, n_{L-1})``."""
        return tuple(s.numel() for s in self.sources)

    def __repr__(self) -> str:
        return f"MonomialElement(hidden_sizes={self.hidden_sizes})"


@final
class HiddenNeuronGroup(UniversalGroup):
    """A product of :class:`Factor` s acting on the hidden neurons of one architecture.

    ``permutations × positive scaling`` is the monomial group ``G^{>0}`` of ReLU nets and
    ``permutations × sign flips`` the group ``G^{±1}`` of Tanh and Sine nets. Positive
    scaling × sign flips together give all non-zero diagonals. It is the :class:`UniversalGroup` on
    the sets ``h1 … h(L-1)`` with these factors (held still without :attr:`Factor.PERMUTATION`).

    Args:
        hidden_sizes: ``(n_1, …, n_{L-1})``.
        factors: which factors the group contains; none gives the trivial group.
        scale_range: positive scales are drawn log-uniformly from ``[low, high]``.

    Example:
        >>> g = permutations([3, 4]) * positive_scalings([3, 4])
        >>> g.name
        'permutations × positive scaling'
        >>> g.contains(permutations([3, 4])), permutations([3, 4]).contains(g)
        (True, False)
    """

    element_type = MonomialElement

    def __init__(
        self,
        hidden_sizes: Sequence[int],
        factors: Iterable[Factor] = (),
        *,
        scale_range: tuple[float, float] = DEFAULT_SCALE_RANGE,
    ) -> None:
        self.hidden_sizes: tuple[int, ...] = tuple(int(n) for n in hidden_sizes)
        if any(n <= 0 for n in self.hidden_sizes):
            raise GroupMismatchError(f"hidden sizes must be positive, got {self.hidden_sizes}")
        self.factors: frozenset[Factor] = frozenset(factors)
        diagonal = frozenset(
            name for f, name in ((Factor.POSITIVE_SCALING, SCALE), (Factor.SIGN_FLIP, SIGN)) if f in self.factors
        )
        sets = [NeuronSet(hidden_set_name(l), n, "permutation", diagonal) for l, n in enumerate(self.hidden_sizes, start=1)]
        still = () if Factor.PERMUTATION in self.factors else [s.name for s in sets]
        super().__init__(sets, scale_range, still=still)

    @property
    def name(self) -> str:
        parts = [f.value for f in _FACTOR_ORDER if f in self.factors]
        return " × ".join(parts) if parts else "trivial"

    def with_scale_range(self, low: float, high: float) -> HiddenNeuronGroup:
        """The same group, drawing positive scales from ``[low, high]``."""
        return HiddenNeuronGroup(self.hidden_sizes, self.factors, scale_range=(low, high))

    def sample(self, generator: torch.Generator | None = None) -> MonomialElement:
        g = super().sample(generator)
        assert isinstance(g, MonomialElement)
        return g

    def identity(self) -> MonomialElement:
        g = super().identity()
        assert isinstance(g, MonomialElement)
        return g

    def contains(self, other: Group) -> bool:
        return (
            isinstance(other, HiddenNeuronGroup)
            and other.hidden_sizes == self.hidden_sizes
            and other.factors <= self.factors
        )

    def restrict(self, factors: Iterable[Factor]) -> HiddenNeuronGroup:
        """The group with exactly ``factors`` on the same hidden layers (same scale range)."""
        return HiddenNeuronGroup(self.hidden_sizes, factors, scale_range=self.scale_range)

    def factor_subgroups(self) -> list[Group]:
        return [self.restrict([f]) for f in _FACTOR_ORDER if f in self.factors]

    def negative_control(self) -> HiddenNeuronGroup | None:
        """Permutations, then positive scaling, then sign flips: the first one missing is added."""
        for factor in _FACTOR_ORDER:
            if factor not in self.factors:
                return self.restrict(self.factors | {factor})
        return None

    def rescalings(self, scale_range: tuple[float, float]) -> HiddenNeuronGroup | None:
        if Factor.POSITIVE_SCALING not in self.factors:
            return None
        return HiddenNeuronGroup(self.hidden_sizes, [Factor.POSITIVE_SCALING], scale_range=scale_range)

    def monomial(self) -> HiddenNeuronGroup | None:
        """The monomial group a Monomial-NFN respects here: permutations × positive scaling when this group
        scales positively (ReLU-like nets), else × sign flips when it flips signs (odd nets), else ``None``."""
        if Factor.POSITIVE_SCALING in self.factors:
            return self.restrict([Factor.PERMUTATION, Factor.POSITIVE_SCALING])
        if Factor.SIGN_FLIP in self.factors:
            return self.restrict([Factor.PERMUTATION, Factor.SIGN_FLIP])
        return None

    def __mul__(self, other: HiddenNeuronGroup) -> HiddenNeuronGroup:
        """The product group (union of factors) on the same hidden layers."""
        if not isinstance(other, HiddenNeuronGroup):
            return NotImplemented
        if other.hidden_sizes != self.hidden_sizes:
            raise GroupMismatchError(
                f"cannot multiply groups of different hidden sizes {self.hidden_sizes} and {other.hidden_sizes}"
            )
        return HiddenNeuronGroup(self.hidden_sizes, self.factors | other.factors, scale_range=self.scale_range)

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, HiddenNeuronGroup)
            and other.hidden_sizes == self.hidden_sizes
            and other.factors == self.factors
        )

    def __hash__(self) -> int:
        return hash((self.hidden_sizes, self.factors))


def trivial(hidden_sizes: Sequence[int]) -> HiddenNeuronGroup:
    """The group with only the identity."""
    return HiddenNeuronGroup(hidden_sizes)


def permutations(hidden_sizes: Sequence[int]) -> HiddenNeuronGroup:
    """Independent permutations of each hidden layer's neurons (channels for conv layers)."""
    return HiddenNeuronGroup(hidden_sizes, [Factor.PERMUTATION])


def positive_scalings(
    hidden_sizes: Sequence[int], scale_range: tuple[float, float] = DEFAULT_SCALE_RANGE
) -> HiddenNeuronGroup:
    """Independent positive scalings ``d > 0`` of each hidden neuron."""
    return HiddenNeuronGroup(hidden_sizes, [Factor.POSITIVE_SCALING], scale_range=scale_range)


def sign_flips(hidden_sizes: Sequence[int]) -> HiddenNeuronGroup:
    """Independent sign flips ``d ∈ {±1}`` of each hidden neuron."""
    return HiddenNeuronGroup(hidden_sizes, [Factor.SIGN_FLIP])
