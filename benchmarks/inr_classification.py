"""INR classification on one generated zoo: every invariant family, one table (a benchmark, not a test).

Trains each family with ``nfkit train --task inr-classification`` defaults on the same zoo and
split, and prints test accuracy, parameters and training seconds (Markdown). Make the zoo first:

    .venv/bin/nfkit zoo generate inr --dataset mnist --init narrow --out zoos/inr-mnist     # 5,000 SIRENs, ~25 min
    .venv/bin/python benchmarks/inr_classification.py --zoo zoos/inr-mnist --out runs/inr-bench
    .venv/bin/python benchmarks/inr_classification.py --zoo zoos/inr-mnist --out runs/inr-bench --models probe statnn
    .venv/bin/nfkit zoo generate inr --dataset mnist --init narrow --views 4 --out zoos/inr-mnist-v4
    .venv/bin/python benchmarks/inr_classification.py --zoo zoos/inr-mnist-v4 --out runs/inr-bench-v4 --epochs 10

Each run folder is resumed if it exists, so an interrupted benchmark continues where it stopped.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from nfkit.models import available, family
from nfkit.tasks import TASKS
from nfkit.tasks.loop import TrainConfig
from nfkit.tasks.runs import run_task
from nfkit.util.table import format_table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--zoo", required=True, help="an INR zoo in any format nfkit train reads")
    parser.add_argument("--out", required=True, help="a folder for the run folders and results.md")
    parser.add_argument("--models", nargs="+", help="families (default: every invariant family that reads MLPs)")
    parser.add_argument("--epochs", type=int, help="default: the task's (40), as `nfkit train` uses; with --views k zoos, 40/k "
                        "gives the same optimizer steps")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    epochs = args.epochs if args.epochs is not None else TASKS["inr-classification"].default_epochs
    models = args.models or [m for m in available("invariant") if "dense" in family(m).spaces]
    out = Path(args.out)
    rows = []
    for model in models:
        print(f"== {model}", flush=True)
        metrics = run_task("inr-classification", args.zoo, model, out / model,
                           train=TrainConfig(epochs=epochs, patience=None, seed=args.seed),
                           progress=lambda line, m=model: print(f"  {m} {line}", flush=True))
        rows.append([model, f"{float(metrics['test_accuracy']):.3f}", f"{int(metrics['parameters']):,}",
                     f"{float(metrics['train_seconds']):.0f}", str(metrics["best_epoch"])])
        (out / "results.json").write_text(json.dumps(rows, indent=1))
    table = format_table(["model", "test accuracy", "parameters", "train s", "best epoch"], rows)
    (out / "results.md").write_text(table + "\n")
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
