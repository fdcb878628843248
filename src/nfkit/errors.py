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
    "ZooFormatError",
    "FolderInUseError",
    "NotOursError",
    "InvalidOptionError",
    "UnknownNameError",
    "TaskMismatchError",
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


class ZooFormatError(NfkitError, ValueError):
    """A zoo file or folder that is missing, truncated, or not in the documented layout."""


class FolderInUseError(NfkitError, RuntimeError):
    """Another live process is writing the same run or zoo folder."""


class NotOursError(NfkitError, FileExistsError):
    """A folder that nfkit would have to replace but cannot prove it wrote (it holds other files)."""


class InvalidOptionError(NfkitError, ValueError):
    """An option value out of range: zero or negative sizes, counts or rates, and the like."""


class UnknownNameError(NfkitError, KeyError):
    """An unknown model family, task or architecture name (the message lists the known ones)."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class TaskMismatchError(NfkitError, ValueError):
    """A task asked of a zoo that does not hold what it needs (an INR task on a CNN zoo, …)."""
