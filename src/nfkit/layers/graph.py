"""Graph metanetwork layers: a network as a graph of neurons (Kofinas et al. 2024; Lim et al. 2024).

"Graph Neural Networks for Learning Equivariant Representations of Neural Networks" (ICLR 2024)
and "Graph Metanetworks for Processing Diverse Neural Architectures" (ICLR 2024). Every neuron
(a channel, for conv layers) is a node; its bias is the node feature. Every weight is an edge from
its input neuron to its output neuron; a conv kernel is the edge's feature vector. Message passing
updates edges and nodes:

    e_uv ← e_uv + φ_e([e_uv, x_u, x_v])
    x_v  ← x_v + φ_x([x_v, mean_{u→v} e_uv, mean_{v→w} e_vw])

Every neuron of a layer is treated alike, so relabelling the hidden neurons relabels nodes and
edges and nothing else: the layers are equivariant to hidden-neuron permutations. Input and
output neurons get learned per-index embeddings, since they are fixed. The graph is sparse: edge
tensors have one row per weight, and aggregation is an ``index_add``, so memory is linear in the
number of parameters; no dense N × N tensor is formed.
"""

from __future__ import annotations

from collections.abc import Sequence

from typing import final

import torch
from torch import nn

from nfkit.spaces.features import WeightSpaceFeatures
from nfkit.spaces.spec import WeightSpaceSpec

__all__ = ["NeuronGraph", "GraphEncoder", "EdgeMessagePassing", "GraphDecoder", "GraphPool", "GraphTrunk", "GraphReadout"]


class NeuronGraph:
    """The neuron graph of a spec: node offsets per neuron layer, and each weight's (source, target).

    Edges of layer i are listed in the order of ``W⁽ⁱ⁾`` flattened row-major: edge ``(j, k)`` goes from
    neuron k of layer i-1 to neuron j of layer i.
    """

    def __init__(self, spec: WeightSpaceSpec) -> None:
        sizes = spec.neuron_sizes
        self.spec = spec
        self.offsets = [sum(sizes[:ell]) for ell in range(len(sizes) + 1)]
        self.num_nodes = self.offsets[-1]
        sources, targets, counts = [], [], []
        for i, layer in enumerate(spec.layers):
            j = torch.arange(layer.n_out).repeat_interleave(layer.n_in)
            k = torch.arange(layer.n_in).repeat(layer.n_out)
            targets.append(self.offsets[i + 1] + j)
            sources.append(self.offsets[i] + k)
            counts.append(layer.n_out * layer.n_in)
        self.source = torch.cat(sources)
        self.target = torch.cat(targets)
        self.edge_counts = counts
        self.num_edges = sum(counts)
        in_degree = torch.zeros(self.num_nodes).index_add_(0, self.target, torch.ones(self.num_edges))
        out_degree = torch.zeros(self.num_nodes).index_add_(0, self.source, torch.ones(self.num_edges))
        self.in_degree = in_degree.clamp_min(1)
        self.out_degree = out_degree.clamp_min(1)


@final
class GraphEncoder(nn.Module):
    """Weights and biases → edge and node features of width ``d``.

    Per layer, a linear map of each weight's ``C·kernel`` values to ``d``; per neuron layer, one of each
    bias's C values, plus a learned layer embedding; input and output neurons also get per-index embeddings.

    Shapes:
        features ``(B, C, …)`` → nodes ``(B, N, d)``, edges ``(B, E, d)``.
    """

    def __init__(self, spec: WeightSpaceSpec, channels: int, width: int) -> None:
        super().__init__()
        self.spec = spec
        self.graph = NeuronGraph(spec)
        self.edge_in = nn.ModuleList(nn.Linear(channels * layer.kernel_numel, width) for layer in spec.layers)
        self.bias_in = nn.ModuleList(nn.Linear(channels, width) for _ in spec.layers)
        self.layer_embedding = nn.Parameter(torch.randn(spec.num_layers + 1, width) * 0.1)
        self.input_embedding = nn.Parameter(torch.randn(spec.neuron_sizes[0], width) * 0.1)
        self.output_embedding = nn.Parameter(torch.randn(spec.neuron_sizes[-1], width) * 0.1)

    def forward(self, features: WeightSpaceFeatures) -> tuple[torch.Tensor, torch.Tensor]:
        b = features.batch_size
        edges = []
        for w, layer, linear in zip(features.weights, self.spec.layers, self.edge_in):
            per_edge = w.flatten(4) if w.dim() > 4 else w.unsqueeze(-1)  # (B, C, n_out, n_in, f)
            edges.append(linear(per_edge.permute(0, 2, 3, 1, 4).reshape(b, layer.n_out * layer.n_in, -1)))
        nodes = [self.input_embedding.expand(b, -1, -1)]
        for bias, linear in zip(features.biases, self.bias_in):
            nodes.append(linear(bias.transpose(1, 2)))
        nodes[-1] = nodes[-1] + self.output_embedding
        sizes = self.spec.neuron_sizes
        layer_ids = torch.arange(len(sizes)).repeat_interleave(torch.tensor(sizes))
        return torch.cat(nodes, dim=1) + self.layer_embedding[layer_ids], torch.cat(edges, dim=1)


