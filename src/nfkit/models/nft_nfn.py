"""The ``"nft"`` family: Neural Functional Transformers (Zhou et al., NeurIPS 2023).

Invariant form::

    ChannelLinear(in → c) + input/output positional embeddings → [NFTBlock] × len(hidden_channels)
    → ChannelNorm → HNPPool → MLP head

Equivariant form::

    … → [NFTBlock] × len(hidden_channels) → ChannelNorm → ChannelLinear(c → out_channels)

``c = hidden_channels[0]`` (residual blocks share one width). NFT attention is equivariant to
permutations of every neuron layer; learned embeddings of the input neurons (added along
``W⁽¹⁾``'s input index) and of the output neurons (along ``W⁽ᴸ⁾``'s output index and ``b⁽ᴸ⁾``) let
the model tell them apart, the paper's IO encoding. Declared group: hidden-neuron permutations.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from nfkit.groups.neurons import permutations
from nfkit.layers.hnp import HNPPool
from nfkit.layers.nft import ChannelLinear, NFTBlock
from nfkit.layers.pointwise import ChannelNorm
from nfkit.models.base import StackedEquivariantModel, StackedInvariantModel, mlp_head
from nfkit.models.registry import ModelFamily, register
from nfkit.spaces.features import WeightSpaceFeatures
from nfkit.spaces.spec import WeightSpaceSpec

__all__ = ["nft_invariant", "nft_equivariant", "IOEmbedding"]


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


def _trunk(spec: WeightSpaceSpec, in_channels: int, hidden_channels: Sequence[int], heads: int, dropout: float) -> nn.Sequential:
    if not hidden_channels:
        raise ValueError("nft needs at least one block (a hidden width)")
    width = hidden_channels[0]
    heads = heads if width % heads == 0 else 1
    blocks = [NFTBlock(spec, width, heads, dropout) for _ in hidden_channels]
    return nn.Sequential(ChannelLinear(in_channels, width), IOEmbedding(spec, width), *blocks, ChannelNorm(width))


def nft_invariant(
    spec: WeightSpaceSpec,
    out_features: int = 1,
    *,
    in_channels: int = 1,
    hidden_channels: Sequence[int] = (32, 32),
    heads: int = 4,
    dropout: float = 0.0,
    head_hidden: Sequence[int] = (256, 256),
    head_dropout: float = 0.0,
) -> StackedInvariantModel:
    """NFT invariant model: features → ``(B, out_features)``."""
    pool = HNPPool(spec)
    return StackedInvariantModel(
        spec, permutations(spec.hidden_sizes), in_channels, out_features,
        trunk=_trunk(spec, in_channels, hidden_channels, heads, dropout), readout=pool,
        head=mlp_head(pool.num_outputs(hidden_channels[0]), head_hidden, out_features, head_dropout),
    )


def nft_equivariant(
    spec: WeightSpaceSpec,
    out_channels: int = 1,
    *,
    in_channels: int = 1,
    hidden_channels: Sequence[int] = (32, 32),
    heads: int = 4,
    dropout: float = 0.0,
) -> StackedEquivariantModel:
    """NFT equivariant model: features → features with ``out_channels`` channels."""
    return StackedEquivariantModel(
        spec, permutations(spec.hidden_sizes), in_channels, out_channels,
        trunk=_trunk(spec, in_channels, hidden_channels, heads, dropout),
        readout=ChannelLinear(hidden_channels[0], out_channels),
    )


register(
    ModelFamily(
        "nft",
        "Neural Functional Transformer: weight-space self-attention blocks (Zhou et al. 2023)",
        invariant=nft_invariant,
        equivariant=nft_equivariant,
    )
)
