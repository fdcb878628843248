"""Evaluating optimizers on held-out inner tasks, against tuned Adam (GradMetaNet, NeurIPS 2025, Table 6).

The metric is the factor by which an optimizer cuts the steps needed to reach tuned Adam's best
test loss: with L* the lowest test loss of Adam at its tuned learning rate and s_Adam the step where
it gets there, an optimizer that first reaches L* at step s has factor s_Adam / s (above 1: faster;
"not reached" when it never gets to L* within the horizon). Adam's learning rate is tuned per task
group over a log grid (the papers use 20 values in 5e-4..1e-2), on the mean over seeds of the best
test loss; SGD with momentum 0.9 likewise over its own grid.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from nfkit.errors import SpecMismatchError
from nfkit.optim.inner import InnerTask
from nfkit.optim.optimizer import LearnedOptimizer
from nfkit.optim.rule import UpdateRule
from nfkit.spaces.convert import spec_of

__all__ = ["Curve", "train_curve", "tune", "OptimizerResult", "evaluate", "ADAM_GRID", "SGD_GRID", "step_factor"]

#: Adam's learning rates: 20 values, log-spaced over 5e-4..1e-2 as in GradMetaNet/UNF.
ADAM_GRID: tuple[float, ...] = tuple(5e-4 * (1e-2 / 5e-4) ** (i / 19) for i in range(20))
#: SGD-with-momentum learning rates: 10 values, log-spaced over 1e-3..1.
SGD_GRID: tuple[float, ...] = tuple(1e-3 * 1000 ** (i / 9) for i in range(10))

MakeOptimizer = Callable[[nn.Module], torch.optim.Optimizer]


@dataclass
class Curve:
    """Test loss every ``every`` steps (index 0: before training) and the seconds per step."""

    losses: list[float]
    every: int
    seconds_per_step: float

    def best(self) -> float:
        return min(self.losses)

    def first_step_below(self, target: float) -> int | None:
        """The first evaluated step with test loss ≤ ``target`` (``None``: never)."""
        for i, loss in enumerate(self.losses):
            if loss <= target:
                return i * self.every
        return None


def train_curve(task: InnerTask, make_optimizer: MakeOptimizer, steps: int, every: int = 10) -> Curve:
    """Train ``task``'s network for ``steps`` steps; test loss every ``every`` steps (NaN → inf)."""
    model = task.model()
    optimizer = make_optimizer(model)
    losses = [task.test_loss(model)]
    spent = 0.0
    for step in range(steps):
        began = time.perf_counter()
        loss = task.train_loss(model, step)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        spent += time.perf_counter() - began
        if (step + 1) % every == 0:
            value = task.test_loss(model)
            losses.append(value if math.isfinite(value) else math.inf)
            if not math.isfinite(value):  # diverged: the rest is inf too
                losses += [math.inf] * (steps // every - len(losses) + 1)
                break
    return Curve(losses, every, spent / max(1, step + 1))


def tune(tasks: Sequence[InnerTask], make: Callable[[float], MakeOptimizer], grid: Sequence[float], steps: int,
         every: int = 10) -> tuple[float, list[Curve]]:
    """The learning rate in ``grid`` with the lowest mean best test loss over ``tasks``, and its curves."""
    best: tuple[float, float, list[Curve]] | None = None
    for rate in grid:
        curves = [train_curve(task, make(rate), steps, every) for task in tasks]
        score = statistics.fmean(c.best() for c in curves)
        if best is None or score < best[0]:
            best = (score, rate, curves)
    assert best is not None
    return best[1], best[2]


def step_factor(reference: Curve, other: Curve) -> float | None:
    """s_ref / s_other for reaching the reference's best test loss (``None`` if ``other`` never does)."""
    target = reference.best()
    s_ref = reference.first_step_below(target)
    s_other = other.first_step_below(target)
    if s_ref is None or s_other is None:
        return None
    return max(s_ref, reference.every) / max(s_other, other.every)


@dataclass
class OptimizerResult:
    """One optimizer on one task group: per-seed curves and factors against tuned Adam."""

    name: str
    curves: list[Curve]
    factors: list[float | None]
    learning_rate: float | None = None
    extra: dict[str, object] = field(default_factory=dict)

    def summary(self, adam_seconds: float) -> dict[str, object]:
        reached = [f for f in self.factors if f is not None]
        return {
            "optimizer": self.name,
            "lr": "" if self.learning_rate is None else f"{self.learning_rate:.2e}",
            # geometric mean over the seeds that reach L* (factors are ratios)
            "factor": round(math.exp(statistics.fmean(math.log(f) for f in reached)), 2) if reached else "not reached",
            "reached": f"{len(reached)}/{len(self.factors)}",
            "best_test_loss": round(statistics.fmean(c.best() for c in self.curves), 4),
            "final_test_loss": round(statistics.fmean(c.losses[-1] for c in self.curves), 4),
            "time_per_step_vs_adam": round(statistics.fmean(c.seconds_per_step for c in self.curves) / adam_seconds, 2),
        }


def _adam(rate: float) -> MakeOptimizer:
    return lambda model: torch.optim.Adam(model.parameters(), lr=rate)


def _sgd(rate: float) -> MakeOptimizer:
    return lambda model: torch.optim.SGD(model.parameters(), lr=rate, momentum=0.9)


def _learned(rule: UpdateRule) -> MakeOptimizer:
    return lambda model: LearnedOptimizer(model, rule)


def evaluate(groups: Mapping[str, Sequence[InnerTask]], learned: Mapping[str, str | Path | UpdateRule], steps: int = 1000,
             every: int = 10, adam_grid: Sequence[float] = ADAM_GRID, sgd_grid: Sequence[float] = SGD_GRID,
             progress: Callable[[str], None] | None = None) -> dict[str, list[OptimizerResult]]:
    """Tuned Adam, tuned SGD with momentum and each learned optimizer on every task group.

    Args:
        groups: name → tasks (seeds) of one kind, e.g. :data:`~nfkit.optim.inner.HELD_OUT`.
        learned: name → a rule file written by meta-training, or a rule.
        steps, every: the horizon and how often the test loss is measured.

    Returns: group name → results, tuned Adam first.
    """
    rules = {name: r if isinstance(r, UpdateRule) else UpdateRule.load(r) for name, r in learned.items()}
    report: dict[str, list[OptimizerResult]] = {}
    for group, tasks in groups.items():
        adam_rate, adam_curves = tune(tasks, _adam, adam_grid, steps, every)
        results = [OptimizerResult("adam (tuned)", adam_curves, [step_factor(c, c) for c in adam_curves], adam_rate)]
        sgd_rate, sgd_curves = tune(tasks, _sgd, sgd_grid, steps, every)
        results.append(OptimizerResult("sgd+momentum (tuned)", sgd_curves,
                                       [step_factor(a, c) for a, c in zip(adam_curves, sgd_curves)], sgd_rate))
        spec = spec_of(tasks[0].model())
        for name, rule in rules.items():
            try:
                rule.network_for(spec)  # type: ignore[arg-type]
            except SpecMismatchError as error:
                if progress is not None:
                    progress(f"{group}: {name} skipped ({error})")
                continue
            curves = [train_curve(task, _learned(rule), steps, every) for task in tasks]
            results.append(OptimizerResult(name, curves, [step_factor(a, c) for a, c in zip(adam_curves, curves)]))
        report[group] = results
        if progress is not None:
            progress(f"{group}: done ({len(tasks)} seeds, Adam lr {adam_rate:.2e})")
    return report