@final
class EdgeMessagePassing(nn.Module):
    """One round of edge then node updates (see the module docstring).

    Shapes:
        nodes ``(B, N, d)``, edges ``(B, E, d)`` → the same.
    """

    def __init__(self, graph: NeuronGraph, width: int) -> None:
        super().__init__()
        self.graph = graph
        self.edge_mlp = nn.Sequential(nn.Linear(3 * width, 2 * width), nn.SiLU(), nn.Linear(2 * width, width))
        self.node_mlp = nn.Sequential(nn.Linear(3 * width, 2 * width), nn.SiLU(), nn.Linear(2 * width, width))
        self.edge_norm = nn.LayerNorm(width)
        self.node_norm = nn.LayerNorm(width)

    def forward(self, nodes: torch.Tensor, edges: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        g = self.graph
        source, target = g.source.to(nodes.device), g.target.to(nodes.device)
        edges = edges + self.edge_mlp(torch.cat([self.edge_norm(edges), nodes[:, source], nodes[:, target]], dim=-1))
        incoming = torch.zeros_like(nodes).index_add_(1, target, edges) / g.in_degree.to(nodes)[:, None]
        outgoing = torch.zeros_like(nodes).index_add_(1, source, edges) / g.out_degree.to(nodes)[:, None]
        nodes = nodes + self.node_mlp(torch.cat([self.node_norm(nodes), incoming, outgoing], dim=-1))
        return nodes, edges


@final
class GraphDecoder(nn.Module):
    """Edge and node features → weights and biases with ``channels`` channels (per-layer linear maps).

    Shapes:
        nodes ``(B, N, d)``, edges ``(B, E, d)`` → features ``(B, channels, …)``.
    """

    def __init__(self, spec: WeightSpaceSpec, width: int, channels: int) -> None:
        super().__init__()
        self.spec = spec
        self.graph = NeuronGraph(spec)
        self.channels = channels
        self.edge_out = nn.ModuleList(nn.Linear(width, channels * layer.kernel_numel) for layer in spec.layers)
        self.bias_out = nn.ModuleList(nn.Linear(width, channels) for _ in spec.layers)

    def forward(self, nodes: torch.Tensor, edges: torch.Tensor) -> WeightSpaceFeatures:
        b = nodes.shape[0]
        weights, biases = [], []
        for i, (layer, chunk) in enumerate(zip(self.spec.layers, edges.split(self.graph.edge_counts, dim=1))):
            w = self.edge_out[i](chunk).view(b, layer.n_out, layer.n_in, self.channels, *layer.kernel)
            weights.append(w.permute(0, 3, 1, 2, *range(4, w.dim())))
            node = nodes[:, self.graph.offsets[i + 1] : self.graph.offsets[i + 2]]
            biases.append(self.bias_out[i](node).transpose(1, 2))
        return WeightSpaceFeatures(self.spec, weights, biases)


@final
class GraphPool(nn.Module):
    """Invariant readout: the mean of node features per neuron layer and of edge features per weight layer.

    Shapes:
        nodes ``(B, N, d)``, edges ``(B, E, d)`` → ``(B, (2L + 1)·d)``.
    """

    def __init__(self, graph: NeuronGraph) -> None:
        super().__init__()
        self.graph = graph

    def num_outputs(self, channels: int) -> int:
        """``(2L + 1) · channels``: one mean per neuron layer and per weight layer."""
        return (len(self.graph.offsets) - 1 + len(self.graph.edge_counts)) * channels

    def forward(self, nodes: torch.Tensor, edges: torch.Tensor) -> torch.Tensor:
        g = self.graph
        node_means = [nodes[:, g.offsets[i] : g.offsets[i + 1]].mean(dim=1) for i in range(len(g.offsets) - 1)]
        edge_means = [chunk.mean(dim=1) for chunk in edges.split(g.edge_counts, dim=1)]
        return torch.cat(node_means + edge_means, dim=-1)


class GraphTrunk(nn.Module):
    """Encoder and message passing: features → (nodes, edges).

    Shapes:
        features ``(B, C, …)`` → nodes ``(B, N, d)`` and edges ``(B, E, d)``, d = ``hidden_channels[0]``.
    """

    def __init__(self, spec: WeightSpaceSpec, in_channels: int, hidden_channels: Sequence[int]) -> None:
        super().__init__()
        if not hidden_channels:
            raise ValueError("graph needs at least one round of message passing (a hidden width)")
        width = hidden_channels[0]
        self.encoder = GraphEncoder(spec, in_channels, width)
        self.rounds = nn.ModuleList(EdgeMessagePassing(self.encoder.graph, width) for _ in hidden_channels)

    def forward(self, features: WeightSpaceFeatures) -> tuple[torch.Tensor, torch.Tensor]:
        nodes, edges = self.encoder(features)
        for layer in self.rounds:
            nodes, edges = layer(nodes, edges)
        return nodes, edges


class GraphReadout(nn.Module):
    """Applies a pool or decoder to a ``(nodes, edges)`` pair, so it can follow :class:`GraphTrunk` in a stack."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, graph: tuple[torch.Tensor, torch.Tensor]) -> object:
        return self.inner(*graph)

    def num_outputs(self, channels: int) -> int:
        """The wrapped pool's width."""
        return int(self.inner.num_outputs(channels))  # type: ignore[operator]  # any pool of nfkit.layers has it
