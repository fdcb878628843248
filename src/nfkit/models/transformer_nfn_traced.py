"""Transformer-NFN on the attention blocks inside a traced network (:class:`~nfkit.spaces.attention_view.AttentionView`).

Every attention block (an ``nn.TransformerEncoderLayer``, or an ``nn.MultiheadAttention`` and the feed-forward
pair after it in a block written by hand) goes through its own Transformer-NFN trunk and invariant readout
(Tran et al., ICLR 2025, Sec. 4–5: :class:`~nfkit.layers.transformer_network.TransformerLinear`, GL-safe
activations, :class:`~nfkit.layers.transformer_network.TransformerReadout`); the other tensors (an
embedding, a stem, an MLP head) through the same channel map at every entry and UNF's invariant pool
(:class:`~nfkit.layers.UNFPool`, Zhou, Finn, Harrison 2024, ``permute_io=False``: the mean over each of the
rest's own sets, every fixed entry kept), which is how Transformer-NFN treats the embedding (flattened,
its output index being the fixed stream). UNF's full layers are not used there: with the stream fixed, an
embedding is one field of ``D·n_in`` fixed entries, and their mixers grow with its square (16 M
coefficients for a 28 → 32 embedding at 10 channels). The pooled parts are concatenated and read by an
MLP. Declared group: :meth:`AttentionView.group`, every layer's heads × ``GL(d_k)`` × ``GL(d_v)`` ×
feed-forward permutations, times the rest's own permutations.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import final

import torch
from torch import nn

from nfkit.layers.nft import ChannelLinear
from nfkit.layers.transformer_network import TransformerReadout, transformer_trunk
from nfkit.layers.unf import UNFPool
from nfkit.models.base import StackedInvariantModel, equivariant_stack
from nfkit.spaces.attention_view import AttentionView
from nfkit.spaces.transformer_features import TransformerFeatures
from nfkit.spaces.universal import UniversalSpec
from nfkit.spaces.universal_features import UniversalFeatures

__all__ = ["transformer_nfn_traced", "AttentionViewTrunk", "AttentionViewReadout"]

_Parts = tuple[list[TransformerFeatures], "UniversalFeatures | None"]


@final
class AttentionViewTrunk(nn.Module):
    """Split the features (:meth:`AttentionView.split`), then Transformer-NFN layers on each encoder layer and a
    channel MLP at every entry of the rest.

    Shapes:
        :class:`UniversalFeatures` with ``widths[0]`` channels → per layer :class:`TransformerFeatures` and the
        rest's :class:`UniversalFeatures`, each with ``widths[-1]`` channels.
    """

    def __init__(self, view: AttentionView, widths: Sequence[int], rank: int | None = None) -> None:
        super().__init__()
        self.view = view
        self.layers = nn.ModuleList(transformer_trunk(layer.spec, widths, rank) for layer in view.layers)
        self.rest = equivariant_stack(ChannelLinear, widths[0], widths[1:]) if view.rest is not None else None

    def forward(self, features: UniversalFeatures) -> _Parts:
        blocks, rest = self.view.split(features)
        out = [layer(b) for layer, b in zip(self.layers, blocks)]
        return out, (self.rest(rest) if self.rest is not None and rest is not None else None)


@final
class AttentionViewReadout(nn.Module):
    """Per encoder layer :class:`TransformerReadout` (without an embedding or head: those are in the rest), and
    :class:`UNFPool` of the rest, concatenated.

    Shapes:
        the trunk's parts with ``c`` channels → ``(B, num_outputs(c))``.
    """

    def __init__(self, view: AttentionView, in_channels: int, width: int, *, statistics: bool = False) -> None:
        super().__init__()
        readouts = [TransformerReadout(layer.spec, in_channels, width, statistics=statistics) for layer in view.layers]
        self.widths = [r.num_outputs(in_channels) for r in readouts]
        self.layers = nn.ModuleList(readouts)
        self.rest_pool = UNFPool(view.rest, permute_io=False) if view.rest is not None else None
        self.in_channels = in_channels

    def num_outputs(self, channels: int) -> int:
        """The readout width for the ``in_channels`` it was built for."""
        if channels != self.in_channels:
            raise ValueError(f"built for {self.in_channels} channels, not {channels}")
        rest = self.rest_pool.num_outputs(channels) if self.rest_pool is not None else 0
        return sum(self.widths) + rest

    def forward(self, parts: _Parts) -> torch.Tensor:
        blocks, rest = parts
        pooled = [layer(b) for layer, b in zip(self.layers, blocks)]
        if self.rest_pool is not None and rest is not None:
            pooled.append(self.rest_pool(rest))
        return torch.cat(pooled, dim=1)


def transformer_nfn_traced(
    spec: UniversalSpec,
    out_features: int,
    *,
    in_channels: int,
    hidden_channels: Sequence[int],
    invariant_width: int,
    head_hidden: Sequence[int],
    rank: int | None,
    dropout: float,
    statistics: bool,
) -> StackedInvariantModel:
    """Invariant Transformer-NFN on a traced network with encoder layers: features → ``(B, out_features)``.

    :func:`~nfkit.models.transformer_nfn.transformer_nfn` (``invariant("transformer-nfn", spec)``) calls it
    with its options and defaults; the rest of the network gets channel maps of the same widths.
    """
    view = AttentionView(spec)
    widths = [in_channels, *hidden_channels]
    return StackedInvariantModel.with_head(
        spec, view.group(), in_channels, out_features,
        trunk=AttentionViewTrunk(view, widths, rank), trunk_width=widths[-1],
        readout=AttentionViewReadout(view, widths[-1], invariant_width, statistics=statistics),
        head_hidden=head_hidden, head_dropout=dropout,
    )
