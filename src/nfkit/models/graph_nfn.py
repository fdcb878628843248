"""The ``"graph"`` family: a graph metanetwork baseline (Kofinas et al. 2024; Lim et al. 2024).

Invariant form::

    GraphEncoder → [EdgeMessagePassing] × len(hidden_channels) → GraphPool → MLP head

Equivariant form::

    GraphEncoder → [EdgeMessagePassing] × len(hidden_channels) → GraphDecoder(→ out_channels)

The message-passing width is ``hidden_channels[0]`` (all rounds share it, as residual updates
need). Declared group: hidden-neuron permutations; the MLPs are not scale-equivariant.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from nfkit.groups.neurons import permutations
from nfkit.layers.graph import EdgeMessagePassing, GraphDecoder, GraphEncoder, GraphPool
from nfkit.models.base import StackedEquivariantModel, StackedInvariantModel, mlp_head
from nfkit.models.registry import ModelFamily, register
from nfkit.spaces.features import WeightSpaceFeatures
from nfkit.spaces.spec import WeightSpaceSpec

__all__ = ["graph_invariant", "graph_equivariant"]


class _GraphTrunk(nn.Module):
    """Encoder and message passing: features → (nodes, edges)."""

    def __init__(self, spec: WeightSpaceSpec, in_channels: int, hidden_channels: Sequence[int]) -> None:
        super().__init__()
        if not hidden_channels:
            raise ValueError("graph needs at least one round of message passing (a hidden width)")
        width = hidden_channels[0]
        self.encoder = GraphEncoder(spec, in_channels, width)
        self.rounds = nn.ModuleList(EdgeMessagePassing(self.encoder.graph, width) for _ in hidden_channels)

    def forward(self, features: WeightSpaceFeatures):
        nodes, edges = self.encoder(features)
        for layer in self.rounds:
            nodes, edges = layer(nodes, edges)
        return nodes, edges


class _Readout(nn.Module):
    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, graph):
        return self.inner(*graph)


def graph_invariant(
    spec: WeightSpaceSpec,
    out_features: int = 1,
    *,
    in_channels: int = 1,
    hidden_channels: Sequence[int] = (32, 32, 32),
    head_hidden: Sequence[int] = (256, 256),
    head_dropout: float = 0.0,
) -> StackedInvariantModel:
    """Graph metanetwork invariant model: features → ``(B, out_features)``."""
    trunk = _GraphTrunk(spec, in_channels, hidden_channels)
    width = hidden_channels[0]
    return StackedInvariantModel(
        spec, permutations(spec.hidden_sizes), in_channels, out_features,
        trunk=trunk, readout=_Readout(GraphPool(trunk.encoder.graph)),
        head=mlp_head((2 * spec.num_layers + 1) * width, head_hidden, out_features, head_dropout),
    )


def graph_equivariant(
    spec: WeightSpaceSpec,
    out_channels: int = 1,
    *,
    in_channels: int = 1,
    hidden_channels: Sequence[int] = (32, 32, 32),
) -> StackedEquivariantModel:
    """Graph metanetwork equivariant model: features → features with ``out_channels`` channels."""
    return StackedEquivariantModel(
        spec, permutations(spec.hidden_sizes), in_channels, out_channels,
        trunk=_GraphTrunk(spec, in_channels, hidden_channels),
        readout=_Readout(GraphDecoder(spec, hidden_channels[0], out_channels)),
    )


register(
    ModelFamily(
        "graph",
        "graph metanetwork: neurons as nodes, weights as edges, edge-updating message passing (Kofinas et al. 2024)",
        invariant=graph_invariant,
        equivariant=graph_equivariant,
    )
)
