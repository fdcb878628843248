"""Transformer-NFN layers (Tran et al., "Equivariant Neural Functional Networks for Transformers",
ICLR 2025, arXiv 2410.04209, Sec. 4: the equivariant layer ``E`` and invariant layer ``I``).

Per block, with input channels ``c`` and output channels ``e``. Biases of the attention are
folded in as an extra input row (``W̃_Q = [W_Q; b_Q] ∈ ℝ^{(D+1)×d_k}``, the input "1"), which
keeps every formula of the bias-free paper and its equivariance. The GL-invariant quadratic
summaries are (averaged over heads and the inner index, so their scale does not grow with h)

    [QK] = mean_{i,k} W̃_Q⁽ⁱ⁾ W̃_K⁽ⁱ⁾ᵀ ∈ ℝ^{(D+1)×(D+1)},    [VO] = mean_{i,k} W̃_V⁽ⁱ⁾ W_O⁽ⁱ⁾ ∈ ℝ^{(D+1)×D}.

The equivariant layer (paper Eq. for E(W_Q), E(W_K), E(W_V), E(W_O), E(W_A) … E(b_B)):

* ``W̃_Q, W̃_K, W̃_V``: left multiplication by a learned ``(D+1)×(D+1)`` matrix per channel pair,
  shared over heads (GL acts on the right, heads are permuted: both commute with it);
* ``W_O``: a channel mix per entry plus one of its column means (DeepSets over the D index,
  which the group may permute); ``b_O`` likewise, plus a constant;
* the feed-forward weights: the complete permutation-equivariant basis of the dense weight space
  ``D → d_ff → D`` (:class:`~nfkit.layers.PermutationEquivariantLinear`; the D input index is
  permuted only where the block is :attr:`~nfkit.spaces.AttentionBlockSpec.stream_permutable`), which
  is the paper's 13/10/10/7-term sums; plus the attention's contributions: global linear functions
  of ``[QK]`` and the row sums of ``[VO]`` on all four tensors, ``Σ_p Φ_p [VO]_{p j}`` on the
  input index j of W_A, and a fixed-index map ``Φ_{k p q} [QK]_{p q}`` (+ ``Φ_{k p} Σ_q [VO]_{pq}``)
  on the output index k of W_B and b_B.

That fixed-index map holds ``2·e·c·D·(D+1)²`` coefficients, the D³ term that dominates the
reference layer's memory. ``rank=r`` factorises it as ``Φ_{kpq} = Σ_{a,b} U_{pa} V_{qb} C_{kab}``
(Tucker, ``2·c·(D+1)·r + 2·e·c·D·r²`` coefficients): at D = 32, c = e = 10 that is 6.97 M
against 0.41 M for r = 8 and 0.11 M for r = 4. The factorised layer is still exactly equivariant; it spans a smaller
set of maps.
"""

from __future__ import annotations

import math
from typing import final

import torch
from torch import nn

from nfkit.layers.permutation_basis import PermutationEquivariantLinear, PermutationInvariantPool
from nfkit.spaces.features import WeightSpaceFeatures
from nfkit.spaces.spec import WeightSpaceSpec
from nfkit.spaces.transformer_spec import AttentionBlockSpec

__all__ = ["AttentionBlockLinear", "AttentionBlockInvariant", "quadratic_summaries", "head_products", "ffn_features"]


def _uniform(shape: tuple[int, ...], fan_in: int) -> nn.Parameter:
    bound = 1.0 / math.sqrt(fan_in)
    return nn.Parameter(torch.empty(shape).uniform_(-bound, bound))


def _augmented(t: dict[str, torch.Tensor], name: str) -> torch.Tensor:
    """``(B, C, h, D, d)`` and bias ``(B, C, h, d)`` → ``(B, C, h, D+1, d)``."""
    return torch.cat([t[name], t[f"{name}_bias"].unsqueeze(3)], dim=3)


