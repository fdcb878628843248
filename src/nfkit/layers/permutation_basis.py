"""The basis of linear maps equivariant to independent permutations of neuron layers.

Shared engine of :class:`~nfkit.layers.NPLinear` and :class:`~nfkit.layers.HNPLinear`
(Zhou et al. 2023, "Permutation Equivariant Neural Functionals", Sec. 3 and App. B).

Let a set Π of neuron layers be permuted, each by its own ``S_{n_ℓ}``. Every tensor of
the weight space becomes a *field*: its axes over layers in Π stay axes; every other axis
(kernel entries, neurons of unpermuted layers) is folded into the channels. A field
``x_I`` thus has permuted axes ``I ⊆ Π`` (at most two, each layer at most once).
Because distinct layers are permuted independently and no field repeats a layer,
the equivariant linear maps ``x_I ↦ y_O`` are spanned, for each ``K ⊆ I ∩ O``, by

    y_O[k, o] += Σ_c  A^{O,I,K}_{c'c}  mean_{I∖K}( x_I )[c, k]      (broadcast over O∖K)

plus a constant ``β_O`` broadcast everywhere (the ``K = ∅`` bias). The ``K = I = O``
term is the pointwise channel mix, ``K = ∅`` the global-mean terms, and one shared
index gives the row/column terms of NP's Eq. (2). Terms are grouped by ``K``: all
inputs whose axes contain ``K`` are pooled down to ``K``, concatenated along
channels and mixed to all outputs containing ``K`` by one matrix, which makes every
``(O, I)`` pair a block of that matrix.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from typing import Any

import torch
from torch import nn

from nfkit.errors import SpecMismatchError
from nfkit.layers.folded import (
    DEFAULT_FOLDED_RANK,
    POOLED_FOLDED_RANK,
    FoldedMixer,
    block_mixers,
    factorised_fields,
    summarise,
    summary_projections,
)
from nfkit.layers.mixing import mix_channels
from nfkit.spaces.features import WeightSpaceFeatures
from nfkit.spaces.spec import WeightSpaceSpec

__all__ = ["Field", "fields_of", "PermutationEquivariantLinear", "PermutationInvariantPool"]


@dataclass(frozen=True)
class Field:
    """One weight or bias tensor seen by a permutation group.

    Attributes:
        name: ``"W1"``, ``"b1"``, … (1-based layer numbers, as in the papers).
        layer: 0-based layer index.
        is_bias: bias or weight.
        axes: the permuted neuron layers the tensor is indexed by, in tensor order (descending).
        axis_sizes: their sizes.
        fixed_shape: the sizes of the folded (unpermuted) axes, in tensor order.
        order: the tensor dims (after B, C) as ``fixed dims + permuted dims``.
    """

    name: str
    layer: int
    is_bias: bool
    axes: tuple[int, ...]
    axis_sizes: tuple[int, ...]
    fixed_shape: tuple[int, ...]
    order: tuple[int, ...]

    @property
    def fixed(self) -> int:
        """Entries per channel that are folded into the channel axis."""
        return math.prod(self.fixed_shape)

    @property
    def folds_neurons(self) -> bool:
        """Whether an unpermuted neuron axis is folded into the channels (W⁽¹⁾'s inputs, W⁽ᴸ⁾'s and b⁽ᴸ⁾'s outputs under HNP)."""
        return len(self.axes) < (1 if self.is_bias else 2)

    def to_field(self, tensor: torch.Tensor) -> torch.Tensor:
        """``(B, C, *dims) → (B, C·fixed, *axis_sizes)``."""
        b, c = tensor.shape[:2]
        moved = tensor.permute(0, 1, *(2 + d for d in self.order))
        return moved.reshape(b, c * self.fixed, *self.axis_sizes)

    def from_field(self, x: torch.Tensor, channels: int) -> torch.Tensor:
        """Inverse of :meth:`to_field`: ``(B, C·fixed, *axis_sizes) → (B, C, *dims)``."""
        b = x.shape[0]
        x = x.reshape(b, channels, *self.fixed_shape, *self.axis_sizes)
        inverse = [0] * len(self.order)
        for position, d in enumerate(self.order):
            inverse[d] = position
        return x.permute(0, 1, *(2 + p for p in inverse))

    def pool(self, x: torch.Tensor, kept: tuple[int, ...]) -> torch.Tensor:
        """Mean over the field's axes not in ``kept``: ``(B, C', *sizes of kept)``."""
        dims = self.pooled_dims(kept)
        return x.mean(dim=dims) if dims else x

    def pooled_dims(self, kept: tuple[int, ...]) -> tuple[int, ...]:
        """The dims of a field tensor that :meth:`pool` averages over for ``kept``."""
        return tuple(2 + k for k, axis in enumerate(self.axes) if axis not in kept)

    def pools(self, x: torch.Tensor, kept_sets: Sequence[tuple[int, ...]]) -> dict[tuple[int, ...], torch.Tensor]:
        """:meth:`pool` for several kept sets at once (one full-size gradient in backward)."""
        reduced = [k for k in kept_sets if self.pooled_dims(k)]
        dims = tuple(self.pooled_dims(k) for k in reduced)
        means: tuple[torch.Tensor, ...]
        if not (torch.is_grad_enabled() and x.requires_grad):
            # nothing to differentiate: skip the autograd.Function's per-call overhead (a third of a
            # small layer's time, measured on a learned optimizer's step)
            means = tuple(x.mean(dim=d) for d in dims)
        else:
            means = _Means.apply(x, dims) if reduced else ()  # type: ignore[no-untyped-call]  # autograd.Function.apply is untyped
        out = dict(zip(reduced, means))
        out.update({k: x for k in kept_sets if not self.pooled_dims(k)})
        return out


class _Means(torch.autograd.Function):
    """Several means of one tensor whose backward writes one full-size gradient, not one per mean.

    Autograd's own ``mean`` backward materialises a full-size broadcast for every pooled view of a
    field; here the small gradients are summed first and broadcast once (a layer is memory-bound,
    so every full-size pass counts).
    """

    generate_vmap_rule = True  # usable under vmap / jacrev (torch.func)

    @staticmethod
    def forward(x: torch.Tensor, dims_list: tuple[tuple[int, ...], ...]) -> tuple[torch.Tensor, ...]:
        return tuple(x.mean(dim=dims) for dims in dims_list)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[torch.Tensor, tuple[tuple[int, ...], ...]], output: object) -> None:
        x, dims_list = inputs
        ctx.shape, ctx.dims_list = x.shape, dims_list

    @staticmethod
    def backward(ctx: Any, *grads: torch.Tensor | None) -> tuple[torch.Tensor | None, None]:
        shaped = []
        for g, dims in zip(grads, ctx.dims_list):
            if g is not None:
                size = [1 if d in dims else n for d, n in enumerate(ctx.shape)]
                shaped.append(g.reshape(size) / math.prod(ctx.shape[d] for d in dims))
        if not shaped:
            return None, None
        shaped.sort(key=lambda t: t.numel())
        total = shaped[0]
        for t in shaped[1:]:
            total = total + t
        return total.expand(ctx.shape), None


