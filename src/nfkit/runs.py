"""Run folders: one experiment, its resolved configuration, history, metrics, predictions and plots.

A run folder holds ``config.json`` (everything needed to rebuild it), ``history.csv`` (one row per
epoch), ``metrics.json`` (test metrics, parameters, time, peak memory), ``predictions.csv``,
``best_model.pt``, ``checkpoint.pt`` (for resuming) and PNG plots when matplotlib is installed.
Rerunning the same configuration into the same folder resumes it; another configuration is refused
unless ``overwrite`` is given.
"""

from __future__ import annotations

import csv
import json
import resource
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import torch

import nfkit
from nfkit.data.zoo_format import load_zoo
from nfkit.groups.neurons import Factor, HiddenNeuronGroup
from nfkit.groups.transformer import TransformerFactor, TransformerGroup
from nfkit.spaces.transformer_spec import TransformerSpec
from nfkit.spaces.features import stack
from nfkit.training import TrainConfig, fit, is_main_process, predict

__all__ = ["run_task", "run_generalization", "evaluate_run", "rescaled", "RESCALE_RANGE"]

#: Per-neuron factors of the rescaling test (Monomial-NFN's augmentation range U[1, 10³]).
RESCALE_RANGE = (1.0, 1e3)


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rescaled(data, spec, seed: int = 0):
    """The dataset with every network moved by a function-preserving rescaling, or ``None`` if the architecture has none.

    ReLU nets: hidden neurons scaled by factors from ``RESCALE_RANGE``. Transformers: per-head
    ``GL(d_k) × GL(d_v)`` elements of condition number ≤ 100 and scale in ``RESCALE_RANGE``. The
    functions do not change, so a model that respects the symmetry must predict the same accuracies.
    """
    if isinstance(spec, TransformerSpec):
        scaling = TransformerGroup(
            spec, [TransformerFactor.QUERY_KEY_GL, TransformerFactor.VALUE_OUTPUT_GL], scale_range=RESCALE_RANGE
        )
    elif Factor.POSITIVE_SCALING not in spec.symmetry_group().factors:
        return None
    else:
        scaling = HiddenNeuronGroup(spec.hidden_sizes, [Factor.POSITIVE_SCALING], scale_range=RESCALE_RANGE)
    generator = torch.Generator().manual_seed(seed)
    features = data.features
    scaled = stack([scaling.sample(generator).act(features[i]) for i in range(len(features))])
    return type(data)(scaled, data.labels, data.transform)