def quadratic_summaries(t: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """The GL- and head-invariant ``[QK]`` ``(B, C, D+1, D+1)`` and ``[VO]`` ``(B, C, D+1, D)``."""
    qk, vo = head_products(t)
    dk, dv = t["query"].shape[-1], t["value"].shape[-1]
    return qk.mean(2) / dk, vo.mean(2) / dv


def head_products(t: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Per head, the GL-invariant ``W̃_Q⁽ⁱ⁾W̃_K⁽ⁱ⁾ᵀ`` ``(B, C, h, D+1, D+1)`` and ``W̃_V⁽ⁱ⁾W_O⁽ⁱ⁾`` ``(B, C, h, D+1, D)``.

    Head permutations reorder axis 2; GL(d_k) and GL(d_v) leave both unchanged (paper Sec. 3).
    """
    q, k, v, o = _augmented(t, "query"), _augmented(t, "key"), _augmented(t, "value"), t["output"]
    return torch.einsum("bchpk,bchqk->bchpq", q, k), torch.einsum("bchpk,bchkq->bchpq", v, o)


def ffn_features(ffn_spec: WeightSpaceSpec, t: dict[str, torch.Tensor]) -> WeightSpaceFeatures:
    """The feed-forward tensors as features of the dense weight space ``D → d_ff → D`` (``block.ffn_spec()``)."""
    return WeightSpaceFeatures(ffn_spec, [t["ffn_in"], t["ffn_out"]], [t["ffn_in_bias"], t["ffn_out_bias"]])


def _ffn_permuted(block: AttentionBlockSpec) -> set[int]:
    return {0, 1} if block.stream_permutable else {1}


@final
class AttentionBlockLinear(nn.Module):
    """The Transformer-NFN equivariant layer of one block (see the module docstring).

    Args:
        block: the block's spec.
        in_channels, out_channels: c → e.
        rank: ``None`` for the paper's full fixed-index map, or the Tucker rank of its factorised form.

    Shapes:
        every tensor of :meth:`AttentionBlockSpec.tensor_shapes` ``(B, c, *shape) → (B, e, *shape)``.
    """

    def __init__(self, block: AttentionBlockSpec, in_channels: int, out_channels: int, *, rank: int | None = None) -> None:
        super().__init__()
        self.block, self.rank = block, rank
        c, e, d = in_channels, out_channels, block.d_model
        dp = d + 1
        self.in_channels, self.out_channels = c, e
        self.left = nn.ParameterDict({n: _uniform((e, c, dp, dp), c * dp) for n in ("query", "key", "value")})
        self.output_point, self.output_mean = _uniform((e, c), 2 * c), _uniform((e, c), 2 * c)
        self.output_bias_point, self.output_bias_mean = _uniform((e, c), 2 * c), _uniform((e, c), 2 * c)
        self.output_bias_constant = _uniform((e,), 2 * c)
        self.norms = 4 if block.norm_affine else 0
        if self.norms:
            self.norm_mix, self.norm_constant = _uniform((4 * e, 4 * c), 4 * c), _uniform((4 * e,), 4 * c)
        self.ffn = PermutationEquivariantLinear(block.ffn_spec(), c, e, permuted=_ffn_permuted(block))
        summary = c * (dp * dp + dp + 1 + self.norms * d)
        self.global_terms = nn.Linear(summary, 4 * e, bias=False)  # one scalar per FFN tensor and channel
        self.stream_terms = _uniform((e, c, dp), c * dp)
        if rank is None:
            self.fixed_quadratic = _uniform((2, e, c, d, dp, dp), c * dp * dp)
        else:
            self.fixed_left, self.fixed_right = _uniform((c, dp, rank), dp), _uniform((c, dp, rank), dp)
            self.fixed_core = _uniform((2, e, c, d, rank, rank), c * rank * rank)
        self.fixed_rows = _uniform((2, e, c, d, dp), c * dp)

    def forward(self, t: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        d, b = self.block.d_model, t["query"].shape[0]
        out: dict[str, torch.Tensor] = {}
        for name in ("query", "key", "value"):
            mixed = torch.einsum("ecjp,bchpk->behjk", self.left[name], _augmented(t, name))
            out[name], out[f"{name}_bias"] = mixed[:, :, :, :d], mixed[:, :, :, d]
        o, bo = t["output"], t["output_bias"]
        out["output"] = torch.einsum("ec,bchkq->behkq", self.output_point, o) + torch.einsum(
            "ec,bchk->behk", self.output_mean, o.mean(-1)
        ).unsqueeze(-1)
        out["output_bias"] = (
            torch.einsum("ec,bcq->beq", self.output_bias_point, bo)
            + torch.einsum("ec,bc->be", self.output_bias_mean, bo.mean(-1)).unsqueeze(-1)
            + self.output_bias_constant.view(1, -1, 1)
        )
        qk, vo = quadratic_summaries(t)
        vo_rows = vo.mean(-1)  # (B, c, D+1): invariant under the permuted column index
        parts = [qk.flatten(1), vo_rows.flatten(1), bo.mean(-1)]
        if self.norms:
            norms = torch.stack([t[n] for n in ("norm1_weight", "norm1_bias", "norm2_weight", "norm2_bias")], dim=2)
            parts.append(norms.flatten(1))
            mixed = torch.einsum("fg,bgq->bfq", self.norm_mix, norms.flatten(1, 2)) + self.norm_constant.view(1, -1, 1)
            for k, n in enumerate(("norm1_weight", "norm1_bias", "norm2_weight", "norm2_bias")):
                out[n] = mixed.view(b, self.out_channels, 4, d)[:, :, k]
        g = self.global_terms(torch.cat(parts, dim=1)).view(b, 4, self.out_channels)
        if self.rank is None:
            fixed = torch.einsum("tecKpq,bcpq->tbeK", self.fixed_quadratic, qk)
        else:
            core = torch.einsum("cpa,bcpq,cqr->bcar", self.fixed_left, qk, self.fixed_right)
            fixed = torch.einsum("tecKar,bcar->tbeK", self.fixed_core, core)
        fixed = fixed + torch.einsum("tecKp,bcp->tbeK", self.fixed_rows, vo_rows)
        stream = torch.einsum("ecp,bcpj->bej", self.stream_terms, vo)  # (B, e, D) on W_A's input index
        ffn = self.ffn(ffn_features(self.ffn.spec, t))
        out["ffn_in"] = ffn.weights[0] + g[:, 0, :, None, None] + stream.unsqueeze(2)
        out["ffn_in_bias"] = ffn.biases[0] + g[:, 1, :, None]
        out["ffn_out"] = ffn.weights[1] + g[:, 2, :, None, None] + fixed[0].unsqueeze(-1)
        out["ffn_out_bias"] = ffn.biases[1] + g[:, 3, :, None] + fixed[1]
        return out

    def extra_repr(self) -> str:
        form = "full" if self.rank is None else f"rank {self.rank}"
        return f"{self.in_channels}→{self.out_channels}, {form} fixed-index map"


@final
class AttentionBlockInvariant(nn.Module):
    """The Transformer-NFN invariant layer of one block (paper Sec. 4.2, ``I``), then a LayerNorm.

    ``I = Φ·vec[QK] + Φ·(row sums of [VO]) + Φ·(FFN pools) + …``: a linear map of every invariant
    the block offers. Where the D index between attention and FFN is not permuted, [VO] and
    ``b_O`` enter whole rather than as sums; LayerNorm parameters enter whole. Beyond the paper,
    second moments (mean squares of [QK], [VO] and of each FFN field over its permuted axes)
    enter too: they are as invariant as the means, and carry the weight norms that StatNN's
    statistics show to be predictive.

    Shapes:
        block tensors ``(B, c, *shape)`` → ``(B, out_features)``.
    """

    def __init__(self, block: AttentionBlockSpec, in_channels: int, out_features: int) -> None:
        super().__init__()
        self.block = block
        c, d = in_channels, block.d_model
        self.pool = PermutationInvariantPool(block.ffn_spec(), _ffn_permuted(block))
        whole = 0 if block.stream_permutable else d - 1  # [VO] rows and b_O: sums or whole
        width = c * (d + 1) ** 2 + c * (d + 1) * (1 + whole) + c * (1 + whole) + (4 * c * d if block.norm_affine else 0)
        width += 2 * c + self.pool.num_outputs(c)  # second moments: mean squares of [QK], [VO] and the FFN fields
        self.linear = nn.Linear(width + self.pool.num_outputs(c), out_features)
        self.norm = nn.LayerNorm(out_features)

    def forward(self, t: dict[str, torch.Tensor]) -> torch.Tensor:
        qk, vo = quadratic_summaries(t)
        bo = t["output_bias"]
        if self.block.stream_permutable:
            vo, bo = vo.mean(-1, keepdim=True), bo.mean(-1, keepdim=True)
        parts = [qk.flatten(1), vo.flatten(1), bo.flatten(1), qk.square().mean((2, 3)), vo.square().mean((2, 3))]
        if self.block.norm_affine:
            parts += [t[n].flatten(1) for n in ("norm1_weight", "norm1_bias", "norm2_weight", "norm2_bias")]
        ffn = ffn_features(self.pool.spec, t)
        parts += [self.pool(ffn), self.pool(ffn.map(torch.square))]
        return self.norm(self.linear(torch.cat(parts, dim=1)))














