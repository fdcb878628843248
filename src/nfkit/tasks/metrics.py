"""Evaluation metrics: Kendall τ (τ-b), R², MSE, accuracy."""

from __future__ import annotations

import math

import torch

__all__ = ["kendall_tau", "r2_score", "mean_squared_error", "accuracy"]


def kendall_tau(prediction: torch.Tensor, target: torch.Tensor, block: int = 2048) -> float:
    """Kendall's τ-b rank correlation (ties handled as in ``scipy.stats.kendalltau``).

    ``τ_b = (C − D) / √((n₀ − n₁)(n₀ − n₂))`` with C, D the concordant and discordant pairs, n₀ all
    pairs, n₁ and n₂ the pairs tied in prediction and in target. O(n²) in blocks of ``block`` rows.

    Shapes:
        prediction, target: ``(N,)`` → a float (NaN when either input is constant).

    Example:
        >>> kendall_tau(torch.tensor([1.0, 2.0, 3.0, 4.0]), torch.tensor([1.0, 3.0, 2.0, 4.0]))
        0.6666666666666666
    """
    x = prediction.detach().double().flatten()
    y = target.detach().double().flatten()
    if x.shape != y.shape:
        raise ValueError(f"prediction has {x.numel()} values but target has {y.numel()}")
    n = x.numel()
    concordant = discordant = ties_x = ties_y = 0.0
    for start in range(0, n, block):
        dx = torch.sign(x[start : start + block, None] - x[None, :])
        dy = torch.sign(y[start : start + block, None] - y[None, :])
        product = dx * dy
        concordant += (product > 0).sum().item()
        discordant += (product < 0).sum().item()
        ties_x += (dx == 0).sum().item()
        ties_y += (dy == 0).sum().item()
    # every unordered pair was counted twice, and the diagonal n times in each tie count
    pairs = n * (n - 1) / 2
    tied_x = (ties_x - n) / 2
    tied_y = (ties_y - n) / 2
    denominator = math.sqrt((pairs - tied_x) * (pairs - tied_y))
    return float("nan") if denominator == 0 else (concordant - discordant) / 2 / denominator


def r2_score(prediction: torch.Tensor, target: torch.Tensor) -> float:
    """Coefficient of determination ``1 − Σ(y − ŷ)² / Σ(y − ȳ)²``.

    Shapes: ``(N,)``, ``(N,)`` → a float.
    """
    p, t = prediction.detach().double().flatten(), target.detach().double().flatten()
    total = (t - t.mean()).square().sum().item()
    return float("nan") if total == 0 else 1.0 - (t - p).square().sum().item() / total


def mean_squared_error(prediction: torch.Tensor, target: torch.Tensor) -> float:
    """Mean of ``(ŷ − y)²`` over all entries. Shapes: any, equal."""
    return (prediction.detach().double() - target.detach().double()).square().mean().item()


def accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """Fraction of rows whose arg-max equals the label. Shapes: ``(N, K)``, ``(N,)``."""
    return (logits.detach().argmax(dim=-1) == labels).double().mean().item()
