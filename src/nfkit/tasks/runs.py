"""Run folders: one experiment, its resolved configuration, history, metrics, predictions and plots.

A run folder holds ``config.json`` (everything needed to rebuild it), ``history.csv`` (one row per
epoch), ``metrics.json`` (test metrics, parameters, time, peak memory), ``predictions.csv``,
``best_model.pt``, ``checkpoint.pt`` (for resuming) and PNG plots when matplotlib is installed.
Rerunning the same configuration into the same folder resumes it; another configuration is refused
unless ``overwrite`` is given. Even then nfkit replaces only a folder it can prove holds one of its
runs (:func:`owned_run`: a run ``config.json`` and nothing but run files); the old run is moved
aside and removed only once the new one has finished. A folder being trained by another process is
refused (:func:`~nfkit.util.files.exclusive_lock`).
"""

from __future__ import annotations

import json
import resource
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

import nfkit
from nfkit.data.formats import open_zoo
from nfkit.data.zoo_format import Zoo
from nfkit.errors import NotOursError, TaskMismatchError, UnknownNameError
from nfkit.tasks.loop import TrainConfig, fit, is_main_process
from nfkit.tasks.pretraining import pretrain
from nfkit.tasks.task import Splits, Task
from nfkit.util.files import atomic_write_text, exclusive_lock, make_dir, make_staging_dir, write_csv_rows
from nfkit.util.progress import say

__all__ = ["run_task", "run_generalization", "evaluate_run", "owned_run", "RUN_FILES"]

#: Every file a run folder can hold (temporaries are these names with a leading dot and a suffix).
RUN_FILES = frozenset({
    "config.json", "history.csv", "metrics.json", "predictions.csv", "best_model.pt", "checkpoint.pt",
    "pred_vs_true.png", "edits.png", "pretraining.json",
})
_CONFIG_KEYS = frozenset({"task", "zoo", "model", "options", "train"})



