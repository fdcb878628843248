"""NFT: weight-space self-attention (Zhou et al., "Neural Functional Transformers", NeurIPS 2023, Sec. 3).

Per layer, queries, keys and values come from a linear map of each entry's channels (for conv
weights, channels × kernel entries: ``c·f_i → 3c``), split into h heads of ``d = c/h``. Two terms:

* **global**: the 2L tokens ``mean(W⁽ⁱ⁾)``, ``mean(b⁽ⁱ⁾)`` attend to each other; each output is
  broadcast to every entry of its tensor;
* **cross**, for each neuron layer ℓ = 0..L: the tokens are the columns of ``W⁽ℓ⁾`` (one per neuron
  of layer ℓ−1), the bias ``b⁽ℓ⁾`` (one token) and the rows of ``W⁽ℓ⁺¹⁾`` (one per neuron of layer
  ℓ+1), each a vector over the n_ℓ neurons of layer ℓ, flattened with the head's d features, so
  ``q·k`` sums over layer ℓ's neurons (scaled by ``1/√(d·n_ℓ)``). Outputs go back where the tokens
  came from, so every weight receives two cross terms and the global one.

Summing over a layer's neurons makes the dot products invariant to its permutations, and
attention is equivariant to permutations of the tokens (the neighbouring layers): the layer is
equivariant to permutations of every neuron layer. A per-layer output map ``c → c·f_i`` returns
kernel entries. Attention is ``F.scaled_dot_product_attention`` (dropout on the probabilities).
"""

from __future__ import annotations

from typing import final

import torch
import torch.nn.functional as F
from torch import nn

from nfkit.layers.pointwise import ChannelNorm
from nfkit.layers.recompute import check_recompute, recomputed_in_chunks
from nfkit.spaces.features import WeightSpaceFeatures
from nfkit.spaces.spec import WeightSpaceSpec

__all__ = ["ChannelLinear", "NFTAttention", "NFTBlock", "IOEmbedding"]