def _write_csv(path: Path, rows: list[dict[str, object]]) -> None:
    if not rows:
        return
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def _plot_predictions(path: Path, predicted: torch.Tensor, actual: torch.Tensor, title: str) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, ax = plt.subplots(figsize=(4, 4))
    ax.scatter(actual.numpy(), predicted.numpy(), s=4, alpha=0.5)
    ax.plot([0, 1], [0, 1], color="grey", linewidth=1)
    ax.set_xlabel("true test accuracy")
    ax.set_ylabel("predicted")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def _plot_edits(path: Path, editor, data, task) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    index = torch.arange(min(6, len(data)))
    features, targets = data.features[index], data.labels[index]
    with torch.no_grad():
        before = task._render(features)
        after = task._render(editor.eval()(features))
    side = targets.shape[-1]
    fig, axes = plt.subplots(3, len(index), figsize=(1.2 * len(index), 3.8))
    for column in range(len(index)):
        for row, (image, name) in enumerate(((before, "INR"), (targets.flatten(1), "target"), (after, "edited"))):
            axes[row, column].imshow(image[column].view(side, side).numpy(), cmap="gray", vmin=-1, vmax=1)
            axes[row, column].set_axis_off()
            if column == 0:
                axes[row, column].set_title(name, fontsize=7, loc="left")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


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
    progress: Callable[[str], None] | None = print,
) -> dict[str, object]:
    """Train ``model`` on a task (:data:`nfkit.tasks.TASKS`) over a zoo; write the run folder ``out``; return its metrics."""
    from nfkit.tasks import TASKS

    if task_name not in TASKS:
        raise ValueError(f"unknown task {task_name!r}; available: {', '.join(TASKS)}")
    out = Path(out)
    zoo_path = Path(zoo_path).resolve()
    manifest = json.loads((zoo_path / "manifest.json").read_text())
    config = {
        "task": task_name,
        "zoo": str(zoo_path),
        "zoo_checksum": manifest["files"]["weights.npy"],
        "model": model,
        "options": options or {},
        "augment": augment,
        "train": asdict(train),
        "versions": {"nfkit": nfkit.__version__, "torch": torch.__version__},
    }
    config_path = out / "config.json"
    previous = out.exists() and any(out.iterdir())
    same = previous and config_path.exists() and json.loads(config_path.read_text()) == config
    if previous and not same and not overwrite:
        raise FileExistsError(f"{out} holds another run; pass overwrite=True (--overwrite) or choose another folder")
    zoo = load_zoo(zoo_path)
    torch.manual_seed(train.seed)
    # built before the folder is touched: a bad option leaves an earlier run as it was
    net, task, data = TASKS[task_name](zoo, model, options or {}, augment, train.seed)
    if previous and not same and is_main_process():
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    if is_main_process():
        config_path.write_text(json.dumps(config, indent=1))
    start = time.perf_counter()
    pretraining: dict[str, object] = {}
    if hasattr(net, "pretrain") and not (out / "checkpoint.pt").exists():
        # a model with a self-supervised stage (Inr2Array) learns it first, on the same splits
        pretraining = net.pretrain(data["train"], data["val"], train, progress)
    result = fit(net, task, data["train"], data["val"], train, run_dir=out, progress=progress)
    metrics: dict[str, object] = {
        **pretraining,
        "task": task_name,
        "model": model,
        "parameters": sum(p.numel() for p in net.parameters()),
        "best_epoch": result.best_epoch,
        "epochs_run": len(result.history),
        "train_seconds": round(result.seconds, 2),
        "wall_seconds": round(time.perf_counter() - start, 2),
        "peak_rss_mib": round(_peak_rss_mib(), 1),
        **{f"val_{k}": v for k, v in result.best_metrics.items()},
        **{f"test_{k}": v for k, v in task.evaluate(net, data["test"]).items()},
    }
    if task_name == "generalization":
        scaled = rescaled(data["test"], zoo.spec, seed=train.seed)
        if scaled is not None:
            metrics.update({f"rescaled_test_{k}": v for k, v in task.evaluate(net, scaled).items()})
    if is_main_process():
        _write_csv(out / "history.csv", result.history)
        if task_name == "inr-editing":
            metrics["plot"] = _plot_edits(out / "edits.png", net, data["test"], task)
        else:
            outputs, actual = predict(net, data["test"])
            if task_name == "generalization":
                predicted = torch.sigmoid(outputs.squeeze(-1))
                metrics["plot"] = _plot_predictions(out / "pred_vs_true.png", predicted, actual,
                                                    f"{model}: τ = {metrics['test_kendall_tau']:.3f}")
            else:
                predicted = outputs.argmax(dim=-1)
            _write_csv(out / "predictions.csv", [{"row": int(r), "true": float(a), "predicted": float(p)}
                                                  for r, a, p in zip(zoo.splits["test"], actual, predicted)])
        (out / "metrics.json").write_text(json.dumps(metrics, indent=1))
    return metrics


def run_generalization(zoo_path: str | Path, model: str, out: str | Path, **options: object) -> dict[str, object]:
    """:func:`run_task` for generalization prediction."""
    return run_task("generalization", zoo_path, model, out, **options)  # type: ignore[arg-type]


def evaluate_run(run: str | Path, zoo_path: str | Path | None = None) -> dict[str, float]:
    """Rebuild a finished run's best model and evaluate it on its zoo's test split (and rescaled, for ReLU CNN zoos)."""
    from nfkit.tasks import TASKS

    run = Path(run)
    config = json.loads((run / "config.json").read_text())
    zoo = load_zoo(zoo_path or config["zoo"])
    net, task, data = TASKS[config["task"]](zoo, config["model"], config["options"], False, 0)
    net.load_state_dict(torch.load(run / "best_model.pt", weights_only=True)["model"])
    metrics = {f"test_{k}": v for k, v in task.evaluate(net, data["test"]).items()}
    if config["task"] == "generalization":
        scaled = rescaled(data["test"], zoo.spec)
        if scaled is not None:
            metrics.update({f"rescaled_test_{k}": v for k, v in task.evaluate(net, scaled).items()})
    return metrics
