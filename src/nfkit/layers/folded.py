"""Channel mixing over folded neuron indices, exact or factorised.

Layers equivariant to *hidden*-neuron symmetries only (HNP, Monomial-NFN, MAGEP-NFN) fold every
axis the group leaves alone into the channel axis: the input neurons of ``W⁽¹⁾``, the output
neurons of ``W⁽ᴸ⁾`` and ``b⁽ᴸ⁾``, kernel entries (Zhou et al. 2023, Sec. 3.2; Tran et al. 2024,
Sec. 5). A field with ``C`` channels and ``F`` folded entries becomes ``C·F`` channels, and the
layer mixes them with a dense matrix of shape ``(C'·F_out, C·F_in)``. On an MLP with 784 inputs
and 32 channels one such block holds ``(32·784)² ≈ 630 M`` weights.

Any linear map of the folded channels commutes with the group, because the group never acts on
a folded axis. So that matrix can be restricted to a cheaper family **without touching the
symmetry**. :class:`FoldedMixer` uses, for output field ``o`` and input fields ``i``
(``x_i[c, φ]``: channel ``c``, folded entry ``φ``)::

    y_o[c', φ'] = Σ_k u⁽ᵒ⁾_k[φ'] Σ_i Σ_c M⁽ᵒ⁾_k[c', (i, c)] Σ_φ v⁽ⁱ⁾_k[φ] x_i[c, φ]        (rank R over entries)
                + Σ_c N⁽ᵒ⁾[c', c] g⁽ᵒ⁾[c, φ'] x_o[c, φ']                                  (per-entry channel mixer)

The first term sees every entry of every input through ``R`` learned summaries per field; the
second mixes channels at each folded entry with its own matrix ``N diag(g_φ)`` (a per-input-index
channel mixer), the term that keeps an input pixel's own weights apart: one shared GEMM after
an entrywise gain, so it costs what the exact layer's pointwise term costs. A field with
``F = 1`` gets a full channel mixer from the first term. Parameters: ``R·(Σ F + Σ C'·ΣC)`` plus
``C·F + C'·C`` per self-pair, instead of ``ΣC'F · ΣCF``.

Shapes:
    ``x_i: (B, C_i·F_i, m) → y_o: (B, C'_o·F_o, m)`` (channel-major folding, as
    :meth:`~nfkit.layers.permutation_basis.Field.to_field` produces).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal, Protocol

import torch
from torch import nn

from nfkit.errors import InvalidOptionError

__all__ = [
    "FoldedMixer",
    "FoldedProjection",
    "FOLDED_MODES",
    "FOLDED_AUTO_ENTRIES",
    "DEFAULT_FOLDED_RANK",
    "POOLED_FOLDED_RANK",
    "folded_mode",
    "factorised_fields",
    "block_mixers",
    "summary_projections",
    "summarise",
]

FoldedMode = Literal["auto", "exact", "factorised"]

#: Accepted values of the ``folded`` option of HNP and Monomial-NFN.
FOLDED_MODES: tuple[str, ...] = ("auto", "exact", "factorised")

#: ``folded="auto"`` factorises when a field folds more than this many entries per channel: an input
#: layer with more than 256 inputs × kernel entries (a 784-input MLP), or as many outputs. The 8×8
#: digits (64), SIRENs (2) and the Small CNN Zoo (9) stay exact.
FOLDED_AUTO_ENTRIES = 256

#: Rank R of the factorised form.
DEFAULT_FOLDED_RANK = 4

#: Summaries per channel that a factorised readout keeps of a folded field (:class:`FoldedProjection`).
POOLED_FOLDED_RANK = 16


def folded_mode(mode: str, largest_fold: int, rank: int = DEFAULT_FOLDED_RANK) -> bool:
    """Whether a layer whose largest folded field has ``largest_fold`` entries per channel is factorised.

    Raises:
        InvalidOptionError: an unknown mode, or a rank below 1.
    """
    if mode not in FOLDED_MODES:
        raise InvalidOptionError(f"folded must be one of {', '.join(FOLDED_MODES)}, got {mode!r}")
    if isinstance(rank, bool) or not isinstance(rank, int) or rank < 1:
        raise InvalidOptionError(f"folded_rank must be a positive integer, got {rank!r}")
    return mode == "factorised" or (mode == "auto" and largest_fold > FOLDED_AUTO_ENTRIES)


class _Folded(Protocol):
    """What the helpers below read of a :class:`~nfkit.layers.permutation_basis.Field`."""

    @property
    def fixed(self) -> int: ...

    @property
    def folds_neurons(self) -> bool: ...


def factorised_fields(fields: Sequence[_Folded], mode: str, rank: int = DEFAULT_FOLDED_RANK) -> frozenset[int]:
    """Indices of the fields that fold an unpermuted neuron axis, if ``mode`` factorises them; else none."""
    folding = [n for n, f in enumerate(fields) if f.folds_neurons]
    largest = max((fields[n].fixed for n in folding), default=0)
    return frozenset(folding) if folding and folded_mode(mode, largest, rank) else frozenset()


def block_mixers(
    blocks: Sequence[Sequence[int]],
    in_fields: Sequence[_Folded],
    out_fields: Sequence[_Folded],
    in_channels: int,
    out_channels: int,
    factorised: frozenset[int],
    rank: int,
) -> tuple[tuple[int, ...], nn.ParameterList, nn.ModuleDict]:
    """The channel mixers of a layer that mixes its fields in blocks (HNP's kept sets, Monomial-NFN's characters).

    A block holding a factorised field gets a :class:`FoldedMixer` (keyed by the block's index)
    and an empty placeholder among the dense mixers, so exact layers keep their parameter names.

    Returns:
        ``(factorised block indices, dense mixers (C'·ΣF_out, C·ΣF_in) per block, folded mixers)``.
    """
    chosen = tuple(b for b, members in enumerate(blocks) if factorised & set(members))
    dense = nn.ParameterList(
        nn.Parameter(
            torch.empty(sum(out_channels * out_fields[n].fixed for n in members), sum(in_channels * in_fields[n].fixed for n in members))
            if b not in chosen
            else torch.empty(0, 0)
        )
        for b, members in enumerate(blocks)
    )
    folded = nn.ModuleDict(
        {
            str(b): FoldedMixer(
                [(in_channels, in_fields[n].fixed) for n in blocks[b]],
                [(out_channels, out_fields[n].fixed) for n in blocks[b]],
                self_pairs=[
                    (p, p) for p, n in enumerate(blocks[b]) if n in factorised and in_fields[n].fixed == out_fields[n].fixed > 1
                ],
                rank=rank,
            )
            for b in chosen
        }
    )
    return chosen, dense, folded


def summary_projections(fields: Sequence[_Folded], mode: str) -> nn.ModuleDict:
    """For an invariant readout: a :class:`FoldedProjection` per factorised field (keyed by index) that
    folds more than :data:`POOLED_FOLDED_RANK` entries; a smaller field is never widened."""
    return nn.ModuleDict(
        {str(n): FoldedProjection(fields[n].fixed, POOLED_FOLDED_RANK)
         for n in sorted(factorised_fields(fields, mode)) if fields[n].fixed > POOLED_FOLDED_RANK}
    )


def summarise(pooled: list[torch.Tensor], projections: nn.ModuleDict) -> list[torch.Tensor]:
    """``pooled`` (one ``(B, C·F)`` tensor per field) with the projected fields replaced by their summaries."""
    for key, projection in projections.items():
        pooled[int(key)] = projection(pooled[int(key)])
    return pooled


class FoldedMixer(nn.Module):
    """Factorised linear map between lists of folded fields (see the module docstring).

    Args:
        in_segments: ``(C_i, F_i)`` of each input field.
        out_segments: ``(C'_o, F_o)`` of each output field.
        self_pairs: ``(o, i)`` pairs whose folded entries correspond one to one (the same field
            before and after the layer); they get the per-entry channel mixer. ``F_o == F_i``.
        rank: R.

    Shapes:
        ``parts[i]: (B, C_i·F_i, m)`` → list of ``(B, C'_o·F_o, m)``.

    Example:
        >>> mixer = FoldedMixer([(3, 784), (3, 1)], [(5, 784), (5, 1)], self_pairs=[(0, 0)], rank=2)
        >>> [y.shape for y in mixer([torch.randn(4, 3 * 784, 7), torch.randn(4, 3, 7)])]
        [torch.Size([4, 3920, 7]), torch.Size([4, 5, 7])]
    """

    def __init__(
        self,
        in_segments: Sequence[tuple[int, int]],
        out_segments: Sequence[tuple[int, int]],
        *,
        self_pairs: Sequence[tuple[int, int]] = (),
        rank: int = DEFAULT_FOLDED_RANK,
    ) -> None:
        super().__init__()
        self.in_segments = tuple((int(c), int(f)) for c, f in in_segments)
        self.out_segments = tuple((int(c), int(f)) for c, f in out_segments)
        self.rank = rank
        for o, i in self_pairs:
            if self.out_segments[o][1] != self.in_segments[i][1]:
                raise ValueError(f"self pair ({o}, {i}) joins fields of {self.out_segments[o][1]} and {self.in_segments[i][1]} entries")
        self.self_pairs = tuple((int(o), int(i)) for o, i in self_pairs)
        total_in = sum(c for c, _ in self.in_segments)
        self.summaries = nn.ParameterList(nn.Parameter(torch.empty(rank, f)) for _, f in self.in_segments)
        self.spreads = nn.ParameterList(nn.Parameter(torch.empty(rank, f)) for _, f in self.out_segments)
        self.mixers = nn.ParameterList(nn.Parameter(torch.empty(rank, c, total_in)) for c, _ in self.out_segments)
        self.entry_gains = nn.ParameterList(nn.Parameter(torch.empty(*self.in_segments[i], 1)) for _, i in self.self_pairs)
        self.entry_mixers = nn.ParameterList(
            nn.Parameter(torch.empty(self.out_segments[o][0], self.in_segments[i][0])) for o, i in self.self_pairs
        )
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Each term keeps about the variance of its inputs, like a default ``nn.Linear`` would."""
        total_in = sum(c for c, _ in self.in_segments)
        with torch.no_grad():
            for v, (_, f) in zip(self.summaries, self.in_segments):
                v.normal_(0.0, 1.0 / math.sqrt(f))
            for u in self.spreads:
                u.normal_(0.0, 1.0 / math.sqrt(self.rank))
            for m in self.mixers:
                m.uniform_(-1.0 / math.sqrt(total_in), 1.0 / math.sqrt(total_in))
            for gain in self.entry_gains:
                gain.fill_(1.0)  # a shared channel mixer at first, as the exact layer's pointwise term
            for n, (o, i) in zip(self.entry_mixers, self.self_pairs):
                bound = 1.0 / math.sqrt(self.in_segments[i][0])
                n.uniform_(-bound, bound)

    def forward(self, parts: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        batch, m = parts[0].shape[0], parts[0].shape[-1]
        # every product below is laid out so that no full-size tensor is permuted (a copy each)
        summaries = torch.cat(
            [torch.matmul(v, x.reshape(batch, c, f, m)) for (c, f), v, x in zip(self.in_segments, self.summaries, parts)],
            dim=1,
        ).transpose(1, 2)  # (B, R, ΣC, m), small
        outputs = []
        for (c_out, f_out), u, mixer in zip(self.out_segments, self.spreads, self.mixers):
            mixed = torch.matmul(mixer, summaries).transpose(1, 2)  # (B, C', R, m)
            outputs.append(torch.matmul(u.T, mixed))  # (B, C', F, m)
        for (o, i), gain, entry_mixer in zip(self.self_pairs, self.entry_gains, self.entry_mixers):
            (c_in, f), c_out = self.in_segments[i], self.out_segments[o][0]
            gained = (parts[i].reshape(batch, c_in, f, m) * gain).reshape(batch, c_in, f * m)
            outputs[o] = outputs[o] + torch.matmul(entry_mixer, gained).reshape(batch, c_out, f, m)
        return [y.reshape(batch, c * f, m) for y, (c, f) in zip(outputs, self.out_segments)]

    def dense(self) -> torch.Tensor:
        """The equivalent dense matrix ``(ΣC'_o F_o, ΣC_i F_i)`` (for tests and small sizes only)."""
        eye = torch.eye(sum(c * f for c, f in self.in_segments), dtype=self.mixers[0].dtype)
        columns = eye.unsqueeze(0)  # batch 1, S channels, S positions: position s holds the basis vector e_s
        parts = list(columns.split([c * f for c, f in self.in_segments], dim=1))
        return torch.cat(self(parts), dim=1)[0]

    def extra_repr(self) -> str:
        return f"rank {self.rank}, {len(self.in_segments)} → {len(self.out_segments)} fields, {len(self.self_pairs)} per-entry mixers"


class FoldedProjection(nn.Module):
    """Learned summaries of a folded field for an invariant readout: ``(B, C·F) → (B, C·R)``.

    ``y[c, k] = Σ_φ P_k[φ] x[c, φ]``: it acts on the folded entries only, so it keeps every
    invariance of the pooled input (for a readout after HNP pooling of a 784-input MLP,
    ``W⁽¹⁾`` pooled over its rows keeps ``C·784`` numbers; this passes ``C·R`` on). ``F`` is
    the last folded axis: an input of ``C·G·F`` entries (e.g. ``n_L·n_0``) gives ``C·G·R``.

    Shapes:
        ``(B, C·F) → (B, C·R)`` for any C.
    """

    def __init__(self, entries: int, rank: int) -> None:
        super().__init__()
        self.entries, self.rank = entries, rank
        self.weight = nn.Parameter(torch.randn(rank, entries) / math.sqrt(entries))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.einsum("kf,bcf->bck", self.weight, x.reshape(x.shape[0], -1, self.entries))
        return y.reshape(x.shape[0], -1)
