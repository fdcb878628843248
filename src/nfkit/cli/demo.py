"""``nfkit demo``: the main job on built-in data.

1. Generate (or reuse) a ReLU CNN zoo on scikit-learn's digits.
2. Train ``mlp``, ``statnn``, ``np``, ``hnp``, ``monomial`` and ``magep`` to predict each net's test
   accuracy from its weights, each in its own process (so that its peak memory is its own).
3. Print one table (parameters, Kendall τ, R², training time, peak memory), then evaluate the same
   trained models on the test nets rescaled by random per-neuron factors from U[1, 10³]: a change
   that leaves every ReLU net's function, and so its accuracy, exactly as it was. Scale-invariant
   models keep τ; the others do not.
"""

from __future__ import annotations

import csv
import json
import time
from collections.abc import Callable
from pathlib import Path

import torch

from nfkit.data.generators.cnn_zoo import CNNZooConfig, generate_cnn_zoo
from nfkit.data.zoo_format import load_zoo
from nfkit.tasks.loop import TrainConfig
from nfkit.util.processes import worker_pool
from nfkit.util.progress import say as say_line
from nfkit.util.table import format_table

__all__ = ["DEMO_MODELS", "run_demo"]

DEMO_MODELS = ("mlp", "statnn", "np", "hnp", "monomial", "magep")


def _train_one(zoo: str, model: str, out: str, train: TrainConfig) -> dict[str, object]:
    from nfkit.tasks.runs import run_generalization
    from nfkit.util.progress import say

    torch.set_num_threads(2)
    return run_generalization(zoo, model, out, train=train, progress=lambda line: say(f"  {model:<9} {line}"))


def _number(value: object) -> float:
    return float(value) if isinstance(value, (int, float)) else float("nan")


def _plot(path: Path, rows: list[dict[str, object]]) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    names = [str(r["model"]) for r in rows]
    x = range(len(rows))
    fig, ax = plt.subplots(figsize=(6, 3.2))
    ax.bar([i - 0.2 for i in x], [_number(r["test_kendall_tau"]) for r in rows], 0.4, label="test nets")
    ax.bar([i + 0.2 for i in x], [_number(r.get("rescaled_test_kendall_tau")) for r in rows], 0.4,
           label="rescaled ×U[1, 10³] per neuron")
    ax.set_xticks(list(x), names)
    ax.set_ylabel("Kendall τ")
    ax.axhline(0, color="grey", linewidth=0.8)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def run_demo(
    out: str | Path = "nfkit-demo",
    *,
    size: int = 800,
    epochs: int = 12,
    models: tuple[str, ...] = DEMO_MODELS,
    seed: int = 0,
    say: Callable[[str], None] = say_line,
) -> list[dict[str, object]]:
    """Run the demo into ``out`` (the zoo is cached there); return one row of metrics per model."""
    out = Path(out)
    start = time.perf_counter()
    zoo_dir = out / "zoo-cnn-relu"
    config = CNNZooConfig(size=size, seed=seed, epochs=8, checkpoints=(2, 8), chunk=100, activations=("relu",))
    if (zoo_dir / "manifest.json").exists() and load_zoo(zoo_dir, verify=False).metadata.get("generator") == config.to_dict():
        say(f"reusing the zoo in {zoo_dir}")
    else:
        say(f"generating a zoo of {size} ReLU CNNs on digits into {zoo_dir} …")
        generate_cnn_zoo(zoo_dir, config, workers=2, overwrite=True, progress=True)
    zoo = load_zoo(zoo_dir)
    say(f"zoo: {len(zoo)} networks (train {len(zoo.splits['train'])}, val {len(zoo.splits['val'])}, "
        f"test {len(zoo.splits['test'])}), {time.perf_counter() - start:.0f} s so far")
    train = TrainConfig(epochs=epochs, batch_size=32, learning_rate=1e-3, patience=4, seed=seed)
    rows: list[dict[str, object]] = []
    for number, model in enumerate(models, start=1):
        say(f"training {model} ({number}/{len(models)}), {time.perf_counter() - start:.0f} s so far")
        # a process per model, so that its peak memory is its own; it dies with this one
        with worker_pool(1) as pool:
            metrics = pool.submit(_train_one, str(zoo_dir), model, str(out / "runs" / model), train).result()
        rows.append(metrics)
        say(f"  {model:<9} τ {metrics['test_kendall_tau']:.3f}  rescaled τ {metrics.get('rescaled_test_kendall_tau', float('nan')):.3f}"
            f"  ({metrics['train_seconds']:.0f} s)")
    headers = ["model", "parameters", "Kendall τ", "R²", "train s", "peak MiB", "τ rescaled", "R² rescaled"]
    table = [
        [r["model"], f"{r['parameters']:,}", f"{r['test_kendall_tau']:.3f}", f"{r['test_r2']:.3f}", f"{r['train_seconds']:.0f}",
         f"{r['peak_rss_mib']:.0f}", f"{r.get('rescaled_test_kendall_tau', float('nan')):.3f}",
         f"{r.get('rescaled_test_r2', float('nan')):.3f}"]
        for r in rows
    ]
    text = format_table(headers, table)
    say("\n" + text)
    say(f"\n(test set of {len(zoo.splits['test'])} nets; 'rescaled': the same nets with hidden neurons scaled by U[1, 10³], "
        f"functions unchanged)\ntotal {time.perf_counter() - start:.0f} s; tables and plots in {out}")
    (out / "results.txt").write_text(text + "\n")
    (out / "results.json").write_text(json.dumps(rows, indent=1))
    with (out / "results.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(headers)
        writer.writerows(table)
    _plot(out / "kendall_tau.png", rows)
    return rows
