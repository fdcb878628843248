"""Perceiver pooling (Jaegle et al. 2021) over the set of weight entries, Inr2Array's latent array
(Zhou et al., "Neural Functional Transformers", NeurIPS 2023, Sec. 4).

Attention over a set does not see the order of its elements, so the latent array is invariant to
hidden-neuron permutations.
"""

from __future__ import annotations


import torch
from torch import nn

from nfkit.spaces.features import WeightSpaceFeatures
from nfkit.spaces.spec import WeightSpaceSpec

__all__ = ["PerceiverPooling"]


class PerceiverPooling(nn.Module):
    """K learned latents cross-attend to every entry of every tensor (a set): ``(B, K, d)``.

    Shapes:
        features with ``channels`` channels → ``(B, latents, channels)``.
    """

    def __init__(self, spec: WeightSpaceSpec, channels: int, latents: int = 16, heads: int = 4) -> None:
        super().__init__()
        heads = heads if channels % heads == 0 else 1
        self.latents = nn.Parameter(torch.randn(latents, channels) * 0.1)
        self.kind = nn.Parameter(torch.randn(2 * spec.num_layers, channels) * 0.1)  # which tensor an entry is in
        self.attention = nn.MultiheadAttention(channels, heads, batch_first=True)
        self.norm = nn.LayerNorm(channels)

    def forward(self, features: WeightSpaceFeatures) -> torch.Tensor:
        tokens = [t.flatten(2).transpose(1, 2) + self.kind[k] for k, t in enumerate(features.tensors())]
        keys = self.norm(torch.cat(tokens, dim=1))  # (B, entries, c)
        queries = self.latents.expand(features.batch_size, -1, -1)
        out, _ = self.attention(queries, keys, keys, need_weights=False)
        return out + queries
