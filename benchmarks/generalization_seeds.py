"""Generalization prediction over several seeds: test Kendall τ per family, mean ± std (a benchmark, not a test).

Trains every named family on one zoo with each seed (the model's initialisation and data order change,
the zoo's split does not) and prints one table. Run folders are reused, so a killed run resumes.

    .venv/bin/nfkit zoo generate rnn --out zoos/gru --size 1000
    .venv/bin/python benchmarks/generalization_seeds.py --zoo zoos/gru --out runs/gru --models unf statnn mlp
    .venv/bin/python benchmarks/generalization_seeds.py --zoo zoos/cnn-mnist --out runs/cnn-mnist --models hnp np statnn \\
        --option hnp:hidden_channels=[32,32,32]
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from nfkit.tasks.loop import TrainConfig
from nfkit.tasks.runs import run_task
from nfkit.util.table import format_table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--zoo", required=True)
    parser.add_argument("--out", required=True, help="a folder of run folders (model-seedK)")
    parser.add_argument("--models", nargs="+", default=["unf", "statnn", "mlp"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--option", action="append", default=[], help="MODEL:KEY=JSON, e.g. unf:hidden_channels=[16,16,16]")
    args = parser.parse_args()
    options: dict[str, dict[str, object]] = {}
    for item in args.option:
        model, _, assignment = item.partition(":")
        key, _, value = assignment.partition("=")
        options.setdefault(model, {})[key] = json.loads(value)
    rows = []
    for model in args.models:
        taus, seconds, params = [], [], 0
        for seed in args.seeds:
            metrics = run_task("generalization", args.zoo, model, Path(args.out) / f"{model}-seed{seed}",
                               options=options.get(model), train=TrainConfig(epochs=args.epochs, seed=seed), progress=None)
            taus.append(float(metrics["test_kendall_tau"]))  # type: ignore[arg-type]
            seconds.append(float(metrics.get("train_seconds", 0.0)))  # type: ignore[arg-type]
            params = int(metrics.get("parameters", 0))  # type: ignore[call-overload]
            print(f"{model} seed {seed}: τ = {taus[-1]:.4f}", flush=True)
        spread = statistics.stdev(taus) if len(taus) > 1 else 0.0
        rows.append([model, f"{statistics.mean(taus):.4f} ± {spread:.4f}", " ".join(f"{t:.4f}" for t in taus),
                     f"{params:,}", f"{statistics.mean(seconds):.0f}"])
    print(format_table(["model", "test Kendall τ (mean ± std)", "per seed", "parameters", "train s (mean)"], rows))


if __name__ == "__main__":
    main()
