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

from nfkit.groups.base import Group
from nfkit.groups.neurons import permutations
from nfkit.layers.canonical import with_canonical_front
from nfkit.layers.graph import GraphDecoder, GraphPool, GraphReadout, GraphTrunk
from nfkit.models.base import StackedEquivariantModel, StackedInvariantModel
from nfkit.models.registry import ModelFamily, register
from nfkit.spaces.spec import WeightSpaceSpec

__all__ = ["graph_invariant", "graph_equivariant"]






def graph_invariant(
    spec: WeightSpaceSpec,
    out_features: int = 1,
    *,
    in_channels: int = 1,
    hidden_channels: Sequence[int] = (32, 32, 32),
    head_hidden: Sequence[int] = (256, 256),
    head_dropout: float = 0.0,
    canonical: bool = False,
) -> StackedInvariantModel:
    """Graph metanetwork invariant model: features → ``(B, out_features)``.

    ``canonical=True`` puts a :class:`~nfkit.layers.canonical.Canonicalization` front first: the
    model is then invariant to the network's scalings or sign flips as well.
    """
    trunk = GraphTrunk(spec, in_channels, hidden_channels)
    group: Group = permutations(spec.hidden_sizes)
    readout = GraphReadout(GraphPool(trunk.encoder.graph))
    layers: nn.Module = trunk
    if canonical:
        group, layers = with_canonical_front(spec, group, trunk)
    return StackedInvariantModel.with_head(
        spec, group, in_channels, out_features, trunk=layers, trunk_width=hidden_channels[0],
        readout=readout, head_hidden=head_hidden, head_dropout=head_dropout,
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
        trunk=GraphTrunk(spec, in_channels, hidden_channels),
        readout=GraphReadout(GraphDecoder(spec, hidden_channels[0], out_channels)),
    )


register(
    ModelFamily(
        "graph",
        "graph metanetwork: neurons as nodes, weights as edges, edge-updating message passing (Kofinas et al. 2024)",
        invariant=graph_invariant,
        equivariant=graph_equivariant,
    )
)