def fields_of(spec: WeightSpaceSpec, permuted: Iterable[int]) -> tuple[Field, ...]:
    """The fields ``W1, b1, W2, b2, …`` of ``spec`` when the neuron layers in ``permuted`` are permuted."""
    permuted = frozenset(permuted)
    fields = []
    for i, layer in enumerate(spec.layers):
        for is_bias in (False, True):
            labels: list[int | None] = [i + 1] if is_bias else [i + 1, i, *([None] * len(layer.kernel))]
            sizes = (layer.n_out,) if is_bias else layer.weight_shape
            fixed_dims = [d for d, lab in enumerate(labels) if lab is None or lab not in permuted]
            perm_dims = [d for d, lab in enumerate(labels) if lab is not None and lab in permuted]
            fields.append(
                Field(
                    name=f"{'b' if is_bias else 'W'}{i + 1}",
                    layer=i,
                    is_bias=is_bias,
                    axes=tuple(lab for lab in (labels[d] for d in perm_dims) if lab is not None),
                    axis_sizes=tuple(sizes[d] for d in perm_dims),
                    fixed_shape=tuple(sizes[d] for d in fixed_dims),
                    order=tuple(fixed_dims + perm_dims),
                )
            )
    return tuple(fields)


#: Mixers up to this many entries are fused with their offset in one ``baddbmm``.
_FUSED_MIXER_LIMIT = 1 << 16


def _subsets(axes: tuple[int, ...]) -> list[tuple[int, ...]]:
    return [tuple(c) for r in range(len(axes) + 1) for c in itertools.combinations(axes, r)]


