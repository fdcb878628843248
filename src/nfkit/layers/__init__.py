"""Equivariant and invariant layers on weight-space features, one family per file."""

from nfkit.layers.hnp import HNPLinear, HNPPool
from nfkit.layers.np import NPLinear, NPPool
from nfkit.layers.permutation_basis import PermutationEquivariantLinear, PermutationInvariantPool
from nfkit.layers.pointwise import ChannelNorm, FeatureActivation, FeatureDropout

__all__ = [
    "ChannelNorm",
    "FeatureActivation",
    "FeatureDropout",
    "HNPLinear",
    "HNPPool",
    "NPLinear",
    "NPPool",
    "PermutationEquivariantLinear",
    "PermutationInvariantPool",
]
