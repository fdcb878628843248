"""Universal Neural Functionals: the maximal permutation-equivariant linear layer of any weight space.

Zhou, Finn, Harrison, "Universal Neural Functionals" (NeurIPS 2024), Sec. 3 and Thm. 3.1. Every
labelled axis of every tensor is permuted by its neuron set's permutation (GL sets by their
permutation matrices); the unlabelled axes (kernel positions, gate-free inputs and outputs) are
folded into the channels. For an input tensor ``x`` and an output tensor ``y``, the equivariant linear
maps ``x ↦ y`` are spanned by the *valid partitions* of the union of their labelled axes: blocks of
axes that carry the same set. A partition's basis map

* takes the diagonal of ``x`` over the input axes that share a block,
* averages over the blocks that hold no output axis,
* channel-mixes what remains (indexed by the blocks that hold both),
* writes it onto the diagonal of the output axes that share a block, and broadcasts over the
  blocks that hold no input axis.

This is the classic characterisation of Maron et al. (ICLR 2019) restricted to same-set blocks.
Terms are evaluated like nfkit's NP engine, never as a dense basis tensor: every input is *reduced*
(diagonals and means, one ``einsum``) to the blocks it keeps, listed in a canonical order; all
reductions with the same list of kept sets are concatenated along channels and mixed to every output
*expansion* from that list by one matrix. Fixing the order on the input side only makes each valid
partition one (reduction, expansion) pair, so no term is counted twice. Constants (the invariant
tensors of each output, e.g. ``1`` and the identity for a hidden-to-hidden matrix) come from a ones
channel added to the fully reduced inputs.

On an MLP with every neuron layer labelled (``spec.universal(permute_io=True)``) the layer
spans exactly NP's maps (Zhou et al. 2023, Eq. 2); with inputs and outputs fixed, exactly HNP's
(``tests/layers/test_unf.py``).
"""

from __future__ import annotations

import itertools
import math
import string
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TypeVar

import torch
from torch import nn

from nfkit.errors import SpecMismatchError
from nfkit.layers.mixing import mix_channels
from nfkit.spaces.features import WeightSpaceFeatures
from nfkit.spaces.spec import WeightSpaceSpec
from nfkit.spaces.universal import TensorSpec, UniversalSpec
from nfkit.spaces.universal_features import UniversalFeatures

__all__ = ["UNFLinear", "UNFPool", "UNFField"]

#: einsum letters for axes and blocks ("b" and "c" are the batch and channel axes)
_LETTERS = "".join(ch for ch in string.ascii_letters if ch not in "bc")


@dataclass(frozen=True)
class UNFField:
    """One tensor as the permutation group sees it: labelled axes kept, the rest folded into channels."""

    name: str
    labels: tuple[str, ...]
    sizes: tuple[int, ...]
    fixed_shape: tuple[int, ...]
    order: tuple[int, ...]

    @staticmethod
    def of(tensor: TensorSpec, permute_io: bool = False) -> UNFField:
        """The field of a :class:`~nfkit.spaces.TensorSpec`; with ``permute_io`` its input/output neuron axes
        (:attr:`~nfkit.spaces.TensorSpec.io`) are labelled too, each fixed set as a set of its own."""
        io = tensor.io if permute_io and tensor.io else ("",) * len(tensor.axes)
        names = [a.set if a is not None else f"io:{n}" if n else None for a, n in zip(tensor.axes, io)]
        labelled = [d for d, n in enumerate(names) if n is not None]
        fixed = [d for d, n in enumerate(names) if n is None]
        return UNFField(
            tensor.name,
            tuple(str(names[d]) for d in labelled),
            tuple(tensor.shape[d] for d in labelled),
            tuple(tensor.shape[d] for d in fixed),
            tuple(fixed + labelled),
        )

    @property
    def fixed(self) -> int:
        """Entries folded into each channel."""
        return math.prod(self.fixed_shape)

    def to_field(self, t: torch.Tensor) -> torch.Tensor:
        """``(B, C, *shape) → (B, C·fixed, *sizes)``."""
        b, c = t.shape[:2]
        return t.permute(0, 1, *(2 + d for d in self.order)).reshape(b, c * self.fixed, *self.sizes)

    def from_field(self, x: torch.Tensor, channels: int) -> torch.Tensor:
        """Inverse of :meth:`to_field`."""
        x = x.reshape(x.shape[0], channels, *self.fixed_shape, *self.sizes)
        inverse = sorted(range(len(self.order)), key=lambda p: self.order[p])
        return x.permute(0, 1, *(2 + p for p in inverse))


