"""The group of a :class:`~nfkit.spaces.UniversalSpec`: one factor per neuron set.

A permutation set of ``n`` neurons carries ``G = D P``: new neuron ``i`` is old neuron
``sources[i]`` times ``d_i`` (``d`` positive with ``"scale"``, ``±1`` with ``"sign"``, both: any
non-zero). A GL set carries any invertible ``G`` (LoRA ranks; Putterman et al. 2024). The group is
the direct product over sets. How ``G`` moves each tensor axis belongs to the features
(:meth:`nfkit.spaces.UniversalFeatures.transform`).

Example:
    >>> from nfkit.spaces.universal import NeuronSet
    >>> group = UniversalGroup([NeuronSet("h", 4, factors=frozenset({"sign"})), NeuronSet("r", 2, "gl")])
    >>> g = group.sample(torch.Generator().manual_seed(0))
    >>> (g @ g.inverse()).allclose(group.identity()), group.name
    (True, 'permutations × sign flips × GL')
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, final

import torch

from nfkit.errors import GroupMismatchError
from nfkit.groups.base import Group, GroupElement
from nfkit.groups.neurons import DEFAULT_SCALE_RANGE

if TYPE_CHECKING:
    from nfkit.spaces.universal import NeuronSet

__all__ = ["UniversalElement", "UniversalGroup", "trivial_on"]

_SCALE, _SIGN = "scale", "sign"


@final
class UniversalElement(GroupElement):
    """Per neuron set, ``(sources, d)`` (``G = D P``) or an invertible matrix ``G`` (GL sets).

    A blocked GL set (attention heads) holds one matrix per head, ``(h, n, n)``: block ``j`` acts on
    head ``j`` *before* the heads' permutation moves it (``G = P_heads · blockdiag(A_1, …, A_h)``).

    Args:
        permutations: set name → ``(sources (n,) long, d (n,) float64)``.
        matrices: set name → ``G (n, n)``, or ``(h, n, n)`` for a blocked set, float64.
        blocks: blocked set name → the permutation set of its heads.
    """

    __slots__ = ("permutations", "matrices", "blocks")

    def __init__(
        self,
        permutations: Mapping[str, tuple[torch.Tensor, torch.Tensor]],
        matrices: Mapping[str, torch.Tensor] | None = None,
        blocks: Mapping[str, str] | None = None,
    ) -> None:
        self.permutations = dict(permutations)
        self.matrices = dict(matrices or {})
        self.blocks = dict(blocks or {})

    def _same_shape(self, other: GroupElement) -> UniversalElement:
        if (
            not isinstance(other, UniversalElement)
            or set(other.permutations) != set(self.permutations)
            or set(other.matrices) != set(self.matrices)
        ):
            raise GroupMismatchError(f"{other!r} and {self!r} act on different neuron sets")
        return other

    def compose(self, other: GroupElement) -> UniversalElement:
        # (self ∘ other): new[i] = d_s[i] d_o[src_s[i]] old[src_o[src_s[i]]]
        o = self._same_shape(other)
        perms = {
            k: (o.permutations[k][0][src], d * o.permutations[k][1][src]) for k, (src, d) in self.permutations.items()
        }
        matrices = {}
        for k, g in self.matrices.items():
            if k in self.blocks:
                # head j: other's block, then ours at the position other moved it to
                moved_to = torch.argsort(o.permutations[self.blocks[k]][0])
                matrices[k] = g[moved_to] @ o.matrices[k]
            else:
                matrices[k] = g @ o.matrices[k]
        return UniversalElement(perms, matrices, self.blocks)

    def inverse(self) -> UniversalElement:
        perms = {}
        for k, (src, d) in self.permutations.items():
            inv = torch.argsort(src)
            perms[k] = (inv, 1.0 / d[inv])
        matrices = {}
        for k, g in self.matrices.items():
            # blocked: the inverse's block at head position i undoes the block that was moved there
            matrices[k] = torch.linalg.inv(g[self.permutations[self.blocks[k]][0]] if k in self.blocks else g)
        return UniversalElement(perms, matrices, self.blocks)

    def allclose(self, other: GroupElement, *, rtol: float = 1e-10, atol: float = 0.0) -> bool:
        try:
            o = self._same_shape(other)
        except GroupMismatchError:
            return False
        return all(
            torch.equal(src, o.permutations[k][0]) and torch.allclose(d, o.permutations[k][1], rtol=rtol, atol=atol)
            for k, (src, d) in self.permutations.items()
        ) and all(torch.allclose(g, o.matrices[k], rtol=rtol, atol=max(atol, 1e-12)) for k, g in self.matrices.items())

    def matrix(self, name: str) -> torch.Tensor:
        """The dense ``G`` of set ``name`` (for tests and GL sets); a blocked set's is over (head, index) pairs."""
        if name in self.blocks:
            width = self.matrices[name].shape[-1]
            heads = torch.kron(self.matrix(self.blocks[name]), torch.eye(width, dtype=torch.float64))
            return heads @ torch.block_diag(*self.matrices[name])
        if name in self.matrices:
            return self.matrices[name]
        src, d = self.permutations[name]
        g = torch.zeros(src.numel(), src.numel(), dtype=torch.float64)
        g[torch.arange(src.numel()), src] = d
        return g

    def __repr__(self) -> str:
        return f"UniversalElement(permutations={sorted(self.permutations)}, gl={sorted(self.matrices)})"


