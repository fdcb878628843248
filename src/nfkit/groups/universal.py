"""The one group implementation of nfkit: a direct product over :class:`~nfkit.groups.sets.NeuronSet` s.

A permutation set of ``n`` neurons carries ``G = D P``: new neuron ``i`` is old neuron
``sources[i]`` times ``d_i`` (``d`` positive with ``"scale"``, ``±1`` with ``"sign"``, both: any
non-zero). A GL set carries any invertible ``G`` (LoRA ranks, Putterman et al. 2024; one per head
when blocked, Transformer-NFN, Tran et al. ICLR 2025, Sec. 3). A set may be held *still*: its
permutation stays the identity while its diagonal factors are drawn (the scalings of a ReLU net
alone, a GL factor without the head permutation). How ``G`` moves each tensor axis belongs to the
weight space (:func:`nfkit.spaces.action.transform_tensors`).

The hidden-neuron groups of MLPs and CNNs (:class:`~nfkit.groups.HiddenNeuronGroup`) and the
transformer group (:class:`~nfkit.groups.transformer.TransformerGroup`) are this group on named
sets, with their factor vocabularies on top.

Example:
    >>> group = UniversalGroup([NeuronSet("h", 4, factors=frozenset({"sign"})), NeuronSet("r", 2, "gl")])
    >>> g = group.sample(torch.Generator().manual_seed(0))
    >>> (g @ g.inverse()).allclose(group.identity()), group.name
    (True, 'permutations × sign flips × GL')
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import ClassVar

import torch

from nfkit.errors import GroupMismatchError
from nfkit.groups.base import Group, GroupElement
from nfkit.groups.sets import SCALE, SIGN, NeuronSet

__all__ = ["UniversalElement", "UniversalGroup", "trivial_on", "random_gl", "DEFAULT_SCALE_RANGE"]

#: Positive scales are drawn log-uniformly from this range by default. ReLU nets
#: have arbitrary per-neuron scale, so tests must span several decades.
DEFAULT_SCALE_RANGE: tuple[float, float] = (1e-3, 1e3)

Permutation = tuple[torch.Tensor, torch.Tensor]


class UniversalElement(GroupElement):
    """Per neuron set, ``(sources, d)`` (``G = D P``) or an invertible matrix ``G`` (GL sets).

    A blocked GL set (attention heads) holds one matrix per head, ``(h, n, n)``: block ``j`` acts on
    head ``j`` *before* the heads' permutation moves it (``G = P_heads · blockdiag(A_1, …, A_h)``).

    Args:
        permutations: set name → ``(sources (n,) long, d (n,) non-zero)``; ``sources`` must be a permutation.
        matrices: set name → ``G (n, n)``, or ``(h, n, n)`` for a blocked set, float64.
        blocks: blocked set name → the permutation set of its heads.
    """

    __slots__ = ("permutations", "matrices", "blocks")

    def __init__(
        self,
        permutations: Mapping[str, Permutation],
        matrices: Mapping[str, torch.Tensor] | None = None,
        blocks: Mapping[str, str] | None = None,
    ) -> None:
        self.permutations: dict[str, Permutation] = {name: _checked(name, *p) for name, p in permutations.items()}
        self.matrices = {k: torch.as_tensor(g, dtype=torch.float64) for k, g in (matrices or {}).items()}
        self.blocks = dict(blocks or {})
        for k, g in self.matrices.items():
            if g.dim() != (3 if k in self.blocks else 2) or g.shape[-1] != g.shape[-2]:
                raise GroupMismatchError(f"neuron set {k!r}: GL matrices must be square, got shape {tuple(g.shape)}")

    @classmethod
    def from_parts(
        cls, permutations: Mapping[str, Permutation], matrices: Mapping[str, torch.Tensor], blocks: Mapping[str, str]
    ) -> UniversalElement:
        """The element of this class with these parts (what products, inverses and samples build)."""
        return cls(permutations, matrices, blocks)

    @property
    def sizes(self) -> dict[str, int]:
        """Set name → ``n``."""
        return {**{k: src.numel() for k, (src, _) in self.permutations.items()}, **{k: g.shape[-1] for k, g in self.matrices.items()}}

    def _same_space(self, other: GroupElement) -> UniversalElement:
        if not isinstance(other, UniversalElement) or other.sizes != self.sizes or other.blocks != self.blocks:
            raise GroupMismatchError(f"cannot combine {self!r} with {other!r}: they act on different neuron sets")
        return other

    def compose(self, other: GroupElement) -> UniversalElement:
        # (self ∘ other): new[i] = d_s[i] d_o[src_s[i]] old[src_o[src_s[i]]]
        o = self._same_space(other)
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
        return self.from_parts(perms, matrices, self.blocks)

    def inverse(self) -> UniversalElement:
        perms = {}
        for k, (src, d) in self.permutations.items():
            inv = torch.argsort(src)
            perms[k] = (inv, 1.0 / d[inv])
        matrices = {}
        for k, g in self.matrices.items():
            # blocked: the inverse's block at head position i undoes the block that was moved there
            matrices[k] = torch.linalg.inv(g[self.permutations[self.blocks[k]][0]] if k in self.blocks else g)
        return self.from_parts(perms, matrices, self.blocks)

    def allclose(self, other: GroupElement, *, rtol: float = 1e-10, atol: float = 0.0) -> bool:
        try:
            o = self._same_space(other)
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
        return f"{type(self).__name__}(permutations={sorted(self.permutations)}, gl={sorted(self.matrices)})"


def _checked(name: str, sources: torch.Tensor, scales: torch.Tensor) -> Permutation:
    src = torch.as_tensor(sources, dtype=torch.long).cpu()
    d = torch.as_tensor(scales, dtype=torch.float64).cpu()
    n = src.numel()
    if src.shape != (n,) or d.shape != (n,):
        raise GroupMismatchError(
            f"neuron set {name!r}: permutation has shape {tuple(src.shape)} and scales {tuple(d.shape)}; "
            "both must be 1-D of the same length"
        )
    if not torch.equal(torch.sort(src).values, torch.arange(n)):
        raise GroupMismatchError(f"neuron set {name!r}: {src.tolist()} is not a permutation of 0..{n - 1}")
    if not bool(torch.all(torch.isfinite(d) & (d != 0))):
        raise GroupMismatchError(f"neuron set {name!r}: scales must be finite and non-zero")
    return src, d


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


class UniversalGroup(Group):
    """The direct product of the factors of ``sets``.

    Args:
        sets: the :class:`~nfkit.groups.sets.NeuronSet` s, with their kinds and factors.
        scale_range: positive scales (and GL scales) are drawn log-uniformly from it.
        still: names of permutation sets whose permutation stays the identity (their ``D`` is still drawn).
        condition: if given, GL matrices are :func:`random_gl` with this condition bound; otherwise
            ``Q₁ diag(s) Q₂`` with ``s`` log-uniform in the square root of ``scale_range``.
    """

    #: what :meth:`sample` and :meth:`identity` build
    element_type: ClassVar[type[UniversalElement]] = UniversalElement

    def __init__(
        self,
        sets: Iterable[NeuronSet],
        scale_range: tuple[float, float] = DEFAULT_SCALE_RANGE,
        *,
        still: Iterable[str] = (),
        condition: float | None = None,
    ) -> None:
        self.sets = tuple(sets)
        self.still = frozenset(still)
        low, high = scale_range
        if not 0 < low <= high or not math.isfinite(high):
            raise ValueError(f"scale_range must satisfy 0 < low <= high < inf, got {scale_range}")
        if condition is not None and condition < 1:
            raise ValueError(f"condition must be at least 1, got {condition}")
        self.scale_range = (float(low), float(high))
        self.condition = condition

    def _like(self, sets: Iterable[NeuronSet], *, still: Iterable[str] = (), scale_range: tuple[float, float] | None = None) -> UniversalGroup:
        """A plain group on other sets with this one's sampling settings."""
        return UniversalGroup(sets, scale_range or self.scale_range, still=still, condition=self.condition)

    # --- elements -------------------------------------------------------------------------------
    def _draw_scales(self, n: int, factors: frozenset[str], generator: torch.Generator | None) -> torch.Tensor:
        d = torch.ones(n, dtype=torch.float64)
        if SCALE in factors:
            lo, hi = (math.log(s) for s in self.scale_range)
            d = torch.exp(lo + (hi - lo) * torch.rand(n, generator=generator, dtype=torch.float64))
        if SIGN in factors:
            d = d * (torch.randint(0, 2, (n,), generator=generator) * 2 - 1).to(torch.float64)
        return d

    def _draw_gl(self, count: int, n: int, generator: torch.Generator | None) -> torch.Tensor:
        if self.condition is not None:
            return random_gl(count, n, condition=self.condition, scale_range=self.scale_range, generator=generator)
        # well-conditioned but far from orthogonal: Q₁ diag(s) Q₂ with s log-uniform in the scale range
        # narrowed to its square root (a product of two such factors already spans the whole range)
        q1, _ = torch.linalg.qr(torch.randn(count, n, n, generator=generator, dtype=torch.float64))
        q2, _ = torch.linalg.qr(torch.randn(count, n, n, generator=generator, dtype=torch.float64))
        lo, hi = (0.5 * math.log(s) for s in self.scale_range)
        s = torch.exp(lo + (hi - lo) * torch.rand(count, n, generator=generator, dtype=torch.float64))
        return (q1 * s.unsqueeze(-2)) @ q2

    def _heads(self, s: NeuronSet) -> int:
        return next(b.size for b in self.sets if b.name == s.blocks) if s.blocks else 1

    def _blocks(self) -> dict[str, str]:
        return {s.name: s.blocks for s in self.sets if s.blocks}

    def sample(self, generator: torch.Generator | None = None) -> UniversalElement:
        perms, mats = {}, {}
        for s in self.sets:
            if s.kind == "gl":
                g = self._draw_gl(self._heads(s), s.size, generator)
                mats[s.name] = g if s.blocks else g[0]
            else:
                src = torch.arange(s.size) if s.name in self.still else torch.randperm(s.size, generator=generator)
                perms[s.name] = (src, self._draw_scales(s.size, s.factors, generator))
        return self.element_type.from_parts(perms, mats, self._blocks())

    def identity(self) -> UniversalElement:
        gl = [s for s in self.sets if s.kind == "gl"]
        return self.element_type.from_parts(
            {s.name: (torch.arange(s.size), torch.ones(s.size, dtype=torch.float64)) for s in self.sets if s.kind != "gl"},
            {s.name: torch.eye(s.size, dtype=torch.float64).expand(self._heads(s), -1, -1).clone() if s.blocks
             else torch.eye(s.size, dtype=torch.float64) for s in gl},
            self._blocks(),
        )

    # --- relations ------------------------------------------------------------------------------
    def _inert(self, s: NeuronSet) -> bool:
        """A set this group never moves."""
        return s.kind == "permutation" and s.name in self.still and not s.factors

    def contains(self, other: Group) -> bool:
        if not isinstance(other, UniversalGroup):
            return False
        mine = {s.name: s for s in self.sets}
        for s in other.sets:
            if other._inert(s):
                continue
            own = mine.get(s.name)
            if own is None or own.size != s.size:
                return False
            if own.kind == "gl":
                continue  # GL contains every monomial matrix
            if s.kind == "gl" or not s.factors <= own.factors or (s.name in self.still and s.name not in other.still):
                return False
        return True

    @property
    def name(self) -> str:
        parts = []
        if any(s.kind == "permutation" and s.name not in self.still for s in self.sets):
            parts.append("permutations")
        if any(SCALE in s.factors for s in self.sets):
            parts.append("positive scaling")
        if any(SIGN in s.factors for s in self.sets):
            parts.append("sign flips")
        if any(s.kind == "gl" for s in self.sets):
            parts.append("GL")
        return " × ".join(parts) if parts else "trivial"

    def factor_subgroups(self) -> list[Group]:
        """Permutations alone, each diagonal factor alone (on the sets that carry it), and GL alone."""
        groups: list[Group] = []
        if any(s.name not in self.still for s in self.sets):
            groups.append(self._like([replace(s, kind="permutation", factors=frozenset(), blocks="") for s in self.sets], still=self.still))
        everything = {s.name for s in self.sets}
        for factor in (SCALE, SIGN):
            if any(factor in s.factors for s in self.sets):
                groups.append(self._like([replace(s, factors=s.factors & {factor}) for s in self.sets if s.kind != "gl"], still=everything))
        if any(s.kind == "gl" for s in self.sets):
            groups.append(self._like(self._with_heads([s for s in self.sets if s.kind == "gl"]), still=everything))
        return groups

    def _with_heads(self, sets: list[NeuronSet]) -> list[NeuronSet]:
        """``sets`` and, held still, the head sets their blocked GL sets need."""
        heads = {s.blocks for s in sets if s.blocks} - {s.name for s in sets}
        return sets + [replace(s, factors=frozenset()) for s in self.sets if s.name in heads]

    def negative_control(self) -> Group | None:
        """The held permutations released; else every permutation set with the diagonal factor it lacks
        (positive scaling first, then signs)."""
        if any(s.kind == "permutation" and s.name in self.still for s in self.sets):
            return self._like(self.sets)
        for factor in (SCALE, SIGN):
            if any(s.kind == "permutation" and factor not in s.factors for s in self.sets):
                return self._like([replace(s, factors=s.factors | {factor}) if s.kind == "permutation" else s for s in self.sets])
        return None

    def rescalings(self, scale_range: tuple[float, float]) -> Group | None:
        scaled = [s for s in self.sets if s.kind == "gl" or SCALE in s.factors]
        if not scaled:
            return None
        sets = self._with_heads([replace(s, factors=s.factors & {SCALE}) for s in scaled])
        return self._like(sets, still={s.name for s in sets}, scale_range=scale_range)

    def with_scale_range(self, low: float, high: float) -> Group:
        return self._like(self.sets, still=self.still, scale_range=(low, high))

    @property
    def commutes_with_centering(self) -> bool:
        return all(s.kind == "permutation" and not s.factors for s in self.sets)


def trivial_on(sets: Iterable[NeuronSet]) -> UniversalGroup:
    """The trivial group of a space with neuron sets ``sets`` (its negative control permutes them)."""
    plain = [replace(s, kind="permutation", factors=frozenset(), blocks="") for s in sets]
    return UniversalGroup(plain, still={s.name for s in plain})
