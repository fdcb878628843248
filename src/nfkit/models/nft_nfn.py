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

from torch import nn

from nfkit.groups.base import Group
from nfkit.groups.neurons import permutations
from nfkit.layers.canonical import with_canonical_front
from nfkit.layers.hnp import HNPPool
from nfkit.layers.nft import ChannelLinear, IOEmbedding, NFTBlock
from nfkit.layers.pointwise import ChannelNorm
from nfkit.models.base import StackedEquivariantModel, StackedInvariantModel
from nfkit.models.registry import ModelFamily, register
from nfkit.spaces.spec import WeightSpaceSpec

__all__ = ["nft_invariant", "nft_equivariant", "nft_trunk"]




def nft_trunk(spec: WeightSpaceSpec, in_channels: int, hidden_channels: Sequence[int], heads: int, dropout: float,
              recompute: int = 8) -> nn.Sequential:
    """``ChannelLinear → IOEmbedding → NFTBlock × len(hidden_channels) → ChannelNorm`` at width ``hidden_channels[0]``.

    ``recompute``: networks per recomputed chunk in backward (:class:`~nfkit.layers.nft.NFTBlock`; 0: off).
    """
    if not hidden_channels:
        raise ValueError("nft needs at least one block (a hidden width)")
    width = hidden_channels[0]
    heads = heads if width % heads == 0 else 1
    blocks = [NFTBlock(spec, width, heads, dropout, recompute=recompute) for _ in hidden_channels]
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
    canonical: bool = False,
    recompute: int = 8,
) -> StackedInvariantModel:
    """NFT invariant model: features → ``(B, out_features)``.

    ``canonical=True``: a :class:`~nfkit.layers.canonical.Canonicalization` front first, so that the
    model is invariant to the network's scalings or sign flips as well. ``recompute``: networks per
    recomputed chunk in backward (activation checkpointing, same gradients; 0: off).
    """
    group: Group = permutations(spec.hidden_sizes)
    trunk: nn.Module = nft_trunk(spec, in_channels, hidden_channels, heads, dropout, recompute)
    if canonical:
        group, trunk = with_canonical_front(spec, group, trunk)
    return StackedInvariantModel.with_head(
        spec, group, in_channels, out_features, trunk=trunk, trunk_width=hidden_channels[0],
        readout=HNPPool(spec), head_hidden=head_hidden, head_dropout=head_dropout,
    )


def nft_equivariant(
    spec: WeightSpaceSpec,
    out_channels: int = 1,
    *,
    in_channels: int = 1,
    hidden_channels: Sequence[int] = (32, 32),
    heads: int = 4,
    dropout: float = 0.0,
    recompute: int = 8,
) -> StackedEquivariantModel:
    """NFT equivariant model: features → features with ``out_channels`` channels (``recompute`` as in :func:`nft_invariant`)."""
    return StackedEquivariantModel(
        spec, permutations(spec.hidden_sizes), in_channels, out_channels,
        trunk=nft_trunk(spec, in_channels, hidden_channels, heads, dropout, recompute),
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
