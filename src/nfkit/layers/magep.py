"""MAGEP-NFN's layers (Vo et al., "Equivariant Polynomial Functional Networks", ICML 2025): the
equivariant polynomial layer (Sec. 5) and the invariant one (Sec. 6). Their terms (path products,
contractions through the fixed indices, traces) and the degree-1 homogenisation that keeps them
stable are in :mod:`nfkit.layers.magep_terms`.
"""

from __future__ import annotations

import math
from typing import final

import torch
from torch import nn

from nfkit.errors import SpecMismatchError
from nfkit.layers.folded import DEFAULT_FOLDED_RANK, FoldedMixer, summarise
from nfkit.layers.magep_terms import LowRankTerm, PolynomialTerms, full_monomial, invariant_scale, mix_low_rank
from nfkit.layers.mixing import mix_channels
from nfkit.spaces.features import WeightSpaceFeatures
from nfkit.spaces.spec import WeightSpaceSpec

__all__ = ["PolynomialTerms", "MagepLinear", "MagepInvariant", "invariant_scale"]


@final
class MagepLinear(nn.Module):
    """MAGEP-NFN equivariant polynomial layer (Vo et al. 2025, Sec. 5; see the module docstring).

    Args:
        spec: a weight space without kernels, L ≥ 2 (``spec.without_kernels()`` for a CNN).
        in_channels, out_channels: C → C'.
        learnable_contractions: whether ψ and Ψ are trained (default; the reference code froze them).
        folded, folded_rank: as for :class:`~nfkit.layers.HNPLinear`. When factorising (``"auto"``:
            more than :data:`~nfkit.layers.folded.FOLDED_AUTO_ENTRIES` inputs or outputs), every
            field whose terms fold an input or output index is mixed by a
            :class:`~nfkit.layers.folded.FoldedMixer`, and each Ψ is of rank ``folded_rank``.
            Both act on the fixed indices only, so the group is unchanged.

    Attributes:
        group: hidden permutations × all non-zero diagonal scalings.

    Shapes:
        weights ``(B, C, n_i, n_{i-1}) → (B, C', n_i, n_{i-1})``, biases ``(B, C, n_i) → (B, C', n_i)``.

    Example:
        >>> from nfkit.spaces import WeightSpaceSpec
        >>> spec = WeightSpaceSpec.mlp([2, 8, 8, 1])
        >>> MagepLinear(spec, 3, 4)(spec.randn(5, 3)).weights[0].shape
        torch.Size([5, 4, 8, 2])
    """

    def __init__(
        self,
        spec: WeightSpaceSpec,
        in_channels: int,
        out_channels: int,
        *,
        learnable_contractions: bool = True,
        folded: str = "auto",
        folded_rank: int = DEFAULT_FOLDED_RANK,
    ) -> None:
        super().__init__()
        self.spec = spec
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.group = full_monomial(spec)
        self.terms = PolynomialTerms(spec, in_channels, learnable_contractions, folded=folded, folded_rank=folded_rank)
        self.fields = self.terms.fields
        entries = self.terms.entries()
        widths = {k: in_channels * sum(v) for k, v in entries.items()}
        # factorised: the fields with a folded input or output index among their terms (folded.py);
        # their dense entry is an empty placeholder, and b⁽ᴸ⁾'s n_L·n_0 terms are summarised first
        factorise = self.terms.contraction_rank is not None
        self.factorised_fields = tuple(f.name for f in self.fields if factorise and any(n > 1 for n in entries[f.name]))
        self.projections = nn.ModuleDict()
        for name in self.factorised_fields:
            self.projections[name], entries[name] = self.terms.path_projections(entries[name])
        self.mixers = nn.ParameterDict(
            {
                f.name: nn.Parameter(
                    torch.empty(out_channels * f.fixed, widths[f.name]).uniform_(-1, 1) * math.sqrt(3 / widths[f.name])
                    if f.name not in self.factorised_fields
                    else torch.empty(0, 0)
                )
                for f in self.fields
            }
        )
        self.folded_mixers = nn.ModuleDict(
            {
                f.name: FoldedMixer(
                    [(in_channels, n) for n in entries[f.name]],
                    [(out_channels, f.fixed)],
                    self_pairs=[(0, i) for i, n in enumerate(entries[f.name]) if n == f.fixed > 1],
                    rank=folded_rank,
                )
                for f in self.fields
                if f.name in self.factorised_fields
            }
        )
        self.constant = nn.Parameter(torch.zeros(out_channels * self.fields[-1].fixed))

    def _projections(self, name: str) -> nn.ModuleDict:
        projections = self.projections[name]
        assert isinstance(projections, nn.ModuleDict)
        return projections

    def forward(self, features: WeightSpaceFeatures) -> WeightSpaceFeatures:
        self.spec.require_compatible(features.spec)
        if features.channels != self.in_channels:
            raise SpecMismatchError(f"MagepLinear expects {self.in_channels} channels, got {features.channels}")
        inputs = self.terms.factored_terms(features)
        batch = features.batch_size
        tensors = []
        for f in self.fields:
            if f.name in self.factorised_fields:
                positions = math.prod(f.axis_sizes)
                terms = summarise([t.dense() if isinstance(t, LowRankTerm) else t for t in inputs[f.name]], self._projections(f.name))
                (y,) = self.folded_mixers[f.name]([t.reshape(batch, -1, positions) for t in terms])
            else:
                # one GEMM per term into the same output, not one over their concatenation: the terms of a
                # hidden-to-hidden field are full n × n tensors, and concatenating them copied each again
                mixer, start = self.mixers[f.name], 0
                parts, low_rank, low_rank_mixers = [], [], []
                for term in inputs[f.name]:
                    width = term.channels if isinstance(term, LowRankTerm) else term.shape[1]
                    if isinstance(term, LowRankTerm):
                        low_rank.append(term)
                        low_rank_mixers.append(mixer[:, start:start + width])
                    else:
                        parts.append(mix_channels(mixer[:, start:start + width], term.reshape(batch, width, -1)))
                    start += width
                if low_rank:
                    parts.append(mix_low_rank(low_rank_mixers, low_rank))
                y = parts[0]
                for part in parts[1:]:
                    y = y + part
            if f is self.fields[-1]:
                y = y + self.constant.view(1, -1, 1)
            tensors.append(f.from_field(y.reshape(batch, y.shape[1], *f.axis_sizes), self.out_channels))
        return features.with_tensors(tensors[0::2], tensors[1::2])

    def extra_repr(self) -> str:
        return f"{self.in_channels}→{self.out_channels}"