def _peak_rss_mib() -> float:
    """This process's peak resident memory. ``VmHWM`` belongs to the address space, which ``exec`` renews;
    ``ru_maxrss`` survives ``exec``, so a spawned worker would report its parent's peak."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _is_run_file(name: str) -> bool:
    return name in RUN_FILES or (name.startswith(".") and any(name[1:].startswith(f + ".") for f in RUN_FILES))


def owned_run(path: Path) -> bool:
    """Whether ``path`` is a folder nfkit can prove it wrote as a run: a run ``config.json`` and only run files."""
    try:
        config = json.loads((path / "config.json").read_text())
        entries = list(path.iterdir())
    except (OSError, ValueError):
        return False
    if not isinstance(config, dict) or not _CONFIG_KEYS <= set(config):
        return False
    return all(e.is_file() and not e.is_symlink() and _is_run_file(e.name) for e in entries)


def _trained(path: Path) -> bool:
    """Whether a run folder holds any trained epoch (else it holds only a configuration: nothing to lose)."""
    return any((path / name).exists() for name in ("checkpoint.pt", "best_model.pt", "metrics.json"))


def run_task(
    task_name: str,
    zoo_path: str | Path,
    model: str,
    out: str | Path,
    *,
    options: dict[str, object] | None = None,
    train: TrainConfig = TrainConfig(),
    augment: bool = False,
    overwrite: bool = False,
    progress: Callable[[str], None] | None = say,
    zoo_format: str | None = None,
    activation: str | None = None,
) -> dict[str, object]:
    """Train ``model`` on a task (:data:`nfkit.tasks.TASKS`) over a zoo; write the run folder ``out``; return its metrics.

    The zoo may be in any format :func:`~nfkit.data.formats.open_zoo` reads (detected unless
    ``zoo_format`` names it); ``activation`` keeps one hidden activation's networks of a mixed zoo.

    Everything that can be checked (task, zoo, model, options) is checked before ``out`` is touched.
    ``out`` may be new, empty, the same run (resumed), or, with ``overwrite``, another nfkit run; a
    folder holding anything else is refused with :class:`~nfkit.errors.NotOursError`.
    """
    from nfkit.tasks import TASKS

    if task_name not in TASKS:
        raise UnknownNameError(f"unknown task {task_name!r}; available: {', '.join(TASKS)}")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise NotOursError(f"{out} is a file; --out must be a run folder (new, or one nfkit train wrote)")
    zoo = open_zoo(zoo_path, format=zoo_format, activation=activation)
    empty = [name for name, rows in zoo.splits.items() if len(rows) == 0]
    if empty:
        raise TaskMismatchError(f"the zoo's {' and '.join(empty)} split{'s are' if len(empty) > 1 else ' is'} empty "
                                f"({len(zoo)} rows); training needs nets in train, val and test: use a larger zoo")
    if progress is not None and isinstance(zoo.metadata.get("split"), str):
        progress(f"zoo: {zoo.metadata['split']}")
    task = TASKS[task_name]()
    options = {**task.model_defaults(zoo, model), **(options or {})}  # the user's options win; both recorded
    config = {
        "task": task_name,
        "zoo": str(Path(zoo_path).resolve()),
        "zoo_format": zoo.metadata.get("format", "nfkit"),
        "zoo_checksum": zoo.files.get("weights.npy"),
        "activation": activation,
        "model": model,
        "options": options or {},
        "augment": augment,
        "train": asdict(train),
        "versions": {"nfkit": nfkit.__version__, "torch": torch.__version__},
    }
    torch.manual_seed(train.seed)
    # built before the folder is touched: a bad option leaves an earlier run as it was
    net, data = task.setup(zoo, model, options, augment=augment, seed=train.seed)
    distributed = dist.is_available() and dist.is_initialized()
    if not is_main_process():
        dist.barrier()  # rank 0 prepares the folder first
        return _train_in(out, config, net, task, data, zoo, train, None, progress)
    with exclusive_lock(out, f"run folder {out}"):
        retired = _prepare_run_folder(out, config, overwrite)
        if distributed:
            dist.barrier()
        metrics = _train_in(out, config, net, task, data, zoo, train, retired, progress)
    return metrics


def _prepare_run_folder(out: Path, config: dict[str, object], overwrite: bool) -> Path | None:
    """Make ``out`` ready for ``config``; return where an earlier run was moved aside (removed once this one ends)."""
    config_path = out / "config.json"
    previous = out.exists() and any(out.iterdir())
    same = previous and config_path.is_file() and _read_json(config_path) == config
    retired = None
    if previous and not same:
        if not owned_run(out):
            raise NotOursError(
                f"{out} is not empty and does not hold an nfkit run (files nfkit did not write are in it); "
                f"nfkit train replaces only its own runs, even with --overwrite: choose another folder"
            )
        if _trained(out) and not overwrite:
            raise FileExistsError(f"{out} holds another run; pass overwrite=True (--overwrite) or choose another folder")
        # moved aside, not deleted: a kill now leaves the earlier run recoverable beside the new one
        retired = make_staging_dir(out.resolve().parent, f".{out.resolve().name}.replaced-")
        out.resolve().replace(retired / "run")
    make_dir(out)
    if not same:
        atomic_write_text(config_path, json.dumps(config, indent=1))
    return retired


def _read_json(path: Path) -> object:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _train_in(out: Path, config: dict[str, object], net: nn.Module, task: Task, data: Splits, zoo: Zoo, train: TrainConfig,
              retired: Path | None, progress: Callable[[str], None] | None) -> dict[str, object]:
    start = time.perf_counter()
    pretraining: dict[str, object] = {}
    pretraining_path = out / "pretraining.json"
    if getattr(net, "pretraining", None) is not None:
        # a model with a self-supervised stage (Inr2Array) learns it first, on the same splits; a resumed
        # run restores the pretrained weights from its checkpoint and the record from pretraining.json
        if not (out / "checkpoint.pt").exists():
            labelled = None if progress is None else (lambda line: progress(f"pretraining {line}"))
            pretraining = pretrain(net, data["train"], data["val"], train, labelled, render_size=zoo.image_side)
            pretraining["pretrain_seconds"] = round(time.perf_counter() - start, 2)
            if is_main_process():
                atomic_write_text(pretraining_path, json.dumps(pretraining, indent=1))
        else:
            loaded = _read_json(pretraining_path)
            pretraining = loaded if isinstance(loaded, dict) else {}
    result = fit(net, task, data["train"], data["val"], train, run_dir=out, progress=progress)
    pretrain_seconds = pretraining.get("pretrain_seconds", 0.0)
    seconds = result.seconds + (float(pretrain_seconds) if isinstance(pretrain_seconds, (int, float)) else 0.0)
    metrics: dict[str, object] = {
        **pretraining,
        "task": task.name,
        "model": config["model"],
        "parameters": sum(p.numel() for p in net.parameters()),
        "best_epoch": result.best_epoch,
        "epochs_run": len(result.history),
        "train_seconds": round(seconds, 2),
        "wall_seconds": round(time.perf_counter() - start, 2),
        "peak_rss_mib": round(_peak_rss_mib(), 1),
        **{f"val_{k}": v for k, v in result.best_metrics.items()},
        **{f"test_{k}": v for k, v in task.evaluate(net, data["test"]).items()},
        **task.extra_metrics(net, data, zoo, train.seed),
    }
    if is_main_process():
        write_csv_rows(out / "history.csv", result.history)
        metrics.update(task.write_outputs(out, net, data, zoo, metrics))
        atomic_write_text(out / "metrics.json", json.dumps(metrics, indent=1))
        if retired is not None:
            shutil.rmtree(retired, ignore_errors=True)  # the earlier run, proven ours, now replaced
    return metrics


def run_generalization(zoo_path: str | Path, model: str, out: str | Path, **options: Any) -> dict[str, object]:
    """:func:`run_task` for generalization prediction (the same keyword options)."""
    return run_task("generalization", zoo_path, model, out, **options)


def evaluate_run(run: str | Path, zoo_path: str | Path | None = None) -> dict[str, float]:
    """Rebuild a finished run's best model and evaluate it on its zoo's test split (and rescaled, as in training)."""
    from nfkit.tasks import TASKS

    run = Path(run)
    if not run.is_dir():
        raise NotOursError(f"{run} is not a run folder; give the --out of an 'nfkit train' run")
    config = _read_json(run / "config.json")
    if not isinstance(config, dict) or not _CONFIG_KEYS <= set(config) or config.get("task") not in TASKS:
        raise NotOursError(f"{run / 'config.json'} is missing or is not an nfkit run configuration")
    if not (run / "best_model.pt").is_file():
        raise NotOursError(f"{run} has no best_model.pt: the run has not finished an epoch; rerun its nfkit train command")
    activation = config.get("activation")
    zoo = open_zoo(zoo_path or config["zoo"], format=None if zoo_path else config.get("zoo_format"),
                   activation=activation if isinstance(activation, str) else None)
    seed = int(config["train"].get("seed", 0))
    task = TASKS[config["task"]]()
    net, data = task.setup(zoo, config["model"], config["options"], augment=False, seed=seed)
    net.load_state_dict(torch.load(run / "best_model.pt", weights_only=True)["model"])
    metrics = {f"test_{k}": v for k, v in task.evaluate(net, data["test"]).items()}
    # the same seed as at the end of training, so extra metrics (rescaled nets) match metrics.json
    metrics.update(task.extra_metrics(net, data, zoo, seed))
    return metrics
