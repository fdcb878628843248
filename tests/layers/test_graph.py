"""The neuron graph and the graph metanetwork layers."""

import torch

from conftest import make_cnn
from nfkit.layers.graph import EdgeMessagePassing, GraphDecoder, GraphEncoder, NeuronGraph
from nfkit.spaces import WeightSpaceSpec, spec_of


def test_edges_follow_the_weight_layout():
    spec = WeightSpaceSpec.mlp([3, 4, 2])
    g = NeuronGraph(spec)
    assert g.num_nodes == 9 and g.num_edges == 3 * 4 + 4 * 2
    # edge (j, k) of layer 1 (row-major): from input neuron k to hidden neuron j
    assert (g.source[4 * 0 + 1].item(), g.target[1].item()) == (1, 3)
    assert (g.source[12 + 3].item(), g.target[12 + 3].item()) == (3 + 3, 7)
    assert g.in_degree[3:7].tolist() == [3.0] * 4 and g.out_degree[3:7].tolist() == [2.0] * 4


def test_conv_kernels_are_edge_vectors_and_the_round_trip_shapes_hold():
    spec = spec_of(make_cnn("relu"))
    encoder, decoder = GraphEncoder(spec, 2, 8), GraphDecoder(spec, 8, 3)
    nodes, edges = encoder(spec.randn(5, 2))
    assert nodes.shape == (5, sum(spec.neuron_sizes), 8)
    assert edges.shape == (5, 4 * 1 + 5 * 4 + 3 * 5, 8)  # one edge per weight, kernels inside the feature
    nodes, edges = EdgeMessagePassing(encoder.graph, 8)(nodes, edges)
    out = decoder(nodes, edges)
    assert out.channels == 3 and out.weights[1].shape == (5, 3, 5, 4, 3, 3)


def test_memory_is_linear_in_the_number_of_weights():
    # the state grows with the number of edges (weights), never with nodes squared
    small, large = WeightSpaceSpec.mlp([2, 64, 64, 1]), WeightSpaceSpec.mlp([2, 256, 256, 1])
    for spec in (small, large):
        nodes, edges = GraphEncoder(spec, 1, 4)(spec.randn(1))
        assert edges.shape[1] == sum(l.n_in * l.n_out for l in spec.layers)
        assert nodes.shape[1] == sum(spec.neuron_sizes)


def test_a_relabelled_weight_matrix_moves_its_edge_features():
    spec = WeightSpaceSpec.mlp([2, 3, 1])
    encoder = GraphEncoder(spec, 1, 4).double()
    x = spec.randn(1, dtype=torch.float64)
    _, edges = encoder(x)
    swapped = x.with_tensors([x.weights[0][:, :, [1, 0, 2]], x.weights[1][:, :, :, [1, 0, 2]]],
                             [x.biases[0][:, :, [1, 0, 2]], x.biases[1]])
    _, edges_swapped = encoder(swapped)
    # hidden neurons 0 and 1 swapped: first-layer edges (0,k) and (1,k) trade places
    assert torch.allclose(edges_swapped[0, 0:2], edges[0, 2:4]) and torch.allclose(edges_swapped[0, 2:4], edges[0, 0:2])
