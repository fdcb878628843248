"""Symmetry groups of weight spaces, as objects that sample, compose, invert and act.

One implementation (:class:`UniversalGroup`: a product over :class:`NeuronSet` s); the hidden-neuron
groups of MLPs and CNNs and the transformer group are it on named sets, with their factor names.
"""

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
from nfkit.groups.sets import NeuronSet
from nfkit.groups.universal import UniversalElement, UniversalGroup

__all__ = [
    "Group",
    "GroupElement",
    "Factor",
    "HiddenNeuronGroup",
    "MonomialElement",
    "NeuronSet",
    "UniversalElement",
    "UniversalGroup",
    "DEFAULT_SCALE_RANGE",
    "trivial",
    "permutations",
    "positive_scalings",
    "sign_flips",
]
