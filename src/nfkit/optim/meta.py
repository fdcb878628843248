"""Meta-training a learned optimizer with Persistent Evolution Strategies.

PES (Vicol, Metz, Sohl-Dickstein, ICML 2021, Eq. 7 with antithetic sampling): ``pairs`` pairs of
particles each train an inner task (:mod:`nfkit.optim.inner`) in truncations of ``truncation``
steps, one particle with the rule's parameters θ + ε, its partner with θ − ε (a fresh ε ~ N(0, σ²I)
per truncation). With ξ the sum of a particle's perturbations since its task began, the gradient
estimate of the mean training loss L over the unrolls is

.. math:: \\hat g = \\frac{1}{2 N \\sigma^2} \\sum_{p=1}^{N} \\xi_p \\,(L_p^{+} - L_p^{-}),

unbiased for the whole horizon, not only the truncation. ``estimator="es"`` uses the current ε in
place of ξ: truncated ES, cheaper in variance but biased towards short-horizon behaviour (it cannot
see what a step does to losses beyond its own truncation). A pair starts a new task after
``horizon`` steps; first horizons are staggered so resets spread over iterations.

Every random draw is a pure function of ``(seed, iteration, pair)``, and the whole state (θ, the
meta-optimizer, every particle) is checkpointed at iteration boundaries, so a killed run resumes
to the same result. Launched with ``torchrun``, each process runs ``pairs / world_size`` of the
pairs and the estimates are summed with ``all_reduce``: same result, less time.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch.nn.utils import parameters_to_vector, vector_to_parameters

from nfkit.errors import InvalidOptionError, NfkitError, NotOursError, UnknownNameError
from nfkit.optim.inner import DISTRIBUTIONS, InnerTask, sample_task
from nfkit.optim.optimizer import LearnedOptimizer
from nfkit.optim.rule import UpdateRule, update_families
from nfkit.spaces.convert import spec_of
from nfkit.spaces.spec import WeightSpaceSpec
from nfkit.util.files import (
    atomic_write_bytes,
    atomic_write_text,
    exclusive_lock,
    make_dir,
    write_csv_rows,
)

__all__ = ["MetaConfig", "meta_train", "MetaResult"]

STATE_FORMAT = "nfkit-optim-meta-state-1"
#: Loss assigned to an unroll that diverged (NaN, Inf or above it): worse than chance on every task.
LOSS_CAP = 10.0
ESTIMATORS = ("pes", "es")
_RUN_FILES = {"config.json", "state.pt", "optimizer.pt", "log.csv"}


@dataclass(frozen=True)
class MetaConfig:
    """Meta-training settings (all validated on construction).

    Attributes:
        tasks: a task distribution (:data:`~nfkit.optim.inner.DISTRIBUTIONS`).
        update: the rule's network family (:func:`~nfkit.optim.update_families`).
        hidden_channels: widths of the rule's network.
        iterations: meta-gradient steps.
        pairs: antithetic particle pairs per step (N).
        truncation: inner steps per unroll.
        horizon: inner steps before a pair starts a new task.
        sigma: perturbation scale σ.
        meta_lr: Adam's learning rate on θ.
        estimator: ``"pes"`` (unbiased) or ``"es"`` (truncated, biased).
        seed: every random draw derives from it.
        checkpoint_every: iterations between checkpoints.
        base: the rule's base direction (``"adam"`` or ``"momentum"``).
        learning_rate: the rule's initial step size α (meta-training moves it).
    """

    tasks: str = "mlp"
    update: str = "np"
    hidden_channels: tuple[int, ...] = (16, 16)
    iterations: int = 150
    pairs: int = 8
    truncation: int = 50
    horizon: int = 500
    sigma: float = 0.01
    meta_lr: float = 3e-3
    estimator: str = "pes"
    seed: int = 0
    checkpoint_every: int = 10
    base: str = "adam"
    learning_rate: float = 3e-3

    def __post_init__(self) -> None:
        if self.tasks not in DISTRIBUTIONS:
            raise UnknownNameError(f"no task distribution {self.tasks!r}; available: {', '.join(DISTRIBUTIONS)}")
        if self.update not in update_families():
            raise UnknownNameError(f"no update family {self.update!r}; available: {', '.join(update_families())}")
        if self.estimator not in ESTIMATORS:
            raise InvalidOptionError(f"estimator must be one of {', '.join(ESTIMATORS)}, not {self.estimator!r}")
        for name in ("iterations", "pairs", "truncation", "horizon", "checkpoint_every"):
            if int(getattr(self, name)) < 1:
                raise InvalidOptionError(f"{name} must be a positive integer, not {getattr(self, name)}")
        for name in ("sigma", "meta_lr", "learning_rate"):
            value = getattr(self, name)
            if not (value > 0 and math.isfinite(value)):
                raise InvalidOptionError(f"{name} must be a positive number, not {value}")
        if self.horizon % self.truncation:
            raise InvalidOptionError(f"horizon ({self.horizon}) must be a multiple of truncation ({self.truncation})")
        object.__setattr__(self, "hidden_channels", tuple(int(c) for c in self.hidden_channels))


@dataclass
class MetaResult:
    """What :func:`meta_train` leaves: the rule, its file, and the per-iteration mean meta-loss."""

    rule: UpdateRule
    path: Path
    losses: list[float]
    seconds: float


def _generator(config: MetaConfig, *keys: int) -> torch.Generator:
    seed = config.seed
    for k in keys:
        seed = (seed * 1_000_003 + k) % (2**62)
    return torch.Generator().manual_seed(seed)


class _Particle:
    """One inner network being trained by the rule at θ ± ε: its task, weights and optimizer state."""

    def __init__(self, task: InnerTask, rule: UpdateRule) -> None:
        self.task = task
        self.model = task.model()
        self.optimizer = LearnedOptimizer(self.model, rule)

    def unroll(self, start: int, steps: int) -> float:
        """Train ``steps`` steps from inner step ``start``; the mean training loss (capped)."""
        total = 0.0
        for step in range(start, start + steps):
            loss = self.task.train_loss(self.model, step)
            value = float(loss.detach())
            if not math.isfinite(value) or value > LOSS_CAP:
                return LOSS_CAP  # diverged: the rest of the unroll would be no better
            self.optimizer.zero_grad()
            loss.backward()
            self.optimizer.step()
            total += value
        return total / steps

    def state(self) -> dict[str, Any]:
        optimizer = self.optimizer.state_dict()
        optimizer.pop("rule")  # θ is saved once, not per particle
        return {"model": self.model.state_dict(), "optimizer": optimizer}

    def restore(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])


@dataclass
class _Pair:
    task: InnerTask
    plus: _Particle
    minus: _Particle
    step: int  # inner steps done
    horizon: int
    xi: torch.Tensor  # perturbations summed since the task began (the + particle's; the − one's is −ξ)

    def state(self) -> dict[str, Any]:
        return {"task": self.task.to_dict(), "step": self.step, "horizon": self.horizon, "xi": self.xi,
                "plus": self.plus.state(), "minus": self.minus.state()}

    @staticmethod
    def restore(state: dict[str, Any], rule: UpdateRule) -> _Pair:
        task = InnerTask.from_dict(state["task"])
        pair = _Pair(task, _Particle(task, rule), _Particle(task, rule), int(state["step"]), int(state["horizon"]), state["xi"])
        pair.plus.restore(state["plus"])
        pair.minus.restore(state["minus"])
        return pair


def _new_pair(config: MetaConfig, rule: UpdateRule, iteration: int, index: int, dim: int, first: bool) -> _Pair:
    generator = _generator(config, 1, iteration, index)
    task = sample_task(config.tasks, generator)
    units = config.horizon // config.truncation
    horizon = config.truncation * (int(torch.randint(1, units + 1, (), generator=generator)) if first else units)
    return _Pair(task, _Particle(task, rule), _Particle(task, rule), 0, horizon, torch.zeros(dim))


def _world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _prepare(out: Path, config: MetaConfig) -> dict[str, Any] | None:
    """Make ``out`` ours for ``config``; return the checkpoint to resume from, if any."""
    text = json.dumps({"kind": "nfkit optim meta-train", **asdict(config)}, indent=1)
    if out.exists() and not out.is_dir():
        raise NotOursError(f"{out} is a file; --out must be a folder (new, or one nfkit optim meta-train wrote)")
    if out.exists() and any(out.iterdir()):
        try:
            same = (out / "config.json").read_text() == text
        except OSError:
            same = False
        if not same:
            ours = (out / "config.json").is_file() and all(e.name in _RUN_FILES for e in out.iterdir())
            raise NotOursError(
                f"{out} holds {'another meta-training (other settings)' if ours else 'files nfkit did not write'}; "
                f"choose another folder"
            )
    make_dir(out)
    if not (out / "config.json").exists():
        atomic_write_text(out / "config.json", text)
    if not (out / "state.pt").exists():
        return None
    try:
        state = torch.load(out / "state.pt", map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - any unreadable checkpoint is the same user error
        raise NfkitError(f"{out / 'state.pt'} is not a readable checkpoint ({type(error).__name__}); move it away to restart") from None
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
        raise NfkitError(f"{out / 'state.pt'} is not an nfkit meta-training checkpoint; move it away to restart")
    return state


def meta_train(
    out: str | Path, config: MetaConfig = MetaConfig(), progress: Callable[[str], None] | None = None
) -> MetaResult:
    """Meta-train a rule; write ``out/optimizer.pt`` (for :meth:`LearnedOptimizer.load`), ``log.csv``, ``state.pt``.

    ``out`` may be new, empty, or an earlier run of the same ``config`` (resumed where it stopped;
    a finished run returns at once). A folder with anything else is refused.
    """
    out = Path(out)
    rank, world = _world()
    template = sample_task(config.tasks, _generator(config, 0))
    spec = spec_of(template.model())
    assert isinstance(spec, WeightSpaceSpec)
    with torch.random.fork_rng():  # the rule's initialisation is seeded too, without touching the caller's RNG
        torch.manual_seed(config.seed)
        rule = UpdateRule(spec, config.update, config.hidden_channels, config.base, config.learning_rate)
    theta = parameters_to_vector(rule.parameters()).detach().clone().requires_grad_(True)
    meta_optimizer = torch.optim.Adam([theta], lr=config.meta_lr)
    with contextlib.ExitStack() as stack:
        state = None
        if rank == 0:
            stack.enter_context(exclusive_lock(out, f"meta-training folder {out}"))
            state = _prepare(out, config)
        return _train(out, config, rule, theta, meta_optimizer, state, rank, world, progress)


def _train(out: Path, config: MetaConfig, rule: UpdateRule, theta: torch.Tensor, meta_optimizer: torch.optim.Optimizer,
           state: dict[str, Any] | None, rank: int, world: int, progress: Callable[[str], None] | None) -> MetaResult:
    if world > 1:
        box = [state if rank == 0 else None]
        dist.broadcast_object_list(box, src=0)
        state = box[0]
    start: int = 0
    log: list[dict[str, Any]] = []
    pairs: dict[int, _Pair] = {}
    if state is not None:
        with torch.no_grad():
            theta.copy_(state["theta"])
        meta_optimizer.load_state_dict(state["meta_optimizer"])
        start, log = int(state["iteration"]), list(state["log"])
        vector_to_parameters(theta.detach(), rule.parameters())
        pairs = {int(p): _Pair.restore(s, rule) for p, s in state["pairs"].items() if int(p) % world == rank}
    mine = [p for p in range(config.pairs) if p % world == rank]
    began = time.perf_counter()
    for iteration in range(start, config.iterations):
        estimate = torch.zeros(theta.numel() + 1)
        for p in mine:
            pair = pairs.get(p)
            if pair is None or pair.step >= pair.horizon:
                pair = pairs[p] = _new_pair(config, rule, iteration, p, theta.numel(), first=pair is None)
            epsilon = torch.randn(theta.numel(), generator=_generator(config, 2, iteration, p)) * config.sigma
            pair.xi = pair.xi + epsilon if config.estimator == "pes" else epsilon
            vector_to_parameters(theta.detach() + epsilon, rule.parameters())
            plus = pair.plus.unroll(pair.step, config.truncation)
            vector_to_parameters(theta.detach() - epsilon, rule.parameters())
            minus = pair.minus.unroll(pair.step, config.truncation)
            pair.step += config.truncation
            if plus >= LOSS_CAP or minus >= LOSS_CAP:
                pair.step = pair.horizon  # a diverged pair starts a new task next time
            estimate[:-1] += pair.xi * (plus - minus) / (2 * config.sigma**2 * config.pairs)
            estimate[-1] += (plus + minus) / (2 * config.pairs)
        if world > 1:
            dist.all_reduce(estimate)
        meta_optimizer.zero_grad()
        theta.grad = estimate[:-1].clone()
        meta_optimizer.step()
        vector_to_parameters(theta.detach(), rule.parameters())
        log.append({"iteration": iteration + 1, "meta_loss": round(float(estimate[-1]), 5),
                    "seconds": round(time.perf_counter() - began, 2)})
        if progress is not None and rank == 0:
            progress(f"iteration {iteration + 1}/{config.iterations}: mean training loss {float(estimate[-1]):.4f}")
        if (iteration + 1) % config.checkpoint_every == 0 or iteration + 1 == config.iterations:
            _checkpoint(out, iteration + 1, theta, meta_optimizer, pairs, log, rule, rank, world)
    if world > 1:
        dist.barrier()
    vector_to_parameters(theta.detach(), rule.parameters())
    return MetaResult(rule, out / "optimizer.pt", [float(r["meta_loss"]) for r in log], time.perf_counter() - began)


def _checkpoint(out: Path, iteration: int, theta: torch.Tensor, meta_optimizer: torch.optim.Optimizer,
                pairs: dict[int, _Pair], log: list[dict[str, Any]], rule: UpdateRule, rank: int, world: int) -> None:
    states = {str(p): pair.state() for p, pair in pairs.items()}
    if world > 1:
        gathered: list[Any] = [None] * world
        dist.all_gather_object(gathered, states)
        states = {k: v for part in gathered for k, v in part.items()}
    if rank != 0:
        return
    buffer = io.BytesIO()
    torch.save({"format": STATE_FORMAT, "iteration": iteration, "theta": theta.detach().clone(),
                "meta_optimizer": meta_optimizer.state_dict(), "pairs": states, "log": log}, buffer)
    # the rule file and log first: a kill between the writes leaves a state that redoes, never skips, work
    rule.save(out / "optimizer.pt")
    write_csv_rows(out / "log.csv", log)
    atomic_write_bytes(out / "state.pt", buffer.getvalue())
