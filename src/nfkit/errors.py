"""Exceptions raised by nfkit for input it cannot interpret.

Every error names what was wrong and what was expected, so that a bad input
never turns into a silently wrong answer.
"""

from __future__ import annotations

__all__ = [
    "NfkitError",
    "UnsupportedModuleError",
    "SpecMismatchError",
    "NonFiniteWeightsError",
    "GroupMismatchError",
    "UnsupportedArchitectureError",
    "UnknownOptionError",
]


class NfkitError(Exception):
    """Base class of every error nfkit raises on purpose."""


class UnsupportedModuleError(NfkitError, TypeError):
    """A ``torch.nn`` module (or arrangement of modules) nfkit cannot describe."""


class SpecMismatchError(NfkitError, ValueError):
    """Tensors, modules or models that do not fit the weight-space spec they are used with."""


class NonFiniteWeightsError(NfkitError, ValueError):
    """Weights or biases containing NaN or Inf."""


class GroupMismatchError(NfkitError, ValueError):
    """A group element applied to a weight space of other sizes, or groups of different spaces combined."""


class UnsupportedArchitectureError(NfkitError, ValueError):
    """A model family asked to work on a weight space whose symmetry it is not built for."""


class UnknownOptionError(NfkitError, TypeError):
    """A model option (keyword) that the chosen model family does not take."""