@final
class MagepInvariant(nn.Module):
    """MAGEP-NFN invariant polynomial layer (Vo et al. 2025, Sec. 6).

    ``I(U) = Λ [W_(L,0), W_(L,0) Ψ W_(L,0), b⁽ᴸ⁾ ψ W_(L,0), Σ_t W_(L,t) b⁽ᵗ⁾, τ_bW^{(s)}, b⁽ᴸ⁾] + β``:
    every term is fully telescoped, so the terms are invariant to *any* invertible matrix per
    hidden layer, not only monomials. The degree-1 homogenisation divides by a scale built
    from ``|W|``, which telescopes under monomial matrices only, so the layer as a whole is
    invariant to the monomial group (all non-zero diagonals × permutations), the group the
    models declare. On its own it sees only the linearised network; the equivariant layers
    and nonlinearities before it give it more.

    Shapes:
        features with C channels → ``(B, out_features)``.
    """

    def __init__(
        self,
        spec: WeightSpaceSpec,
        in_channels: int,
        out_features: int,
        *,
        learnable_contractions: bool = True,
        folded: str = "auto",
        folded_rank: int = DEFAULT_FOLDED_RANK,
    ) -> None:
        super().__init__()
        self.spec = spec
        self.in_channels = in_channels
        self.group = full_monomial(spec)
        self.terms = PolynomialTerms(spec, in_channels, learnable_contractions, folded=folded, folded_rank=folded_rank)
        # factorised: b⁽ᴸ⁾'s n_L·n_0 terms are passed on as learned summaries of their inputs
        self.projections, entries = self.terms.path_projections(self.terms.entries()[f"b{spec.num_layers}"])
        width = in_channels * sum(entries)
        self.linear = nn.Linear(width, out_features)
        self.out_features = out_features

    def num_outputs(self, channels: int) -> int:
        """The readout width (``out_features``) for the ``in_channels`` it was built for."""
        if channels != self.in_channels:
            raise ValueError(f"this readout was built for {self.in_channels} channels, not {channels}")
        return self.out_features

    def forward(self, features: WeightSpaceFeatures) -> torch.Tensor:
        self.spec.require_compatible(features.spec)
        invariants = self.terms.terms(features)[f"b{self.spec.num_layers}"]
        return self.linear(torch.cat(summarise(invariants, self.projections), dim=1))