class UniversalGroup(Group):
    """The direct product of the factors of ``sets``.

    Args:
        sets: the :class:`~nfkit.spaces.universal.NeuronSet` s, with their kinds and factors.
        scale_range: positive scales (and GL singular values) are drawn log-uniformly from it.
    """

    def __init__(self, sets: Iterable[NeuronSet], scale_range: tuple[float, float] = DEFAULT_SCALE_RANGE) -> None:
        self.sets = tuple(sets)
        self.scale_range = scale_range

    def _draw_scales(self, n: int, factors: frozenset[str], generator: torch.Generator | None) -> torch.Tensor:
        d = torch.ones(n, dtype=torch.float64)
        if _SCALE in factors:
            lo, hi = (math.log(s) for s in self.scale_range)
            d = torch.exp(lo + (hi - lo) * torch.rand(n, generator=generator, dtype=torch.float64))
        if _SIGN in factors:
            d = d * (torch.randint(0, 2, (n,), generator=generator) * 2 - 1).to(torch.float64)
        return d

    def _draw_gl(self, n: int, generator: torch.Generator | None) -> torch.Tensor:
        # well-conditioned but far from orthogonal: Q₁ diag(s) Q₂ with s log-uniform in the scale range
        # narrowed to its square root (a product of two such factors already spans the whole range)
        q1, _ = torch.linalg.qr(torch.randn(n, n, generator=generator, dtype=torch.float64))
        q2, _ = torch.linalg.qr(torch.randn(n, n, generator=generator, dtype=torch.float64))
        lo, hi = (0.5 * math.log(s) for s in self.scale_range)
        s = torch.exp(lo + (hi - lo) * torch.rand(n, generator=generator, dtype=torch.float64))
        return q1 @ torch.diag(s) @ q2

    def _heads(self, s: NeuronSet) -> int:
        return next(b.size for b in self.sets if b.name == s.blocks) if s.blocks else 0

    def sample(self, generator: torch.Generator | None = None) -> UniversalElement:
        perms, mats = {}, {}
        for s in self.sets:
            if s.kind == "gl":
                mats[s.name] = (torch.stack([self._draw_gl(s.size, generator) for _ in range(self._heads(s))])
                                if s.blocks else self._draw_gl(s.size, generator))
            else:
                perms[s.name] = (torch.randperm(s.size, generator=generator), self._draw_scales(s.size, s.factors, generator))
        return UniversalElement(perms, mats, {s.name: s.blocks for s in self.sets if s.blocks})

    def identity(self) -> UniversalElement:
        gl = [s for s in self.sets if s.kind == "gl"]
        eye = {s.name: torch.eye(s.size, dtype=torch.float64) for s in gl}
        return UniversalElement(
            {s.name: (torch.arange(s.size), torch.ones(s.size, dtype=torch.float64)) for s in self.sets if s.kind != "gl"},
            {s.name: eye[s.name].expand(self._heads(s), -1, -1).clone() if s.blocks else eye[s.name] for s in gl},
            {s.name: s.blocks for s in self.sets if s.blocks},
        )

    def _key(self) -> dict[str, tuple[int, str, frozenset[str]]]:
        return {s.name: (s.size, s.kind, s.factors) for s in self.sets}

    def contains(self, other: Group) -> bool:
        if isinstance(other, _Trivial):
            return True
        if not isinstance(other, UniversalGroup):
            return False
        mine = self._key()
        for name, (size, kind, factors) in other._key().items():
            if name not in mine or mine[name][0] != size:
                return False
            own_size, own_kind, own_factors = mine[name]
            if own_kind == "gl":
                continue  # GL contains every monomial matrix
            if kind == "gl" or not factors <= own_factors:
                return False
        return True

    @property
    def name(self) -> str:
        parts = []
        if any(s.kind == "permutation" for s in self.sets):
            parts.append("permutations")
        if any(_SCALE in s.factors for s in self.sets):
            parts.append("positive scaling")
        if any(_SIGN in s.factors for s in self.sets):
            parts.append("sign flips")
        if any(s.kind == "gl" for s in self.sets):
            parts.append("GL")
        return " × ".join(parts) if parts else "trivial"

    def factor_subgroups(self) -> list[Group]:
        """Permutations alone, each diagonal factor alone (on the sets that carry it), and GL alone."""
        groups: list[Group] = [
            UniversalGroup([replace(s, kind="permutation", factors=frozenset(), blocks="") for s in self.sets], self.scale_range)
        ]
        for factor in (_SCALE, _SIGN):
            if any(factor in s.factors for s in self.sets):
                groups.append(_DiagonalOnly(
                    [replace(s, factors=s.factors & {factor}) for s in self.sets if s.kind != "gl"], self.scale_range
                ))
        if any(s.kind == "gl" for s in self.sets):
            groups.append(_DiagonalOnly(self._with_heads([s for s in self.sets if s.kind == "gl"]), self.scale_range))
        return groups

    def _with_heads(self, sets: list[NeuronSet]) -> list[NeuronSet]:
        """``sets`` and, held still, the head sets their blocked GL sets need."""
        heads = {s.blocks for s in sets if s.blocks} - {s.name for s in sets}
        return sets + [replace(s, factors=frozenset()) for s in self.sets if s.name in heads]

    def negative_control(self) -> Group | None:
        """Every permutation set with the diagonal factor it lacks (positive scaling first, then signs)."""
        for factor in (_SCALE, _SIGN):
            if any(s.kind == "permutation" and factor not in s.factors for s in self.sets):
                return UniversalGroup(
                    [replace(s, factors=s.factors | {factor}) if s.kind == "permutation" else s for s in self.sets],
                    self.scale_range,
                )
        return None

    def rescalings(self, scale_range: tuple[float, float]) -> Group | None:
        scaled = [s for s in self.sets if s.kind == "gl" or _SCALE in s.factors]
        if not scaled:
            return None
        return _DiagonalOnly(self._with_heads([replace(s, factors=s.factors & {_SCALE}) for s in scaled]), scale_range)

    def with_scale_range(self, low: float, high: float) -> Group:
        return UniversalGroup(self.sets, (low, high))

    @property
    def commutes_with_centering(self) -> bool:
        return all(s.kind == "permutation" and not s.factors for s in self.sets)


