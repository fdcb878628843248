"""Equivariant and invariant layers on weight-space features, one family per file."""

from nfkit.layers.graph import EdgeMessagePassing, GraphDecoder, GraphEncoder, GraphPool, NeuronGraph
from nfkit.layers.hnp import HNPLinear, HNPPool
from nfkit.layers.magep import MagepInvariant, MagepLinear
from nfkit.layers.monomial import MonomialInvariantMap, MonomialLinear
from nfkit.layers.nft import ChannelLinear, NFTAttention, NFTBlock
from nfkit.layers.np import NPLinear, NPPool
from nfkit.layers.permutation_basis import PermutationEquivariantLinear, PermutationInvariantPool
from nfkit.layers.pointwise import ChannelNorm, FeatureActivation, FeatureDropout

__all__ = [
    "ChannelLinear",
    "ChannelNorm",
    "EdgeMessagePassing",
    "GraphDecoder",
    "GraphEncoder",
    "GraphPool",
    "NFTAttention",
    "NFTBlock",
    "NeuronGraph",
    "FeatureActivation",
    "FeatureDropout",
    "HNPLinear",
    "HNPPool",
    "MagepInvariant",
    "MagepLinear",
    "MonomialInvariantMap",
    "MonomialLinear",
    "NPLinear",
    "NPPool",
    "PermutationEquivariantLinear",
    "PermutationInvariantPool",
]
