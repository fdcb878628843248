"""Equivariant and invariant layers on weight-space features, one family per file."""

from nfkit.layers.canonical import Canonicalization
from nfkit.layers.canonical_universal import UniversalCanonicalization
from nfkit.layers.folded import FoldedMixer, FoldedProjection
from nfkit.layers.graph import (
    EdgeMessagePassing,
    GraphDecoder,
    GraphEncoder,
    GraphPool,
    GraphReadout,
    GraphTrunk,
    NeuronGraph,
)
from nfkit.layers.hnp import HNPLinear, HNPPool
from nfkit.layers.magep import MagepInvariant, MagepLinear
from nfkit.layers.monomial import MonomialInvariantMap, MonomialLinear, MonomialPool
from nfkit.layers.nft import ChannelLinear, IOEmbedding, NFTAttention, NFTBlock
from nfkit.layers.np import NPLinear, NPPool
from nfkit.layers.perceiver import PerceiverPooling
from nfkit.layers.permutation_basis import (
    PermutationEquivariantLinear,
    PermutationInvariantPool,
)
from nfkit.layers.pointwise import ChannelNorm, FeatureActivation, FeatureDropout, GaussianFourierFeatures
from nfkit.layers.probe import ProbeFeatures
from nfkit.layers.scalegmn import ScaleGMNDecoder, ScaleGMNReadout, ScaleGMNTrunk
from nfkit.layers.statistics import Flattened, LayerStatistics
from nfkit.layers.transformer_network import (
    GLSafeActivation,
    InvariantStatistics,
    TransformerLinear,
    TransformerReadout,
    WithInput,
)
from nfkit.layers.transformer_nfn import AttentionBlockInvariant, AttentionBlockLinear
from nfkit.layers.unf import UNFLinear, UNFPool

__all__ = [
    "AttentionBlockInvariant",
    "Canonicalization",
    "UniversalCanonicalization",
    "FoldedMixer",
    "FoldedProjection",
    "AttentionBlockLinear",
    "ChannelLinear",
    "ChannelNorm",
    "EdgeMessagePassing",
    "FeatureActivation",
    "FeatureDropout",
    "Flattened",
    "GaussianFourierFeatures",
    "GLSafeActivation",
    "GraphDecoder",
    "GraphEncoder",
    "GraphPool",
    "GraphReadout",
    "GraphTrunk",
    "HNPLinear",
    "HNPPool",
    "IOEmbedding",
    "InvariantStatistics",
    "LayerStatistics",
    "MagepInvariant",
    "MagepLinear",
    "MonomialInvariantMap",
    "MonomialLinear",
    "MonomialPool",
    "NFTAttention",
    "NFTBlock",
    "NPLinear",
    "NPPool",
    "NeuronGraph",
    "PerceiverPooling",
    "PermutationEquivariantLinear",
    "PermutationInvariantPool",
    "ProbeFeatures",
    "ScaleGMNDecoder",
    "ScaleGMNReadout",
    "ScaleGMNTrunk",
    "TransformerLinear",
    "TransformerReadout",
    "UNFLinear",
    "UNFPool",
    "WithInput",
]
