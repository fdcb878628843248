"""A linear layer with a low-rank adapter: :class:`LoRALinear` (Hu et al., ICLR 2022)."""

from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["LoRALinear"]


class LoRALinear(nn.Module):
    """``y = W x + b + (α / r) · B A x`` with ``A ∈ ℝ^{r×n}``, ``B ∈ ℝ^{m×r}``.

    ``(B R, R⁻¹ A)`` gives the same function for any invertible ``R``: the adapter's rank axis carries
    GL(r) (Putterman et al. 2024, "Learning on LoRAs", Sec. 3).

    Args:
        in_features, out_features: ``n`` and ``m``.
        rank: ``r``.
        alpha: the adapter's scale numerator.
        bias: whether the base layer has a bias.

    Shapes:
        input ``(*, n)``, output ``(*, m)``.

    Example:
        >>> layer = LoRALinear(4, 3, rank=2)
        >>> layer(torch.randn(5, 4)).shape, layer.lora_A.shape, layer.lora_B.shape
        (torch.Size([5, 3]), torch.Size([2, 4]), torch.Size([3, 2]))
    """

    def __init__(self, in_features: int, out_features: int, rank: int, alpha: float = 1.0, bias: bool = True) -> None:
        super().__init__()
        if rank <= 0:
            raise ValueError(f"rank must be positive, got {rank}")
        self.base = nn.Linear(in_features, out_features, bias=bias)
        self.lora_A = nn.Parameter(torch.empty(rank, in_features))
        self.lora_B = nn.Parameter(torch.zeros(out_features, rank))
        self.scaling = alpha / rank
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))

    @property
    def rank(self) -> int:
        """``r``."""
        return self.lora_A.shape[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) + self.scaling * (x @ self.lora_A.transpose(0, 1)) @ self.lora_B.transpose(0, 1)
