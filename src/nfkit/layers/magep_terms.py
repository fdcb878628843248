"""The polynomial terms of MAGEP-NFN's layers (Vo et al., "Equivariant Polynomial Functional Networks", ICML 2025).

Built from products along paths of the network (Sec. 4 of the paper), per channel:

* path products ``W_(s,t) = W⁽ˢ⁾ ⋯ W⁽ᵗ⁺¹⁾`` (``n_s × n_t``), which telescope:
  ``W_(s,t) ↦ g_s W_(s,t) g_t⁻¹``; here only prefixes ``W_(s,0)`` and suffixes ``W_(L,t)`` are
  formed, O(L) matrix products;
* propagated biases ``v_s = Σ_{t<s} W_(s,t) b⁽ᵗ⁾``, by the recursion ``v_s = W⁽ˢ⁾ (v_{s-1} + b⁽ˢ⁻¹⁾)``;
* contractions through the fixed input and output indices, with learnable ψ ∈ ℝ^{n_L} and
  Ψ ∈ ℝ^{n_0 × n_L} per channel: ``[WW]^{(s,0)}_{(L,t)} = W_(s,0) Ψ W_(L,t)`` and
  ``[bW]^{(s)}_{(L,t)} = b⁽ˢ⁾ (ψ W_(L,t))`` (both ``n_s × n_t``, transforming like a weight);
* trace invariants ``τ_bW^{(s)} = ψ W_(L,s) b⁽ˢ⁾``. (The paper's ``τ_WW^{(s)} = tr(W_(s,0) Ψ W_(L,s))``
  equals ``tr(Ψ W_(L,0))``, a linear function of ``W_(L,0)``, which is already a term; it is left out.)

Each term transforms by a character, as in :mod:`nfkit.layers.monomial`, and feeds the
outputs of the same character (Sec. 5, the equivariant layer):

* ``W'⁽¹⁾, b'⁽¹⁾ ← W⁽¹⁾, b⁽¹⁾, [WW]^{(1,0)}_{(L,0)}, [bW]^{(1)}_{(L,0)}`` mixing over the input index;
* ``W'⁽ˢ⁾ ← W⁽ˢ⁾, [WW]^{(s,0)}_{(L,s-1)}, [bW]^{(s)}_{(L,s-1)}`` pointwise (1 < s ≤ L; over the output index for s = L);
* ``b'⁽ˢ⁾ ← b⁽ˢ⁾, W_(s,0), [WW]^{(s,0)}_{(L,0)}, v_s, [bW]^{(s)}_{(L,0)}`` (1 < s < L);
* ``b'⁽ᴸ⁾ ← b⁽ᴸ⁾, W_(L,0), [WW]^{(L,0)}_{(L,0)}, [bW]^{(L)}_{(L,0)}, v_L, τ_bW^{(s)}`` plus a constant.

Every term is exactly equivariant to hidden permutations × *any* non-zero diagonal scaling.

**Scale.** The terms have degree up to 2L, and a ReLU network's weight scale is arbitrary,
so raw products overflow or vanish (and stacking layers multiplies the degrees). Each
polynomial term is therefore evaluated on ``x / s`` and multiplied back by ``s``, where

    s = ‖ |W⁽ᴸ⁾| ⋯ |W⁽¹⁾| ‖_F^{1/L}   (per network and channel)

computed on entrywise absolute values (see :func:`invariant_scale`), is *exactly invariant*
(the product telescopes: ``g_L (·) g_0⁻¹`` with ``g_0 = g_L = I``) and homogeneous of degree 1
in a global rescaling. Every term becomes homogeneous of degree 1, like a linear layer, so
magnitudes track the input's and never compound across stacked layers, and since ``s`` is
invariant the symmetry is untouched. ``log s`` is computed in log space from per-layer
maxima, so ``s`` itself never overflows or underflows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from nfkit.errors import SpecMismatchError, UnsupportedArchitectureError
from nfkit.groups.neurons import HiddenNeuronGroup, permutations, positive_scalings, sign_flips
from nfkit.layers.folded import DEFAULT_FOLDED_RANK, FoldedProjection, folded_mode
from nfkit.layers.permutation_basis import fields_of
from nfkit.spaces.features import WeightSpaceFeatures
from nfkit.spaces.spec import WeightSpaceSpec

__all__ = ["PolynomialTerms", "LowRankTerm", "mix_low_rank", "invariant_scale", "full_monomial", "check_spec"]

_LOG_WINDOW = math.log(10.0)  # per-channel scales stay within this factor of the network's geometric mean


def invariant_scale(weights: list[torch.Tensor]) -> torch.Tensor:
    """An exactly invariant, degree-1 scale per network and channel, computed in log space.

    ``s_c = ‖ |W⁽ᴸ⁾| ⋯ |W⁽¹⁾| ‖_F^{1/L}`` for channel c. Entrywise absolute values transform by
    the positive monomial ``|g|``, so this product telescopes like ``W_(L,0)`` and is invariant,
    and it cannot cancel to zero the way the signed product can. Each ``s_c`` is then clamped to
    within a factor 10 of the network's geometric mean over channels. A channel whose end-to-end
    path is weak (a layer a ReLU left mostly zero) would otherwise amplify the partial products
    that do not cross the weak layer by ``(entry scale / s_c)^(degree − 1)``; this was measured
    at 10⁹ after two layers in a ReLU model. A channel with a zero product takes the lower edge.
    Every quantity involved is invariant, so the clamp is too. With no usable channel, ``s = 1``.

    Shapes:
        weights ``(B, C, n_s, n_{s-1})`` for s = 1..L → ``(B, C)``.
    """
    tiny = torch.finfo(weights[0].dtype).tiny
    magnitudes = [w.abs() for w in weights]
    # the maxima only keep the product in range: s does not depend on them (their logs are added back
    # below), so they carry no gradient; detached, amax's backward (a fifth of a wide MAGEP step) is skipped
    maxima = [m.amax(dim=(-2, -1)).detach().clamp_min(tiny) for m in magnitudes]
    product = magnitudes[0] / maxima[0][..., None, None]
    for m, top in zip(magnitudes[1:], maxima[1:]):  # the division on the thin product, not on |W⁽ˢ⁾|
        product = torch.matmul(m, product) / top[..., None, None]
    norm_sq = product.square().sum(dim=(-2, -1))
    positive = norm_sq > 0
    # log of a safe value where the norm is zero: torch.where would still send an infinite
    # derivative (times zero: NaN) back through the branch it does not pick
    safe = torch.where(positive, norm_sq, torch.ones_like(norm_sq))
    log_scale = (2 * sum(top.log() for top in maxima) + safe.log()) / (2 * len(weights))
    usable = positive & torch.isfinite(log_scale)
    count = usable.sum(dim=1, keepdim=True)
    reference = torch.where(usable, log_scale, torch.zeros_like(log_scale)).sum(dim=1, keepdim=True) / count.clamp_min(1)
    # keep every channel within a factor _WINDOW of the network's geometric mean: a channel whose
    # end-to-end path is weak (a mostly dead layer) would otherwise amplify its partial products
    # by (entry scale / s)^(degree - 1); unusable channels (zero product) land on the lower edge
    low, high = reference - _LOG_WINDOW, reference + _LOG_WINDOW
    log_scale = torch.where(usable, torch.minimum(torch.maximum(log_scale, low), high), low.expand_as(log_scale))
    return torch.exp(log_scale)


def full_monomial(spec: WeightSpaceSpec) -> HiddenNeuronGroup:
    sizes = spec.hidden_sizes
    return permutations(sizes) * positive_scalings(sizes) * sign_flips(sizes)


def check_spec(spec: WeightSpaceSpec, what: str) -> None:
    if any(layer.kernel for layer in spec.layers):
        raise SpecMismatchError(
            f"{what} takes matrix products and needs a spec without kernels; map a CNN's features with "
            f"MonomialLinear(spec, C, C', out_spec=spec.without_kernels()) first"
        )
    if spec.num_layers < 2:
        raise UnsupportedArchitectureError(f"{what} needs at least two layers, got {spec.describe()}")


def _rows_hidden(t: torch.Tensor) -> torch.Tensor:  # (B, C, n_s, n_0) → (B, C·n_0, n_s)
    return t.transpose(2, 3).reshape(t.shape[0], -1, t.shape[2])


def _cols_hidden(t: torch.Tensor) -> torch.Tensor:  # (B, C, n_L, n_t) → (B, C·n_L, n_t)
    return t.reshape(t.shape[0], -1, t.shape[3])


@dataclass(frozen=True)
class LowRankTerm:
    """A hidden-to-hidden term ``left @ right`` per network and channel that is never formed.

    Shapes:
        left ``(B, C, n_s, r)``, right ``(B, C, r, n_t)``: the term ``(B, C, n_s, n_t)`` has rank ``r``.
    """

    left: torch.Tensor
    right: torch.Tensor

    @property
    def channels(self) -> int:
        """``C``."""
        return int(self.left.shape[1])

    def dense(self) -> torch.Tensor:
        """The term itself, ``(B, C, n_s, n_t)``."""
        return torch.matmul(self.left, self.right)


def mix_low_rank(mixers: list[torch.Tensor], terms: list[LowRankTerm]) -> torch.Tensor:
    """``Σ_k mixers[k] @ terms[k]`` over channels, as one GEMM of inner size ``Σ_k C·r_k``.

    ``Σ_c M_{oc} L_c R_c = [M_{oc} L_c]_c [R_c]_c``: the output channel's left factors side by side
    times every channel's right factors stacked; the ``(B, C, n_s, n_t)`` terms are never formed.

    Shapes:
        mixers ``(C', C)`` each, terms as in :class:`LowRankTerm` → ``(B, C', n_s · n_t)``.
    """
    lefts = [torch.einsum("oc,bcir->boicr", m, t.left).flatten(-2) for m, t in zip(mixers, terms)]
    rights = [t.right.flatten(1, 2) for t in terms]
    left, right = torch.cat(lefts, dim=-1), torch.cat(rights, dim=1)  # (B, C', n_s, K), (B, K, n_t)
    return torch.matmul(left, right.unsqueeze(1)).flatten(2)


class PolynomialTerms(nn.Module):
    """The path products, contractions and traces of one MAGEP layer, with their ψ and Ψ.

    ``terms(features)`` returns, for each output field name (``"W1"``, ``"b1"``, …, ``"bL"``),
    the list of inputs of that field's character in the folded field layout
    ``(B, C·fixed, *hidden axes)``.
    """

    def __init__(
        self, spec: WeightSpaceSpec, channels: int, learnable_contractions: bool = True, *, folded: str = "exact",
        folded_rank: int = DEFAULT_FOLDED_RANK,
    ) -> None:
        super().__init__()
        check_spec(spec, type(self).__name__)
        self.spec = spec
        self.channels = channels
        L = spec.num_layers
        n0, nL = spec.neuron_sizes[0], spec.neuron_sizes[-1]
        psi_keys = sorted({(s, s - 1) for s in range(1, L + 1)} | {(s, 0) for s in range(1, L + 1)})
        # Ψ acts on the fixed input and output indices only, so a low-rank Ψ_c = P Q_cᵀ (P shared by
        # the channels) keeps every symmetry; used when the layer factorises its folded blocks
        # (n_0·n_L per channel and path pair otherwise)
        #: R of the low-rank Ψ when the layer factorises (``folded``, as for HNP), else None
        self.contraction_rank = folded_rank if folded_mode(folded, max(n0, nL), folded_rank) else None
        contraction_rank = self.contraction_rank
        if contraction_rank is None:
            self.Psi = nn.ParameterDict(
                {f"{s}_{t}": nn.Parameter(torch.randn(channels, n0, nL) / math.sqrt(n0 * nL)) for s, t in psi_keys}
            )
        else:
            self.Psi = nn.ParameterDict()
            scale = (n0 * nL * contraction_rank) ** -0.25
            self.Psi_in = nn.ParameterDict(
                {f"{s}_{t}": nn.Parameter(torch.randn(n0, contraction_rank) * scale) for s, t in psi_keys}
            )
            self.Psi_out = nn.ParameterDict(
                {f"{s}_{t}": nn.Parameter(torch.randn(channels, nL, contraction_rank) * scale) for s, t in psi_keys}
            )
        self.psi = nn.ParameterDict(
            {
                f"{s}_{t}": nn.Parameter(torch.randn(channels, nL) / math.sqrt(nL))
                for s, t in sorted(set(psi_keys) | {(s, s) for s in range(1, L)})
            }
        )
        for p in self.parameters():
            p.requires_grad_(learnable_contractions)
        self.fields = fields_of(spec, range(1, L))

    def entries(self) -> dict[str, list[int]]:
        """Folded entries per channel of each input term of each output field (:meth:`terms`' layout)."""
        with torch.no_grad():
            return {k: [t.shape[1] // self.channels for t in v] for k, v in self.terms(self.spec.zeros(1, self.channels)).items()}

    def path_projections(self, entries: list[int]) -> tuple[nn.ModuleDict, list[int]]:
        """When factorising: each term folding ``n_L·n_0`` entries per channel keeps its ``n_L`` outputs
        and summarises each one's ``n_0`` inputs by R learned projections.

        Returns the projections (keyed by term index, for :func:`~nfkit.layers.folded.summarise`)
        and the terms' entries after them.
        """
        n0, nL = self.spec.neuron_sizes[0], self.spec.neuron_sizes[-1]
        rank = self.contraction_rank
        if rank is None or n0 <= rank:
            return nn.ModuleDict(), list(entries)
        chosen = [i for i, n in enumerate(entries) if n == n0 * nL]
        return (nn.ModuleDict({str(i): FoldedProjection(n0, rank) for i in chosen}),
                [nL * rank if i in chosen else n for i, n in enumerate(entries)])

    def contraction(self, key: str) -> torch.Tensor:
        """``Ψ`` for the path pair ``key = "s_t"``: ``(C, n_0, n_L)``."""
        if self.contraction_rank is None:
            return self.Psi[key]
        return torch.matmul(self.Psi_in[key], self.Psi_out[key].transpose(1, 2))

    def terms(self, features: WeightSpaceFeatures) -> dict[str, list[torch.Tensor]]:
        """Inputs of each output field, in field layout; see the module docstring for the lists."""
        return {k: [t.dense() if isinstance(t, LowRankTerm) else t for t in v] for k, v in self.factored_terms(features).items()}

    def factored_terms(self, features: WeightSpaceFeatures) -> dict[str, list[torch.Tensor | LowRankTerm]]:
        """:meth:`terms`, with the hidden-to-hidden fields' ``[bW]`` terms (rank 1) and, when ``n_L = 1``,
        their ``[WW]`` terms as :class:`LowRankTerm` s, for a layer that mixes them without forming them."""
        L = self.spec.num_layers
        raw = list(features.tensors())
        scale = invariant_scale(list(features.weights))  # (B, C)

        def over(t: torch.Tensor, power: int = 1) -> torch.Tensor:  # t / scale^power, per network and channel
            return t / scale.view(*scale.shape, *([1] * (t.dim() - 2))) ** power

        def hom(t: torch.Tensor) -> torch.Tensor:  # back to degree 1: multiply by the invariant scale
            return over(t, -1)

        # The terms are those of W / s and b / s. Every hidden-to-hidden product below has a thin factor
        # (n_0 columns or n_L rows), so 1/s is applied to that factor and never to a full n × n matrix
        # (the same values; on wide MLPs the full-size divisions and products were half of the time).
        W, bias = list(features.weights), list(features.biases)
        b = [over(v) for v in bias]

        def scaled_product(left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
            # (left / s) @ right or left @ (right / s), whichever operand is smaller: a path product is thin
            # on one side (n_0 columns, n_L rows), but n_0 is 784 on an MNIST MLP and a weight is the smaller
            if left.shape[-2] * left.shape[-1] <= right.shape[-2] * right.shape[-1]:
                return torch.matmul(over(left), right)
            return torch.matmul(left, over(right))

        prefix = [over(W[0])]  # W_(s,0) of the scaled weights, s = 1..L
        for w in W[1:]:
            prefix.append(scaled_product(w, prefix[-1]))
        suffix = [over(W[-1])]  # W_(L,t) of the scaled weights, t = L-1..0
        for w in reversed(W[:-1]):
            suffix.append(scaled_product(suffix[-1], w))
        suffix = suffix[::-1]  # suffix[t] = W_(L,t)
        propagated = [torch.zeros_like(b[0])]  # v_s, s = 1..L
        for s in range(1, L):
            propagated.append(torch.matmul(W[s], over(propagated[-1] + b[s - 1]).unsqueeze(-1)).squeeze(-1))

        def WW_factors(s: int, t: int) -> LowRankTerm:  # s · W_(s,0) Ψ W_(L,t), degree 1, rank n_L
            # s goes on W_(s,0) Ψ, n_s × n_L, and never on W_(s,0) itself (n_s × n_0)
            return LowRankTerm(hom(torch.matmul(prefix[s - 1], self.contraction(f"{s}_{t}"))), suffix[t])

        def bW_factors(s: int, t: int) -> LowRankTerm:  # s · b⁽ˢ⁾ (ψ W_(L,t)) = raw b⁽ˢ⁾ (ψ W_(L,t)), rank 1
            row = torch.einsum("cp,bcpt->bct", self.psi[f"{s}_{t}"], suffix[t])
            return LowRankTerm(bias[s - 1].unsqueeze(-1), row.unsqueeze(-2))

        def WW(s: int, t: int) -> torch.Tensor:  # (B, C, n_s, n_t)
            return WW_factors(s, t).dense()

        def bW(s: int, t: int) -> torch.Tensor:  # (B, C, n_s, n_t)
            return bW_factors(s, t).dense()

        field = {f.name: f.to_field(x) for f, x in zip(self.fields, raw)}
        inputs: dict[str, list[torch.Tensor | LowRankTerm]] = {}
        first: list[torch.Tensor | LowRankTerm] = [field["W1"], field["b1"], _rows_hidden(WW(1, 0)), _rows_hidden(bW(1, 0))]
        inputs["W1"] = inputs["b1"] = first
        for s in range(2, L + 1):
            if s < L:
                # left factored for the layer to mix: [bW] always, [WW] when its rank n_L is 1
                ww = WW_factors(s, s - 1)
                inputs[f"W{s}"] = [field[f"W{s}"], ww if ww.right.shape[2] == 1 else ww.dense(), bW_factors(s, s - 1)]
                inputs[f"b{s}"] = [
                    field[f"b{s}"],
                    _rows_hidden(hom(prefix[s - 1])),
                    _rows_hidden(WW(s, 0)),
                    hom(propagated[s - 1]),
                    _rows_hidden(bW(s, 0)),
                ]
            else:
                inputs[f"W{L}"] = [field[f"W{L}"], _cols_hidden(WW(L, L - 1)), _cols_hidden(bW(L, L - 1))]
        traces = [
            hom(torch.einsum("cp,bcpt,bct->bc", self.psi[f"{s}_{s}"], suffix[s], b[s - 1]).unsqueeze(-1))
            for s in range(1, L)
        ]
        inputs[f"b{L}"] = [
            field[f"b{L}"],
            hom(prefix[-1]).flatten(1),
            WW(L, 0).flatten(1),
            bW(L, 0).flatten(1),
            hom(propagated[-1]).flatten(1),
            *[t.flatten(1) for t in traces],
        ]
        return inputs
