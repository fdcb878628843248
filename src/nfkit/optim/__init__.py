"""Learned optimizers: an equivariant network over the weight space as a ``torch.optim.Optimizer``.

* :class:`LearnedOptimizer`: the optimizer (UNF, Zhou et al. 2024, §4.2), usable in any training loop.
* :class:`UpdateRule`: its meta-learned part (the network f and the step-size schedule).
* :mod:`nfkit.optim.inner`: the inner tasks it is meta-trained and evaluated on.
* :func:`meta_train`: Persistent Evolution Strategies (Vicol et al. 2021) over those tasks.
* :func:`evaluate`: against Adam tuned over a log grid, SGD with momentum and other learned optimizers.
"""

from nfkit.optim.optimizer import LearnedOptimizer
from nfkit.optim.rule import (
    INPUT_CHANNELS,
    PerParameterMLP,
    UpdateRule,
    update_families,
)

__all__ = ["INPUT_CHANNELS", "LearnedOptimizer", "PerParameterMLP", "UpdateRule", "update_families"]
