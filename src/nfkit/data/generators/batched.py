"""Many small networks trained at once: each with its own optimizer, learning rate and weight decay.

The update of every net is written out with masks over the stacked parameters (net ``k`` owns index
``k`` of dim 0), so a chunk of nets costs one forward, one backward and one update per step.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

__all__ = ["OPTIMIZERS", "StackedOptimizers"]

#: The optimizers a net may draw: Adam, SGD with momentum 0.9, RMSprop (α = 0.9).
OPTIMIZERS = ("adam", "sgd", "rmsprop")


class StackedOptimizers:
    """Per-net Adam / SGD-momentum / RMSprop over parameters stacked on dim 0.

    Args:
        params: tensors ``(N, …)``, net ``k`` owning index ``k``.
        optimizers: per net, one of :data:`OPTIMIZERS`.
        learning_rate, weight_decay: per net, ``(N,)``.
    """

    def __init__(self, params: Sequence[torch.Tensor], optimizers: np.ndarray, learning_rate: torch.Tensor, weight_decay: torch.Tensor) -> None:
        self.params = list(params)
        self.kind = torch.as_tensor([OPTIMIZERS.index(o) for o in optimizers])
        self.lr, self.wd = learning_rate, weight_decay
        self.first_moment = [torch.zeros_like(p) for p in self.params]
        self.second_moment = [torch.zeros_like(p) for p in self.params]
        self.steps = 0

    @torch.no_grad()
    def step(self, grads: Sequence[torch.Tensor]) -> None:
        """One update of every net; non-finite gradients count as zero, and a diverged net's weights are
        clamped to ±1e6 (it stays in the zoo, as in the original Small CNN Zoo, with finite weights)."""
        self.steps += 1
        step = self.steps
        for p, g, m, v in zip(self.params, grads, self.first_moment, self.second_moment):
            shape = (-1, *([1] * (p.dim() - 1)))
            g = torch.nan_to_num(g + self.wd.view(shape) * p, nan=0.0, posinf=0.0, neginf=0.0)
            opt = self.kind.view(shape)
            m.copy_(torch.where(opt == 0, 0.9 * m + 0.1 * g, torch.where(opt == 1, 0.9 * m + g, m)))
            v.copy_(torch.where(opt == 0, 0.999 * v + 0.001 * g * g, torch.where(opt == 2, 0.9 * v + 0.1 * g * g, v)))
            adam = (m / (1 - 0.9**step)) / ((v / (1 - 0.999**step)).sqrt() + 1e-8)
            rms = g / (v.sqrt() + 1e-8)
            update = torch.where(opt == 0, adam, torch.where(opt == 1, m, rms))
            p.sub_(self.lr.view(shape) * update)
            p.copy_(torch.nan_to_num(p, nan=0.0, posinf=1e6, neginf=-1e6).clamp_(-1e6, 1e6))
