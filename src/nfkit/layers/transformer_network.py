"""Transformer-NFN layers on a whole transformer (Tran et al., ICLR 2025, Sec. 4–5): every block, the
embedding and the classifier head together, the GL-safe activation, and the invariant readout.

The per-block maps (:class:`~nfkit.layers.transformer_nfn.AttentionBlockLinear`,
:class:`~nfkit.layers.transformer_nfn.AttentionBlockInvariant`) live in :mod:`nfkit.layers.transformer_nfn`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import final

import torch
from torch import nn

from nfkit.layers.nft import ChannelLinear
from nfkit.layers.permutation_basis import PermutationEquivariantLinear, PermutationInvariantPool
from nfkit.layers.statistics import entry_statistics
from nfkit.layers.transformer_nfn import AttentionBlockInvariant, AttentionBlockLinear, head_products
from nfkit.spaces.features import cat_channels
from nfkit.spaces.spec import WeightSpaceSpec
from nfkit.spaces.transformer_features import TransformerFeatures
from nfkit.spaces.transformer_spec import TransformerSpec

__all__ = ["GL_TENSORS", "TransformerLinear", "GLSafeActivation", "transformer_trunk", "InvariantStatistics", "TransformerReadout",
           "WithInput"]

#: Tensors the GL factors act on linearly (an entrywise nonlinearity there would break equivariance).
#: Tensors the GL factors act on linearly (an entrywise nonlinearity there would break equivariance).
GL_TENSORS = frozenset({"query", "key", "value", "output", "query_bias", "key_bias", "value_bias"})


def _hidden(spec: WeightSpaceSpec) -> range:
    return range(1, spec.num_layers)


@final
class TransformerLinear(nn.Module):
    """One equivariant layer on a whole transformer: every block, the embedding and the head.

    Blocks: :class:`AttentionBlockLinear`; embedding (fixed indices): a channel mix per entry;
    head: the HNP basis (hidden neurons permuted).

    Shapes:
        :class:`TransformerFeatures` with c channels → the same spec with e channels.
    """

    def __init__(self, spec: TransformerSpec, in_channels: int, out_channels: int, *, rank: int | None = None) -> None:
        super().__init__()
        self.spec = spec
        self.blocks = nn.ModuleList(AttentionBlockLinear(b, in_channels, out_channels, rank=rank) for b in spec.blocks)
        self.embedding = ChannelLinear(in_channels, out_channels) if spec.embedding is not None else None
        self.head = (
            PermutationEquivariantLinear(spec.head, in_channels, out_channels, permuted=_hidden(spec.head))
            if spec.head is not None
            else None
        )

    def forward(self, features: TransformerFeatures) -> TransformerFeatures:
        blocks = [layer(t) for layer, t in zip(self.blocks, features.blocks)]
        embedding = self.embedding(features.embedding) if self.embedding is not None else None
        head = self.head(features.head) if self.head is not None else None
        return TransformerFeatures.assemble(self.spec, blocks, embedding, head)


@final
class GLSafeActivation(nn.Module):
    """An entrywise nonlinearity on every tensor except those GL acts on (W_Q, W_K, W_V, W_O and their biases).

    Shapes: unchanged.
    """

    def __init__(self, activation: nn.Module | None = None) -> None:
        super().__init__()
        self.activation = activation if activation is not None else nn.ReLU()

    def forward(self, features: TransformerFeatures) -> TransformerFeatures:
        named = {
            k: v if k.rsplit(".", 1)[-1] in GL_TENSORS and k.startswith("blocks.") else self.activation(v)
            for k, v in features.named.items()
        }
        return TransformerFeatures(features.spec, named)


def transformer_trunk(spec: TransformerSpec, widths: Sequence[int], rank: int | None = None) -> nn.Sequential:
    """``[TransformerLinear → GLSafeActivation]`` for each consecutive pair of ``widths``: Transformer-NFN's
    equivariant stack.

    Shapes:
        :class:`TransformerFeatures` with ``widths[0]`` channels → the same spec with ``widths[-1]`` channels.
    """
    layers: list[nn.Module] = []
    for c, e in zip(widths, widths[1:]):
        layers += [TransformerLinear(spec, c, e, rank=rank), GLSafeActivation()]
    return nn.Sequential(*layers)


@final
class InvariantStatistics(nn.Module):
    """StatNN's statistics (Unterthiner et al. 2020) of the fields the group leaves meaningful.

    Mean, variance and 0/25/50/75/100 % quantiles, per channel, of: the per-head products
    ``W̃_Q⁽ⁱ⁾W̃_K⁽ⁱ⁾ᵀ`` and ``W̃_V⁽ⁱ⁾W_O⁽ⁱ⁾`` and of their singular values (GL-invariant, pooled over
    heads), and every tensor GL does not act on (``b_O``, the feed-forward, norms, embedding, head).
    Statistics over all entries of a tensor ignore every permutation, so the result is invariant to
    the whole group, where StatNN on W_Q, W_K, W_V, W_O themselves reads magnitudes that GL changes
    freely.

    Shapes:
        features with c channels → ``(B, c · 7 · num_fields)``.
    """

    def __init__(self, spec: TransformerSpec, in_channels: int) -> None:
        super().__init__()
        self.in_channels = in_channels
        with torch.no_grad():
            self.out_features = self(spec.zeros(1, in_channels)).shape[1]

    def num_outputs(self, channels: int) -> int:
        """The readout width for the ``in_channels`` it was built for."""
        if channels != self.in_channels:
            raise ValueError(f"built for {self.in_channels} channels, not {channels}")
        return int(self.out_features)

    def forward(self, features: TransformerFeatures) -> torch.Tensor:
        fields: list[torch.Tensor] = []
        for t in features.blocks:
            products = head_products(t)
            fields += [p.flatten(2) for p in products]
            # singular values of each head's product: its gain along every direction, GL-invariant
            fields += [torch.linalg.svdvals(p).flatten(2) for p in products]
            fields += [v.flatten(2) for n, v in t.items() if n not in GL_TENSORS]
        zero = features.spec.zero_tensors()
        fields += [v.flatten(2) for n, v in features.named.items() if not n.startswith("blocks.") and n not in zero]
        return torch.cat([entry_statistics(f) for f in fields], dim=-1).flatten(1)


@final
class TransformerReadout(nn.Module):
    """Invariant features: per block :class:`AttentionBlockInvariant`, the flattened embedding (unless
    ``flat_embedding=False``), the head's HNP pool (of its features and of their squares), and
    optionally :class:`InvariantStatistics`.

    Shapes:
        features with c channels → ``(B, num_blocks·width + c·P_embedding + head pool [+ statistics])``.
    """

    def __init__(
        self, spec: TransformerSpec, in_channels: int, width: int, *, statistics: bool = False, flat_embedding: bool = True
    ) -> None:
        super().__init__()
        self.statistics = InvariantStatistics(spec, in_channels) if statistics else None
        if width < 0:
            raise ValueError(f"invariant width must be >= 0, got {width}")
        # width 0: no per-block invariant layer; its c·(D+1)² raw [QK] inputs overfit small zoos
        self.blocks = nn.ModuleList(AttentionBlockInvariant(b, in_channels, width) for b in spec.blocks if width > 0)
        self.head_pool = PermutationInvariantPool(spec.head, _hidden(spec.head)) if spec.head is not None else None
        self.has_embedding = flat_embedding and spec.embedding is not None
        embedding = in_channels * spec.embedding.num_parameters if flat_embedding and spec.embedding is not None else 0
        self.out_features = len(spec.blocks) * width + embedding
        self.out_features += 2 * self.head_pool.num_outputs(in_channels) if self.head_pool is not None else 0
        self.out_features += self.statistics.num_outputs(in_channels) if self.statistics is not None else 0
        self.in_channels = in_channels

    def num_outputs(self, channels: int) -> int:
        """The readout width for the ``in_channels`` it was built for."""
        if channels != self.in_channels:
            raise ValueError(f"built for {self.in_channels} channels, not {channels}")
        return int(self.out_features)

    def forward(self, features: TransformerFeatures) -> torch.Tensor:
        parts = [layer(t) for layer, t in zip(self.blocks, features.blocks)]
        if self.has_embedding:
            zero = features.spec.zero_tensors()
            parts += [t.flatten(1) for k, t in features.named.items() if k.startswith("embedding.") and k not in zero]
        head = features.head
        if self.head_pool is not None and head is not None:  # means and mean squares over the head's hidden neurons
            parts += [self.head_pool(head), self.head_pool(head.map(torch.square))]
        if self.statistics is not None:
            parts.append(self.statistics(features))
        return torch.cat(parts, dim=1)


@final
class WithInput(nn.Module):
    """``x ↦ [x, f(x)]`` along channels: equivariant when ``f`` is, and lets a readout see the raw weights.

    Shapes:
        features with c channels → features with ``c + e`` channels (``f``: c → e).
    """

    def __init__(self, f: nn.Module) -> None:
        super().__init__()
        self.f = f

    def forward(self, features: TransformerFeatures) -> TransformerFeatures:
        return cat_channels([features, self.f(features)])
