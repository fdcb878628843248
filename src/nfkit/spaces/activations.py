"""Elementwise activations and the symmetry properties that decide a network's group.

An activation σ is *positively homogeneous* when ``σ(d x) = d σ(x)`` for every
``d > 0`` (ReLU, LeakyReLU), which makes per-neuron positive scaling a symmetry,
and *odd* when ``σ(-x) = -σ(x)`` (Tanh, Sine), which makes sign flips one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import final

from torch import nn

from nfkit.errors import UnsupportedModuleError
from nfkit.nets.sine import Sine

__all__ = ["Sine", "Activation", "SUPPORTED_ACTIVATIONS"]


@dataclass(frozen=True)
class _Kind:
    module_type: type[nn.Module]
    positively_homogeneous: bool
    odd: bool
    parameter_attribute: str | None


_KINDS: dict[str, _Kind] = {
    "identity": _Kind(nn.Identity, True, True, None),
    "relu": _Kind(nn.ReLU, True, False, None),
    "leaky_relu": _Kind(nn.LeakyReLU, True, False, "negative_slope"),
    "tanh": _Kind(nn.Tanh, False, True, None),
    "sine": _Kind(Sine, False, True, "w0"),
    "sigmoid": _Kind(nn.Sigmoid, False, False, None),
    "gelu": _Kind(nn.GELU, False, False, "approximate"),
    "silu": _Kind(nn.SiLU, False, False, None),
    # a dataset whose networks use different activations: only what they all share (permutations) holds
    "mixed": _Kind(nn.Identity, False, False, None),
}

#: Names accepted by :meth:`Activation.parse` and recognised by :func:`nfkit.spaces.spec_of`.
SUPPORTED_ACTIVATIONS: tuple[str, ...] = tuple(k for k in _KINDS if k not in ("identity", "mixed"))


@final
@dataclass(frozen=True)
class Activation:
    """An elementwise activation, by name and optional parameter.

    Example:
        >>> a = Activation.parse("leaky_relu")
        >>> a.positively_homogeneous, a.odd
        (True, False)
        >>> Activation.parse("sine").module()
        Sine(w0=30.0)
    """

    name: str
    parameter: float | str | None = None

    def __post_init__(self) -> None:
        if self.name not in _KINDS:
            raise UnsupportedModuleError(
                f"unknown activation {self.name!r}; supported: {', '.join(SUPPORTED_ACTIVATIONS)}"
            )

    @property
    def positively_homogeneous(self) -> bool:
        """``σ(d x) = d σ(x)`` for all ``d > 0``."""
        return _KINDS[self.name].positively_homogeneous

    @property
    def odd(self) -> bool:
        """``σ(-x) = -σ(x)``."""
        return _KINDS[self.name].odd

    @staticmethod
    def parse(text: str | Activation) -> Activation:
        """An activation from its name (``"relu"``, ``"tanh"``, ``"sine"``, …), with default parameter."""
        if isinstance(text, Activation):
            return text
        name = text.lower().replace("-", "_")
        if name not in _KINDS:
            raise UnsupportedModuleError(f"unknown activation {text!r}; supported: {', '.join(SUPPORTED_ACTIVATIONS)}")
        attribute = _KINDS[name].parameter_attribute
        parameter = getattr(_KINDS[name].module_type(), attribute) if attribute else None
        return Activation(name, parameter)

    @staticmethod
    def from_module(module: nn.Module) -> Activation | None:
        """The activation a module computes, or ``None`` if it is not a supported activation."""
        for name, kind in _KINDS.items():
            if type(module) is kind.module_type and name not in ("identity", "mixed"):
                attribute = kind.parameter_attribute
                return Activation(name, getattr(module, attribute) if attribute else None)
        return None

    def module(self) -> nn.Module:
        """A fresh ``nn.Module`` computing this activation."""
        if self.name == "mixed":
            raise UnsupportedModuleError("'mixed' describes a dataset of networks with different activations, not a module")
        kind = _KINDS[self.name]
        if kind.parameter_attribute is None:
            return kind.module_type()
        return kind.module_type(self.parameter)

    def __str__(self) -> str:
        if self.parameter is None or self.parameter == _default_parameter(self.name):
            return self.name
        return f"{self.name}({self.parameter})"


def _default_parameter(name: str) -> float | str | None:
    attribute = _KINDS[name].parameter_attribute
    return getattr(_KINDS[name].module_type(), attribute) if attribute else None

