"""One training loop for every task: AdamW, warmup + cosine, clipping, best-val selection, early stopping.

Runs are seeded and resumable: after each epoch the model, optimizer, schedule, RNG states and
history are saved atomically to ``<run>/checkpoint.pt``, and a rerun with the same run folder
continues from there. Under ``torchrun`` (a ``gloo`` process group on CPU) the model is wrapped in
``DistributedDataParallel``, each rank trains on its shard of the batches, every rank evaluates the
whole validation set (so early stopping decides alike everywhere), and rank 0 writes the files.
"""

from __future__ import annotations

import math
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, cast

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler

from nfkit.data.dataset import WeightDataset, collate
from nfkit.tasks.task import Task
from nfkit.errors import InvalidOptionError
from nfkit.util.progress import progress_bar

__all__ = ["TrainConfig", "Task", "TrainResult", "fit", "predict", "is_main_process", "PRECISIONS", "OnDevice"]

#: Training precisions: float32, or bfloat16 autocast.
PRECISIONS = ("fp32", "bf16")


class OnDevice(nn.Module):
    """Runs ``model`` on ``device`` (optionally under bfloat16 autocast) for inputs and outputs that live on the CPU.

    Inputs (features or tensors) are moved to ``device``; outputs come back to the CPU in float32,
    with gradients flowing through both moves. Tasks compute their losses and metrics on the CPU
    whatever the device.

    Shapes:
        whatever ``model`` takes and returns.
    """

    def __init__(self, model: nn.Module, device: str, precision: str = "fp32") -> None:
        super().__init__()
        self.model = model
        self.device = torch.device(device)
        self.precision = precision

    def forward(self, x: Any) -> Any:
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.precision == "bf16"):
            out = self.model(x.to(self.device))
        return out.to(device="cpu", dtype=torch.float32)


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings (stored with every run).

    Attributes:
        epochs: upper bound on epochs.
        batch_size: networks per step (per rank under ``torchrun``).
        learning_rate, weight_decay: AdamW's.
        warmup_fraction: share of all steps with a linear warmup, then a cosine decay to zero.
        clip_norm: gradient-norm clipping (None: off).
        patience: stop after this many epochs without a better validation metric (None: never).
        seed: seeds initialisation-independent randomness (shuffling, dropout, augmentation).
        compile: wrap the model in ``torch.compile``.
        precision: ``"fp32"``, or ``"bf16"``: the model's passes run under ``torch.autocast`` in
            bfloat16 (parameters, optimizer state and the loss stay float32). Symmetry checks are
            unaffected: they rebuild the model in float64.
        device: ``"cpu"`` or ``"cuda"``: where the model trains. Batches are moved there and outputs
            back, so tasks and datasets stay on the CPU; the trained model is returned on the CPU.
    """

    epochs: int = 20
    batch_size: int = 32
    learning_rate: float = 1e-3
    weight_decay: float = 0.01
    warmup_fraction: float = 0.05
    clip_norm: float | None = 1.0
    patience: int | None = 5
    seed: int = 0
    compile: bool = False
    precision: str = "fp32"
    device: str = "cpu"

    def __post_init__(self) -> None:
        problems = []
        if self.precision not in PRECISIONS:
            problems.append(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        if self.device not in ("cpu", "cuda"):
            problems.append(f"device must be cpu or cuda, got {self.device!r}")
        elif self.device == "cuda" and not torch.cuda.is_available():
            problems.append(f"device cuda: no CUDA device is available here (torch {torch.__version__}); use cpu")
        if type(self.epochs) is not int or self.epochs < 1:
            problems.append(f"epochs must be a positive integer, got {self.epochs!r}")
        if type(self.batch_size) is not int or self.batch_size < 1:
            problems.append(f"batch_size must be a positive integer, got {self.batch_size!r}")
        if not (math.isfinite(self.learning_rate) and self.learning_rate > 0):
            problems.append(f"learning_rate must be a positive number, got {self.learning_rate!r}")
        if not (math.isfinite(self.weight_decay) and self.weight_decay >= 0):
            problems.append(f"weight_decay must be zero or positive, got {self.weight_decay!r}")
        if not 0 <= self.warmup_fraction < 1:
            problems.append(f"warmup_fraction must be in [0, 1), got {self.warmup_fraction!r}")
        if self.clip_norm is not None and not (math.isfinite(self.clip_norm) and self.clip_norm > 0):
            problems.append(f"clip_norm must be positive or None, got {self.clip_norm!r}")
        if self.patience is not None and (type(self.patience) is not int or self.patience < 1):
            problems.append(f"patience must be a positive integer, or None for no early stopping, got {self.patience!r}")
        if problems:
            raise InvalidOptionError("; ".join(problems))


@dataclass
class TrainResult:
    """What :func:`fit` returns: the best validation metrics, the epoch they came from, and the history."""

    best_epoch: int
    best_metrics: dict[str, float]
    history: list[dict[str, float]] = field(default_factory=list)
    seconds: float = 0.0
    stopped_early: bool = False


def is_main_process() -> bool:
    """Rank 0 under ``torchrun``, or a plain process."""
    return not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0


def predict(model: nn.Module, data: WeightDataset, batch_size: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    """Model outputs and targets over a whole dataset, in order (eval mode, no gradients)."""
    was_training = model.training
    model.eval()
    outputs, targets = [], []
    with torch.no_grad():
        for features, y in DataLoader(data, batch_size=batch_size, collate_fn=collate):
            outputs.append(model(features))
            targets.append(y)
    model.train(was_training)
    return torch.cat(outputs), torch.cat(targets)


def _schedule(total_steps: int, warmup_fraction: float) -> Callable[[int], float]:
    warmup = max(1, int(warmup_fraction * total_steps))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total_steps - warmup)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return factor


def _save_atomic(state: dict[str, object], path: Path) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    os.close(fd)
    try:
        torch.save(state, tmp)
        mask = os.umask(0o022)
        os.umask(mask)
        os.chmod(tmp, 0o666 & ~mask)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def fit(
    model: nn.Module,
    task: Task,
    train: WeightDataset,
    val: WeightDataset,
    config: TrainConfig = TrainConfig(),
    run_dir: str | Path | None = None,
    progress: Callable[[str], None] | None = None,
) -> TrainResult:
    """Train ``model`` on ``train``, select by ``task.primary`` on ``val``; leave the best weights in ``model``.

    With ``run_dir``, a ``checkpoint.pt`` there is resumed from and rewritten after every epoch, and
    the best weights are kept in ``best_model.pt``.
    """
    torch.manual_seed(config.seed)
    distributed = dist.is_available() and dist.is_initialized()
    run_dir = Path(run_dir) if run_dir is not None else None
    if run_dir is not None:
        run_dir.mkdir(parents=True, exist_ok=True)
    shuffle_generator = torch.Generator().manual_seed(config.seed)
    sampler: DistributedSampler[tuple[object, torch.Tensor]] | None = (
        DistributedSampler(train, shuffle=True, seed=config.seed) if distributed else None
    )
    loader = DataLoader(
        train, batch_size=config.batch_size, shuffle=sampler is None, sampler=sampler,
        collate_fn=collate, generator=shuffle_generator if sampler is None else None, drop_last=len(train) > config.batch_size,
    )
    model.to(config.device)
    adapted: nn.Module = model if config.device == "cpu" and config.precision == "fp32" else OnDevice(model, config.device, config.precision)
    trained: nn.Module = nn.parallel.DistributedDataParallel(adapted) if distributed else adapted
    if config.compile:
        trained = cast(nn.Module, torch.compile(trained))  # an OptimizedModule wrapping the model
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _schedule(config.epochs * max(1, len(loader)), config.warmup_fraction))
    best_score = -math.inf

    def snapshot() -> dict[str, torch.Tensor]:  # on the CPU, whatever the device
        return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}

    best_state = snapshot()
    result = TrainResult(best_epoch=0, best_metrics={})
    start_epoch, bad_epochs, elapsed = 1, 0, 0.0
    checkpoint_path = run_dir / "checkpoint.pt" if run_dir is not None else None
    if checkpoint_path is not None and checkpoint_path.exists():
        state = torch.load(checkpoint_path, weights_only=True, map_location="cpu")
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        best_state, best_score = state["best_model"], state["best_score"]
        result = TrainResult(state["best_epoch"], state["best_metrics"], state["history"])
        start_epoch, bad_epochs, elapsed = state["epoch"] + 1, state["bad_epochs"], state["seconds"]
        shuffle_generator.set_state(state["shuffle_rng"])
        torch.set_rng_state(state["torch_rng"])
        if state["stopped_early"]:
            start_epoch = config.epochs + 1
            result.stopped_early = True
    clock = time.perf_counter()
    for epoch in range(start_epoch, config.epochs + 1):
        if sampler is not None:
            sampler.set_epoch(epoch)
        trained.train()
        total, batches = 0.0, 0
        batches_shown = progress_bar(loader, total=len(loader), desc=f"epoch {epoch}/{config.epochs}", unit="batch") \
            if progress is not None and is_main_process() else loader
        for features, targets in batches_shown:
            loss = task.loss(trained, features, targets)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if config.clip_norm is not None:
                nn.utils.clip_grad_norm_(model.parameters(), config.clip_norm)
            optimizer.step()
            scheduler.step()
            total += loss.item()
            batches += 1
        metrics = task.evaluate(adapted, val)
        score = metrics[task.primary] if task.maximize else -metrics[task.primary]
        if math.isnan(score):
            score = -math.inf
        record: dict[str, float] = {"epoch": epoch, "train_loss": total / max(1, batches),
                                    "learning_rate": float(scheduler.get_last_lr()[0]),
                  **{f"val_{k}": v for k, v in metrics.items()}}
        result.history.append(record)
        if score > best_score or result.best_epoch == 0:
            best_score, bad_epochs = score, 0
            best_state = snapshot()
            result.best_epoch, result.best_metrics = epoch, metrics
        else:
            bad_epochs += 1
        result.stopped_early = config.patience is not None and bad_epochs >= config.patience
        if checkpoint_path is not None and is_main_process():
            _save_atomic(
                {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                 "best_model": best_state, "best_score": best_score, "best_epoch": result.best_epoch,
                 "best_metrics": result.best_metrics, "history": result.history, "epoch": epoch,
                 "bad_epochs": bad_epochs, "seconds": elapsed + time.perf_counter() - clock,
                 "shuffle_rng": shuffle_generator.get_state(), "torch_rng": torch.get_rng_state(),
                 "stopped_early": result.stopped_early},
                checkpoint_path,
            )
        if progress is not None and is_main_process():
            shown = ", ".join(f"{k} {v:.4f}" for k, v in metrics.items())
            progress(f"epoch {epoch}/{config.epochs}: train loss {record['train_loss']:.4f}, val {shown}")
        if result.stopped_early:
            break
    model.load_state_dict(best_state)
    model.to("cpu")
    result.seconds = elapsed + time.perf_counter() - clock
    if run_dir is not None and is_main_process():
        _save_atomic({"model": best_state, "train_config": asdict(config)}, run_dir / "best_model.pt")
    return result
