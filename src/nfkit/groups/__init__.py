"""Symmetry groups of weight spaces, as objects that sample, compose, invert and act."""

from nfkit.groups.base import Group, GroupElement
from nfkit.groups.neurons import (
    DEFAULT_SCALE_RANGE,
    Factor,
    HiddenNeuronGroup,
    MonomialElement,
    permutations,
    positive_scalings,
    sign_flips,
    trivial,
)
from nfkit.groups.universal import UniversalElement, UniversalGroup

__all__ = [
    "Group",
    "GroupElement",
    "Factor",
    "HiddenNeuronGroup",
    "MonomialElement",
    "UniversalElement",
    "UniversalGroup",
    "DEFAULT_SCALE_RANGE",
    "trivial",
    "permutations",
    "positive_scalings",
    "sign_flips",
]
