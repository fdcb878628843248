"""The sine activation of SIRENs."""

from __future__ import annotations

import math  # noqa: F401  (used by the doctest)
from typing import final

import torch
from torch import nn

__all__ = ["Sine"]


@final
class Sine(nn.Module):
    """The SIREN activation ``x ↦ sin(ω₀ x)`` (Sitzmann et al. 2020), an odd function.

    Args:
        w0: the frequency ω₀ (30 in SIRENs).

    Shapes:
        input ``(*)``, output ``(*)``.

    Example:
        >>> import torch
        >>> Sine(w0=2.0)(torch.tensor([0.0, math.pi / 4]))
        tensor([0., 1.])
    """

    def __init__(self, w0: float = 30.0) -> None:
        super().__init__()
        self.w0 = float(w0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sin(self.w0 * x)

    def extra_repr(self) -> str:
        return f"w0={self.w0}"