@final
class ChannelLinear(nn.Module):
    """The same linear map of the channel vector at every entry of every tensor.

    Shapes:
        features with C channels → features with C' channels.
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.linear = nn.Linear(in_channels, out_channels)

    def forward(self, features: WeightSpaceFeatures) -> WeightSpaceFeatures:
        return features.map(lambda t: self.linear(t.movedim(1, -1)).movedim(-1, 1))


@final
class NFTAttention(nn.Module):
    """NFT weight-space self-attention (see the module docstring).

    Shapes:
        features with ``channels`` channels → the same.
    """

    def __init__(self, spec: WeightSpaceSpec, channels: int, heads: int = 4, dropout: float = 0.0) -> None:
        super().__init__()
        if channels % heads:
            raise ValueError(f"channels ({channels}) must be divisible by heads ({heads})")
        self.spec = spec
        self.channels = channels
        self.heads = heads
        self.dropout = dropout
        self.project_weight = nn.ModuleList(nn.Linear(channels * l.kernel_numel, 3 * channels) for l in spec.layers)
        self.project_bias = nn.ModuleList(nn.Linear(channels, 3 * channels) for _ in spec.layers)
        self.unproject_weight = nn.ModuleList(nn.Linear(channels, channels * l.kernel_numel) for l in spec.layers)
        self.unproject_bias = nn.ModuleList(nn.Linear(channels, channels) for _ in spec.layers)

    def _split(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        # (B, *entries, 3c) → three (B, h, d, *entries)
        q, k, v = x.chunk(3, dim=-1)
        def heads(t: torch.Tensor) -> torch.Tensor:
            t = t.reshape(*t.shape[:-1], self.heads, self.channels // self.heads)
            return t.movedim(-2, 1).movedim(-1, 2)
        return heads(q), heads(k), heads(v)

    def _attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return F.scaled_dot_product_attention(q, k, v, dropout_p=self.dropout if self.training else 0.0)

    def forward(self, features: WeightSpaceFeatures) -> WeightSpaceFeatures:
        L = self.spec.num_layers
        qw, kw, vw, qb, kb, vb = [], [], [], [], [], []
        for i, (w, b) in enumerate(zip(features.weights, features.biases)):
            per_entry = w.movedim(1, -1).flatten(3) if w.dim() > 4 else w.movedim(1, -1)  # (B, n, m, c·f)
            q, k, v = self._split(self.project_weight[i](per_entry))  # (B, h, d, n_i, n_{i-1})
            qw.append(q)
            kw.append(k)
            vw.append(v)
            q, k, v = self._split(self.project_bias[i](b.movedim(1, -1)))  # (B, h, d, n_i)
            qb.append(q)
            kb.append(k)
            vb.append(v)
        out_w = [torch.zeros_like(v) for v in vw]
        out_b = [torch.zeros_like(v) for v in vb]
        # global term: attention among the 2L per-tensor mean tokens
        tokens = [torch.stack([t.mean(dim=(3, 4)) for t in tw] + [t.mean(dim=3) for t in tb], dim=2)
                  for tw, tb in ((qw, qb), (kw, kb), (vw, vb))]  # (B, h, 2L, d)
        summary = self._attend(*tokens)
        for i in range(L):
            out_w[i] = out_w[i] + summary[:, :, i, :, None, None]
            out_b[i] = out_b[i] + summary[:, :, L + i, :, None]
        # cross term per neuron layer ℓ: tokens are vectors over its n_ℓ neurons
        for ell in range(L + 1):
            parts = []
            if ell >= 1:  # columns of W⁽ℓ⁾ and the bias b⁽ℓ⁾
                parts.append(("col", ell - 1))
                parts.append(("bias", ell - 1))
            if ell <= L - 1:  # rows of W⁽ℓ⁺¹⁾
                parts.append(("row", ell))
            def gather(tw: list[torch.Tensor], tb: list[torch.Tensor]) -> torch.Tensor:
                chunks = []
                for kind, i in parts:
                    if kind == "col":  # (B, h, d, n_ℓ, n_{ℓ-1}) → (B, h, n_{ℓ-1}, d·n_ℓ)
                        chunks.append(tw[i].permute(0, 1, 4, 2, 3).flatten(3))
                    elif kind == "bias":
                        chunks.append(tb[i].flatten(2).unsqueeze(2))
                    else:  # (B, h, d, n_{ℓ+1}, n_ℓ) → (B, h, n_{ℓ+1}, d·n_ℓ)
                        chunks.append(tw[i].permute(0, 1, 3, 2, 4).flatten(3))
                return torch.cat(chunks, dim=2)
            out = self._attend(gather(qw, qb), gather(kw, kb), gather(vw, vb))
            start = 0
            for kind, i in parts:
                batch, h, d = vw[i].shape[:3]
                if kind == "col":
                    n, m = vw[i].shape[3:]
                    out_w[i] = out_w[i] + out[:, :, start : start + m].reshape(batch, h, m, d, n).permute(0, 1, 3, 4, 2)
                    start += m
                elif kind == "bias":
                    out_b[i] = out_b[i] + out[:, :, start].reshape(batch, h, d, -1)
                    start += 1
                else:
                    n, m = vw[i].shape[3:]
                    out_w[i] = out_w[i] + out[:, :, start : start + n].reshape(batch, h, n, d, m).permute(0, 1, 3, 2, 4)
                    start += n
        weights, biases = [], []
        for i, layer in enumerate(self.spec.layers):
            merged = out_w[i].flatten(1, 2).movedim(1, -1)  # (B, n, m, c)
            w = self.unproject_weight[i](merged).reshape(*merged.shape[:3], self.channels, *layer.kernel)
            weights.append(w.movedim(3, 1))
            biases.append(self.unproject_bias[i](out_b[i].flatten(1, 2).movedim(1, -1)).movedim(-1, 1))
        return features.with_tensors(weights, biases)


@final
class NFTBlock(nn.Module):
    """Pre-norm transformer block on weight-space features (Zhou et al. 2023)::

        x ← x + Dropout(NFTAttention(ChannelNorm(x)))
        x ← x + Dropout(Pointwise(c → 4c) → GELU → Pointwise(4c → c))(ChannelNorm(x))

    ``recompute`` networks at a time (default 8; 0 turns it off): each branch keeps only its input
    for backward and runs again there, on that many networks of the batch at once (activation
    checkpointing per batch chunk; the networks of a batch never interact, and the dropout masks are
    replayed, so the gradients are those of the plain block). Attention holds about 17 copies of its
    input and the feed-forward branch about 16 at the peak of its backward; recomputed, a block keeps
    2 and one chunk's branch adds its share. On a SIREN batch of 32 at 32 channels, two blocks peak
    at 256 MiB plain and at 44.7 MiB recomputed (NP: 24.5 MiB), for 1.45× the time (2 cores).

    Shapes:
        features with ``channels`` channels → the same.
    """

    def __init__(self, spec: WeightSpaceSpec, channels: int, heads: int = 4, dropout: float = 0.0, ff_mult: int = 4,
                 recompute: int = 8) -> None:
        super().__init__()
        self.norm1 = ChannelNorm(channels)
        self.attention = NFTAttention(spec, channels, heads, dropout)
        self.norm2 = ChannelNorm(channels)
        self.up = ChannelLinear(channels, ff_mult * channels)
        self.down = ChannelLinear(ff_mult * channels, channels)
        self.dropout = nn.Dropout(dropout)
        self.recompute = check_recompute(recompute)

    def _attention_branch(self, x: WeightSpaceFeatures) -> WeightSpaceFeatures:
        return self.attention(self.norm1(x)).map(self.dropout)

    def _feedforward_branch(self, x: WeightSpaceFeatures) -> WeightSpaceFeatures:
        return self.down(self.up(self.norm2(x)).map(F.gelu)).map(self.dropout)

    def forward(self, features: WeightSpaceFeatures) -> WeightSpaceFeatures:
        x = features + recomputed_in_chunks(self._attention_branch, features, self.recompute)
        return x + recomputed_in_chunks(self._feedforward_branch, x, self.recompute)


class IOEmbedding(nn.Module):
    """Adds a learned vector per input neuron (to ``W⁽¹⁾[:, :, :, k]``) and per output neuron (to ``W⁽ᴸ⁾[:, :, p]``, ``b⁽ᴸ⁾[:, :, p]``).

    Only fixed neurons get embeddings, so hidden-neuron permutation equivariance is kept.

    Shapes:
        features with C channels → the same.
    """

    def __init__(self, spec: WeightSpaceSpec, channels: int) -> None:
        super().__init__()
        self.spec = spec
        self.inputs = nn.Parameter(torch.randn(channels, spec.neuron_sizes[0]) * 0.1)
        self.outputs = nn.Parameter(torch.randn(channels, spec.neuron_sizes[-1]) * 0.1)

    def forward(self, features: WeightSpaceFeatures) -> WeightSpaceFeatures:
        weights, biases = list(features.weights), list(features.biases)
        first_kernel = (1,) * (weights[0].dim() - 4)
        weights[0] = weights[0] + self.inputs.view(1, -1, 1, self.inputs.shape[1], *first_kernel)
        last_kernel = (1,) * (weights[-1].dim() - 4)
        weights[-1] = weights[-1] + self.outputs.view(1, -1, self.outputs.shape[1], 1, *last_kernel)
        biases[-1] = biases[-1] + self.outputs.unsqueeze(0)
        return features.with_tensors(weights, biases)