def _partitions(labels: tuple[str, ...]) -> Iterator[tuple[tuple[int, ...], ...]]:
    """Set partitions of the axes ``0..k-1`` whose blocks hold one label each, blocks ordered by first axis."""
    def grow(i: int, blocks: list[list[int]]) -> Iterator[tuple[tuple[int, ...], ...]]:
        if i == len(labels):
            yield tuple(tuple(b) for b in blocks)
            return
        for block in blocks:
            if labels[block[0]] == labels[i]:
                block.append(i)
                yield from grow(i + 1, blocks)
                block.pop()
        blocks.append([i])
        yield from grow(i + 1, blocks)
        blocks.pop()

    yield from grow(0, [])


@dataclass(frozen=True)
class _Reduction:
    """Input field ``field``: diagonals over each block, means over the blocks not kept; kept blocks in order."""

    field: int
    equation: str
    pooled: int  # entries averaged over


@dataclass(frozen=True)
class _Expansion:
    """Output field ``field``: slot ``s`` written onto block ``slots[s]``, the other blocks broadcast."""

    field: int
    equation: str
    deltas: tuple[int, ...]  # sizes of identity tensors each block of ≥ 2 axes multiplies in (rank per block)
    delta_ranks: tuple[int, ...]
    view: tuple[int, ...]  # 1 for axes the result broadcasts over, -1 for axes it holds


def _reductions(index: int, f: UNFField) -> Iterator[tuple[tuple[str, ...], _Reduction]]:
    for blocks in _partitions(f.labels):
        letters = [""] * len(f.labels)
        for b, block in enumerate(blocks):
            for axis in block:
                letters[axis] = _LETTERS[b]
        for r in range(len(blocks) + 1):
            for kept in itertools.combinations(range(len(blocks)), r):
                ordered = sorted(kept, key=lambda b: (f.labels[blocks[b][0]], blocks[b][0]))
                key = tuple(f.labels[blocks[b][0]] for b in ordered)
                out = "".join(_LETTERS[b] for b in ordered)
                pooled = math.prod(f.sizes[blocks[b][0]] for b in range(len(blocks)) if b not in kept)
                yield key, _Reduction(index, f"bc{''.join(letters)}->bc{out}", pooled)


def _expansions(index: int, f: UNFField, key: tuple[str, ...]) -> Iterator[_Expansion]:
    for blocks in _partitions(f.labels):
        for chosen in itertools.permutations(range(len(blocks)), len(key)):
            if any(f.labels[blocks[b][0]] != label for b, label in zip(chosen, key)):
                continue
            letters = [_LETTERS[a] for a in range(len(f.labels))]
            operands = ["bc" + "".join(letters[blocks[b][0]] for b in chosen)]
            ranks = []
            for block in blocks:
                if len(block) >= 2:
                    operands.append("".join(letters[a] for a in block))
                    ranks.append(len(block))
            held = {a for b in chosen for a in blocks[b][:1]} | {a for block in blocks if len(block) >= 2 for a in block}
            out = "".join(letters[a] for a in range(len(f.labels)) if a in held)
            view = tuple(-1 if a in held else 1 for a in range(len(f.labels)))
            sizes = tuple(f.sizes[block[0]] for block in blocks if len(block) >= 2)
            yield _Expansion(index, f"{','.join(operands)}->bc{out}", sizes, tuple(ranks), view)