class PermutationEquivariantLinear(nn.Module):
    """Linear map between weight-space features, equivariant to permutations of ``permuted`` layers.

    Use :class:`~nfkit.layers.NPLinear` or :class:`~nfkit.layers.HNPLinear`; this is their engine.

    Shapes:
        input features with ``in_channels`` channels; output features of the same spec
        with ``out_channels`` channels.
    """

    def __init__(
        self,
        spec: WeightSpaceSpec,
        in_channels: int,
        out_channels: int,
        permuted: Iterable[int],
        *,
        folded: str = "exact",
        folded_rank: int = DEFAULT_FOLDED_RANK,
    ) -> None:
        super().__init__()
        self.spec = spec
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.permuted = frozenset(permuted)
        self.fields = fields_of(spec, self.permuted)
        kept_sets = sorted({k for f in self.fields for k in _subsets(f.axes)}, key=lambda k: (len(k), k))
        self.kept_sets: tuple[tuple[int, ...], ...] = tuple(kept_sets)
        # members[K]: indices of the fields whose axes contain K (they are both inputs and outputs)
        self.members: tuple[tuple[int, ...], ...] = tuple(
            tuple(n for n, f in enumerate(self.fields) if set(k) <= set(f.axes)) for k in kept_sets
        )
        # kept_by_field[n]: the kept sets field n is pooled to (it is a member of their groups)
        self.kept_by_field: tuple[tuple[tuple[int, ...], ...], ...] = tuple(
            tuple(k for k, members in zip(kept_sets, self.members) if n in members) for n in range(len(self.fields))
        )
        #: groups (by index) whose mixer is a :class:`~nfkit.layers.folded.FoldedMixer`; their dense
        #: entry in ``mixers`` is an empty placeholder, so exact layers keep their parameter names
        self.factorised_groups, self.mixers, self.folded_mixers = block_mixers(
            self.members, self.fields, self.fields, in_channels, out_channels,
            factorised_fields(self.fields, folded, folded_rank), folded_rank,
        )
        self.bias = nn.Parameter(torch.empty(sum(out_channels * f.fixed for f in self.fields)))
        self.reset_parameters()

    def _fan_in(self, field_index: int) -> int:
        return sum(
            self.in_channels * self.fields[n].fixed
            for members in self.members
            if field_index in members
            for n in members
        )

    def reset_parameters(self) -> None:
        """Initialise as one linear layer whose fan-in sums every term feeding an output field.

        Each output entry of field O is ``U(±1/√fan_in_O)``-initialised over all the inputs it
        sees, PyTorch's default for ``nn.Linear``.
        """
        bounds = [1.0 / math.sqrt(self._fan_in(n)) for n in range(len(self.fields))]
        for folded_mixer in self.folded_mixers.values():
            assert isinstance(folded_mixer, FoldedMixer)
            folded_mixer.reset_parameters()
        with torch.no_grad():
            for g, (members, mixer) in enumerate(zip(self.members, self.mixers)):
                if g in self.factorised_groups:
                    continue
                row = 0
                for n in members:
                    rows = self.out_channels * self.fields[n].fixed
                    mixer[row : row + rows].uniform_(-bounds[n], bounds[n])
                    row += rows
            row = 0
            for n, f in enumerate(self.fields):
                rows = self.out_channels * f.fixed
                self.bias[row : row + rows].uniform_(-bounds[n], bounds[n])
                row += rows

    def coefficient(self, output: str, input: str, kept: tuple[int, ...]) -> torch.Tensor:
        """The block ``A^{O,I,K}`` of shape ``(out_channels·fixed_O, in_channels·fixed_I)``.

        Fields are named ``"W1"``, ``"b1"``, …; ``kept`` is the tuple of neuron layers K (descending).
        """
        names = [f.name for f in self.fields]
        o, i = names.index(output), names.index(input)
        g = self.kept_sets.index(tuple(kept))
        members = self.members[g]
        if o not in members or i not in members:
            raise KeyError(f"no term {output} ← {input} keeping {kept}")
        row = sum(self.out_channels * self.fields[n].fixed for n in members[: members.index(o)])
        col = sum(self.in_channels * self.fields[n].fixed for n in members[: members.index(i)])
        matrix = self.mixers[g]
        if g in self.factorised_groups:
            folded_mixer = self.folded_mixers[str(g)]
            assert isinstance(folded_mixer, FoldedMixer)
            matrix = folded_mixer.dense()
        return matrix[
            row : row + self.out_channels * self.fields[o].fixed, col : col + self.in_channels * self.fields[i].fixed
        ]

    def constant(self, output: str) -> torch.Tensor:
        """The constant ``β_O`` of shape ``(out_channels·fixed_O,)``."""
        names = [f.name for f in self.fields]
        o = names.index(output)
        row = sum(self.out_channels * f.fixed for f in self.fields[:o])
        return self.bias[row : row + self.out_channels * self.fields[o].fixed]

    def forward(self, features: WeightSpaceFeatures) -> WeightSpaceFeatures:
        self.spec.require_compatible(features.spec)
        if features.channels != self.in_channels:
            raise SpecMismatchError(f"{type(self).__name__} expects {self.in_channels} channels, got {features.channels}")
        inputs = [f.to_field(t) for f, t in zip(self.fields, features.tensors())]
        batch = features.batch_size
        pools = [f.pools(x, k) for f, x, k in zip(self.fields, inputs, self.kept_by_field)]
        full: list[tuple[torch.Tensor, torch.Tensor] | torch.Tensor | None] = [None] * len(self.fields)
        broadcast: list[list[torch.Tensor]] = [[] for _ in self.fields]
        bias_chunks = self.bias.split([self.out_channels * f.fixed for f in self.fields])
        for g, (kept, members, mixer) in enumerate(zip(self.kept_sets, self.members, self.mixers)):
            parts = [pools[n][kept] for n in members]
            positions = math.prod(parts[0].shape[2:])
            if g in self.factorised_groups:
                mixed = self.folded_mixers[str(g)]([p.reshape(batch, -1, positions) for p in parts])
                for n, y in zip(members, mixed):
                    f = self.fields[n]
                    shape = [size if axis in kept else 1 for axis, size in zip(f.axes, f.axis_sizes)]
                    if len(kept) == len(f.axes):
                        full[n] = y
                    else:
                        broadcast[n].append(y.reshape(batch, y.shape[1], *shape))
                continue
            pooled = (parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)).reshape(batch, -1, positions)
            row = 0
            for n in members:
                f = self.fields[n]
                rows = self.out_channels * f.fixed
                if len(kept) == len(f.axes):  # the full-size term: fused with the others below
                    full[n] = (mixer[row : row + rows], pooled)
                else:
                    shape = [size if axis in kept else 1 for axis, size in zip(f.axes, f.axis_sizes)]
                    broadcast[n].append(mix_channels(mixer[row : row + rows], pooled).reshape(batch, rows, *shape))
                row += rows
        outputs = []
        for n, f in enumerate(self.fields):
            # The broadcast terms are summed small-first, materialised at most once, and added by the
            # same BLAS call that does the channel mixing: a layer is memory-bound, each full-size
            # pass costs about as much as the mixing itself.
            rows = self.out_channels * f.fixed
            small = sorted(broadcast[n], key=lambda t: t.numel())
            offset = bias_chunks[n].view(1, -1, *([1] * len(f.axes)))
            for t in small:
                offset = offset + t
            term = full[n]
            offset = offset.expand(batch, rows, *f.axis_sizes).reshape(batch, rows, -1)
            assert term is not None  # every field keeps all its own axes once
            if isinstance(term, torch.Tensor):  # computed by a folded mixer
                outputs.append((term + offset).reshape(batch, rows, *f.axis_sizes))
                continue
            mixer, pooled = term
            if mixer.numel() <= _FUSED_MIXER_LIMIT:  # baddbmm copies the mixer once per batch element
                y = torch.baddbmm(offset, mixer.expand(batch, *mixer.shape), pooled)
            else:
                y = torch.matmul(mixer, pooled).add_(offset)
            outputs.append(y.reshape(batch, rows, *f.axis_sizes))
        tensors = [f.from_field(y, self.out_channels) for f, y in zip(self.fields, outputs)]
        return features.with_tensors(tensors[0::2], tensors[1::2])

    def extra_repr(self) -> str:
        return f"{self.in_channels}→{self.out_channels}, permuted layers {sorted(self.permuted)}"