@final
class _DiagonalOnly(UniversalGroup):
    """The same sets with their permutations fixed to the identity: scalings, signs (and GL) alone."""

    def sample(self, generator: torch.Generator | None = None) -> UniversalElement:
        g = super().sample(generator)
        return UniversalElement({k: (torch.arange(src.numel()), d) for k, (src, d) in g.permutations.items()}, g.matrices, g.blocks)

    @property
    def name(self) -> str:
        return super().name.replace("permutations × ", "").replace("permutations", "trivial")


@final
class _Trivial(UniversalGroup):
    """The identity on ``sets``: what a model that respects no symmetry declares."""

    def sample(self, generator: torch.Generator | None = None) -> UniversalElement:
        return self.identity()

    def contains(self, other: Group) -> bool:
        return isinstance(other, _Trivial)

    @property
    def name(self) -> str:
        return "trivial"

    def factor_subgroups(self) -> list[Group]:
        return []

    def negative_control(self) -> Group | None:
        return UniversalGroup([replace(s, kind="permutation", factors=frozenset(), blocks="") for s in self.sets], self.scale_range) if self.sets else None

    def rescalings(self, scale_range: tuple[float, float]) -> Group | None:
        return None

    @property
    def commutes_with_centering(self) -> bool:
        return True


def trivial_on(sets: Iterable[NeuronSet]) -> UniversalGroup:
    """The trivial group of a space with neuron sets ``sets`` (its negative control permutes them)."""
    return _Trivial(sets)