_Features = TypeVar("_Features", UniversalFeatures, WeightSpaceFeatures)


def _require_space(spec: UniversalSpec | WeightSpaceSpec, features: UniversalFeatures | WeightSpaceFeatures, layer: str) -> None:
    """Features of the space the layer was built for: the same container and tensor shapes."""
    if type(features) is not spec.features_type or features.spec.shape_key != spec.shape_key:
        raise SpecMismatchError(f"{layer} was built for {spec.describe()}; got {type(features).__name__} of {features.spec.describe()}")


def _delta(size: int, rank: int, like: torch.Tensor) -> torch.Tensor:
    d = torch.zeros((size,) * rank, dtype=like.dtype, device=like.device)
    d[(torch.arange(size, device=like.device),) * rank] = 1.0
    return d


class UNFLinear(nn.Module):
    """The maximal permutation-equivariant linear layer of a weight space (UNF, Zhou et al. 2024, Thm. 3.1).

    Args:
        spec: a :class:`~nfkit.spaces.UniversalSpec` (from :func:`~nfkit.spaces.universal_spec_of`), or an
            MLP's/CNN's :class:`~nfkit.spaces.WeightSpaceSpec`.
        in_channels, out_channels: ``C → C'``.
        permute_io: whether the network's input and output neurons are permuted too (UNF's and NP's
            convention; on an MLP the layer then spans NP's maps, and its size does not grow with the
            input width) or folded into the channels (HNP's maps). Either way the declared group is the
            network's own permutations.

    Shapes:
        every tensor ``(B, C, *shape) → (B, C', *shape)``, in the container it came in.

    Example:
        >>> from nfkit.nets import RecurrentClassifier
        >>> from nfkit.spaces import universal_spec_of
        >>> spec = universal_spec_of(RecurrentClassifier(5, 4, 3, tokens=False))
        >>> y = UNFLinear(spec, 2, 3)(spec.randn(6, 2))
        >>> y.named["recurrent.weight_hh_l0[n]"].shape
        torch.Size([6, 3, 4, 4])
    """

    def __init__(self, spec: UniversalSpec | WeightSpaceSpec, in_channels: int, out_channels: int, *, permute_io: bool = True) -> None:
        super().__init__()
        if in_channels <= 0 or out_channels <= 0:
            raise ValueError(f"channels must be positive, got {in_channels} → {out_channels}")
        self.source = spec
        self.spec = spec.universal()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.group = spec.permutation_group()
        self.fields = tuple(UNFField.of(t, permute_io) for t in self.spec.tensors)
        groups: dict[tuple[str, ...], list[_Reduction]] = {}
        for n, f in enumerate(self.fields):
            for key, reduction in _reductions(n, f):
                groups.setdefault(key, []).append(reduction)
        self.keys = tuple(sorted(groups, key=lambda k: (len(k), k)))
        self.reductions = tuple(tuple(groups[k]) for k in self.keys)
        self.expansions = tuple(
            tuple(e for n, f in enumerate(self.fields) for e in _expansions(n, f, key)) for key in self.keys
        )
        self.mixers = nn.ParameterList()
        fan_in = [0] * len(self.fields)
        for key, reductions, expansions in zip(self.keys, self.reductions, self.expansions):
            cols = sum(in_channels * self.fields[r.field].fixed for r in reductions) + (1 if not key else 0)
            rows = sum(out_channels * self.fields[e.field].fixed for e in expansions)
            self.mixers.append(nn.Parameter(torch.empty(rows, cols)))
            for e in expansions:
                fan_in[e.field] += cols
        self._fan_in = fan_in
        self.reset_parameters()

    @property
    def num_terms(self) -> int:
        """Basis maps per channel pair (valid partitions, summed over tensor pairs)."""
        return sum(len(r) * len(e) for r, e in zip(self.reductions, self.expansions))

    def reset_parameters(self) -> None:
        """``U(±1/√fan_in)`` per output tensor, its fan-in summing every term that feeds it."""
        with torch.no_grad():
            for mixer, expansions in zip(self.mixers, self.expansions):
                row = 0
                for e in expansions:
                    rows = self.out_channels * self.fields[e.field].fixed
                    bound = 1.0 / math.sqrt(self._fan_in[e.field])
                    mixer[row : row + rows].uniform_(-bound, bound)
                    row += rows

    def forward(self, features: _Features) -> _Features:
        _require_space(self.source, features, "UNFLinear")
        if features.channels != self.in_channels:
            raise SpecMismatchError(f"UNFLinear expects {self.in_channels} channels, got {features.channels}")
        inputs = [f.to_field(features.named[t.name]) for f, t in zip(self.fields, self.spec.tensors)]
        batch = features.batch_size
        outputs: list[list[torch.Tensor]] = [[] for _ in self.fields]
        for key, reductions, expansions, mixer in zip(self.keys, self.reductions, self.expansions, self.mixers):
            parts = [torch.einsum(r.equation, inputs[r.field]) / r.pooled for r in reductions]
            if not key:
                parts.append(torch.ones(batch, 1, dtype=parts[0].dtype, device=parts[0].device))
            pooled = torch.cat(parts, dim=1)
            positions = pooled.shape[2:]
            mixed = mix_channels(mixer, pooled.reshape(batch, pooled.shape[1], -1)).reshape(batch, -1, *positions)
            row = 0
            for e in expansions:
                rows = self.out_channels * self.fields[e.field].fixed
                part = mixed[:, row : row + rows]
                row += rows
                deltas = [_delta(size, rank, part) for size, rank in zip(e.deltas, e.delta_ranks)]
                term = torch.einsum(e.equation, part, *deltas) if deltas or len(key) > 1 else part
                outputs[e.field].append(term.reshape(batch, rows, *(s if v == -1 else 1 for s, v in zip(self.fields[e.field].sizes, e.view))))
        tensors = []
        for f, terms in zip(self.fields, outputs):
            terms.sort(key=lambda t: t.numel())  # small broadcast terms first, one full-size sum at the end
            total = terms[0]
            for t in terms[1:]:
                total = total + t
            tensors.append(f.from_field(total.expand(batch, -1, *f.sizes), self.out_channels))
        return features.from_named(features.spec, {t.name: x for t, x in zip(self.spec.tensors, tensors)})

    def extra_repr(self) -> str:
        return f"{self.in_channels}→{self.out_channels}, {len(self.fields)} tensors, {self.num_terms} basis maps"