class PermutationInvariantPool(nn.Module):
    """Mean of every field over its permuted axes, concatenated: ``(B, Σ_fields C·fixed)``.

    With ``folded`` factorising (:func:`~nfkit.layers.folded.folded_mode`), a field that folds
    more than :data:`~nfkit.layers.folded.POOLED_FOLDED_RANK` neurons is passed on as that many
    learned summaries per channel (:class:`~nfkit.layers.folded.FoldedProjection`).

    Shapes:
        input features with ``C`` channels → output ``(B, num_outputs(C))``.
    """

    def __init__(self, spec: WeightSpaceSpec, permuted: Iterable[int], *, folded: str = "exact") -> None:
        super().__init__()
        self.spec = spec
        self.fields = fields_of(spec, permuted)
        # a folded neuron axis (W⁽¹⁾'s inputs, W⁽ᴸ⁾'s outputs) is summarised, not kept whole, when factorised
        self.projections = summary_projections(self.fields, folded)

    def _width(self, n: int) -> int:
        return POOLED_FOLDED_RANK if str(n) in self.projections else self.fields[n].fixed

    def num_outputs(self, channels: int) -> int:
        """The output width for features with ``channels`` channels."""
        return sum(channels * self._width(n) for n in range(len(self.fields)))

    def forward(self, features: WeightSpaceFeatures) -> torch.Tensor:
        self.spec.require_compatible(features.spec)
        pooled = [f.pool(f.to_field(t), ()) for f, t in zip(self.fields, features.tensors())]
        return torch.cat(summarise(pooled, self.projections), dim=1)
