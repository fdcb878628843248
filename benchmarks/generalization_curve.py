"""Generalization prediction against the number of training nets: a learning curve (a benchmark, not a test).

Keeps a random fraction of the zoo's training nets (every checkpoint of a kept net; the same nets for
every model and seed, drawn from ``--subset-seed``), leaves val and test as they are, trains each
family with the task's defaults and prints test Kendall τ per fraction, mean ± std over seeds. When two
families' curves differ in slope, the table says how the ordering would move with more nets.

    .venv/bin/nfkit zoo generate cnn --out zoos/cnn-mnist --size 2000 --dataset mnist --epochs 4
    .venv/bin/python benchmarks/generalization_curve.py --zoo zoos/cnn-mnist --out runs/cnn-curve \\
        --models hnp statnn --fractions 0.25 0.5 1 --seeds 0 1
    .venv/bin/python benchmarks/generalization_curve.py --zoo zoos/gru --out runs/gru-curve --models unf statnn \
        --option unf:statistics=true --augment --tag=-aug --fractions 0.25 0.5 --seeds 0 1

The reduced zoos are written under ``--out`` (the full zoo is read where it is); run folders are
reused, so a killed run resumes.
"""

from __future__ import annotations

import argparse
import json
import statistics
from dataclasses import replace
from pathlib import Path

import numpy as np

from nfkit.data.zoo_format import load_zoo, save_zoo
from nfkit.tasks.loop import TrainConfig
from nfkit.tasks.runs import run_task
from nfkit.util.table import format_table


def reduced_zoo(zoo_path: Path, fraction: float, out: Path, subset_seed: int) -> Path:
    """``zoo_path`` with only ``fraction`` of its training nets in the train split (written once to ``out``)."""
    if fraction >= 1:
        return zoo_path
    path = out / f"zoo-train{fraction:g}"
    if path.exists():
        return path
    zoo = load_zoo(zoo_path)
    train = zoo.splits["train"]
    nets = zoo.table["net_id"][train] if "net_id" in zoo.table else train
    unique = np.unique(nets)
    kept = np.random.default_rng(subset_seed).choice(unique, size=max(1, round(fraction * len(unique))), replace=False)
    splits = {**zoo.splits, "train": train[np.isin(nets, kept)]}
    metadata = {**zoo.metadata, "train_subset": {"fraction": fraction, "nets": int(len(kept)), "seed": subset_seed}}
    return save_zoo(replace(zoo, splits=splits, metadata=metadata), path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--zoo", required=True, type=Path)
    parser.add_argument("--out", required=True, type=Path, help="a folder for the reduced zoos and run folders")
    parser.add_argument("--models", nargs="+", default=["hnp", "statnn"])
    parser.add_argument("--fractions", type=float, nargs="+", default=[0.25, 0.5, 1.0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--subset-seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--option", action="append", default=[], help="MODEL:KEY=JSON, e.g. unf:statistics=true")
    parser.add_argument("--augment", action="store_true", help="train every model with symmetry augmentation")
    parser.add_argument("--tag", default="", help="appended to the run folders' model names (other options, same --out)")
    args = parser.parse_args()
    options: dict[str, dict[str, object]] = {}
    for item in args.option:
        model, _, assignment = item.partition(":")
        key, _, value = assignment.partition("=")
        options.setdefault(model, {})[key] = json.loads(value)
    if any(not 0 < f <= 1 for f in args.fractions):
        parser.error("--fractions must lie in (0, 1]")
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    for fraction in args.fractions:
        zoo = reduced_zoo(args.zoo, fraction, args.out, args.subset_seed)
        for model in args.models:
            taus = []
            for seed in args.seeds:
                metrics = run_task("generalization", zoo, model, args.out / f"{model}{args.tag}-train{fraction:g}-seed{seed}",
                                   options=options.get(model), train=TrainConfig(epochs=args.epochs, seed=seed),
                                   augment=args.augment, progress=None)
                taus.append(float(metrics["test_kendall_tau"]))  # type: ignore[arg-type]
                print(f"fraction {fraction:g} {model} seed {seed}: τ = {taus[-1]:.4f}", flush=True)
            spread = statistics.stdev(taus) if len(taus) > 1 else 0.0
            rows.append([f"{fraction:g}", model, f"{statistics.mean(taus):.4f} ± {spread:.4f}",
                         " ".join(f"{t:.4f}" for t in taus)])
    print(format_table(["train fraction", "model", "test Kendall τ (mean ± std)", "per seed"], rows))


if __name__ == "__main__":
    main()