class UNFPool(nn.Module):
    """The invariant pooling of UNF: every full reduction of every tensor (its mean, and the means of its
    diagonals where one set labels two axes), per channel and folded entry, concatenated.

    Shapes:
        features with ``C`` channels → ``(B, num_outputs(C))``.
    """

    def __init__(self, spec: UniversalSpec | WeightSpaceSpec, *, permute_io: bool = True) -> None:
        super().__init__()
        self.source = spec
        self.spec = spec.universal()
        self.group = spec.permutation_group()
        self.fields = tuple(UNFField.of(t, permute_io) for t in self.spec.tensors)
        self.reductions = tuple(r for n, f in enumerate(self.fields) for key, r in _reductions(n, f) if not key)

    def num_outputs(self, channels: int) -> int:
        """The output width for ``channels`` channels."""
        return sum(channels * self.fields[r.field].fixed for r in self.reductions)

    def forward(self, features: UniversalFeatures | WeightSpaceFeatures) -> torch.Tensor:
        _require_space(self.source, features, "UNFPool")
        inputs = [f.to_field(features.named[t.name]) for f, t in zip(self.fields, self.spec.tensors)]
        return torch.cat([torch.einsum(r.equation, inputs[r.field]) / r.pooled for r in self.reductions], dim=1)

