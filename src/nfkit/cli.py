"""The ``nfkit`` command line."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

__all__ = ["main"]


def _check(args: argparse.Namespace) -> int:
    from nfkit.check import ARCHITECTURES, format_rows, run_checks
    from nfkit.models import available

    models = args.models or available()
    unknown = sorted(set(models) - set(available())) + sorted(set(args.architectures or []) - set(ARCHITECTURES))
    if unknown:
        print(f"nfkit check: unknown model or architecture: {', '.join(unknown)}", file=sys.stderr)
        return 2
    rows = run_checks(models, args.architectures, samples=args.samples, seed=args.seed)
    print(format_rows(rows))
    failed = [r for r in rows if not r.passed]
    skipped = [r for r in rows if not r.applicable]
    print(f"\n{len(rows) - len(failed) - len(skipped)} passed, {len(failed)} failed, {len(skipped)} not applicable")
    return 1 if failed else 0


def _params(args: argparse.Namespace) -> int:
    from nfkit.params import format_parameter_rows

    print(format_parameter_rows(args.architecture, args.hidden_channels))
    return 0


def _shard(text: str) -> tuple[int, int]:
    try:
        index, count = (int(x) for x in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--shard takes i/n, e.g. 0/2; got {text!r}") from None
    if not 0 <= index < count:
        raise argparse.ArgumentTypeError(f"--shard {text}: need 0 <= i < n")
    return index, count


def _default_workers() -> int:
    import os

    if "WORLD_SIZE" in os.environ:  # under torchrun every rank is already a process
        return 1
    return max(1, min(2, os.cpu_count() or 1))


def _zoo_generate(args: argparse.Namespace) -> int:
    options = {"shard": args.shard, "workers": args.workers, "overwrite": args.overwrite}
    try:
        if args.kind == "cnn":
            from nfkit.data.cnn_zoo import CNNZooConfig, generate_cnn_zoo

            epochs = args.epochs or 8
            config = CNNZooConfig(
                size=args.size or 2000, seed=args.seed, epochs=epochs,
                checkpoints=tuple(args.checkpoints or (1, max(1, epochs // 2), epochs)),
                chunk=args.chunk or 200, activations=tuple(args.activations or ("relu", "tanh")),
            )
            result = generate_cnn_zoo(args.out, config, **options)
        elif args.kind == "inr":
            from nfkit.data.inr_zoo import INRZooConfig, generate_inr_zoo

            config = INRZooConfig(size=args.size or 1797, seed=args.seed, steps=args.steps, chunk=args.chunk or 200,
                                  shared_init=args.shared_init)
            result = generate_inr_zoo(args.out, config, **options)
        elif args.kind == "transformer":
            from nfkit.data.transformer_zoo import TransformerZooConfig, generate_transformer_zoo

            epochs = args.epochs or 30
            config = TransformerZooConfig(
                size=args.size or 1000, seed=args.seed, epochs=epochs, chunk=args.chunk or 100,
                checkpoints=tuple(args.checkpoints or (max(1, epochs // 3), epochs)), dataset=args.dataset,
                blocks=args.blocks, activations=tuple(args.activations or ("relu", "gelu")),
            )
            result = generate_transformer_zoo(args.out, config, **options)
        else:
            print(f"nfkit zoo generate: unknown kind {args.kind!r}; available: cnn, inr, transformer", file=sys.stderr)
            return 2
    except (FileExistsError, ValueError) as error:
        print(f"nfkit zoo generate: {error}", file=sys.stderr)
        return 1
    print(result if result is not None else "shard finished; the zoo is merged when the last shard finishes")
    return 0


def _zoo_info(args: argparse.Namespace) -> int:
    import numpy as np

    from nfkit.data.zoo_format import load_zoo

    zoo = load_zoo(args.path)
    print(f"{args.path}: {zoo.kind} zoo, {len(zoo)} rows, {zoo.spec.describe()}")
    print("splits: " + ", ".join(f"{k} {len(v)}" for k, v in zoo.splits.items()))
    for name in ("test_accuracy", "train_accuracy"):
        if name in zoo.table:
            q = np.quantile(zoo.table[name].astype(float), [0, 0.25, 0.5, 0.75, 1])
            print(f"{name}: min {q[0]:.3f}  p25 {q[1]:.3f}  median {q[2]:.3f}  p75 {q[3]:.3f}  max {q[4]:.3f}")
    return 0


def _train(args: argparse.Namespace) -> int:
    from nfkit.errors import UnknownOptionError
    from nfkit.runs import run_task
    from nfkit.training import TrainConfig

    _maybe_init_distributed()
    try:
        options = _model_options(args.option)
    except ValueError as error:
        print(f"nfkit train: {error}", file=sys.stderr)
        return 2
    if args.hidden_channels:
        if "hidden_channels" in options:
            print("nfkit train: hidden channels given twice (--hidden-channels and --option hidden_channels); give one",
                  file=sys.stderr)
            return 2
        options["hidden_channels"] = args.hidden_channels
    config = TrainConfig(
        epochs=args.epochs, batch_size=args.batch_size, learning_rate=args.lr, weight_decay=args.weight_decay,
        patience=args.patience, seed=args.seed, compile=args.compile,
    )
    try:
        metrics = run_task(args.task, args.zoo, args.model, args.out, options=options, train=config,
                           augment=args.augment, overwrite=args.overwrite)
    except (FileExistsError, ValueError, UnknownOptionError) as error:
        print(f"nfkit train: {error}", file=sys.stderr)
        return 1
    from nfkit.training import is_main_process

    if is_main_process():
        _print_metrics(metrics)
    return 0


def _model_options(pairs: list[str] | None) -> dict[str, object]:
    """``["statistics=true", "head_hidden=[256,256]"]`` → keyword options (values read as JSON, else text)."""
    options: dict[str, object] = {}
    for pair in pairs or []:
        key, sep, text = pair.partition("=")
        if not sep or not key.isidentifier():
            raise ValueError(f"--option takes KEY=VALUE with a Python identifier as KEY, got {pair!r}")
        try:
            options[key] = json.loads(text)
        except json.JSONDecodeError:
            options[key] = text
    return options


def _maybe_init_distributed() -> None:
    import os

    import torch.distributed as dist

    if "WORLD_SIZE" in os.environ and int(os.environ["WORLD_SIZE"]) > 1 and not dist.is_initialized():
        dist.init_process_group("gloo")


def _print_metrics(metrics: dict[str, object]) -> None:
    from nfkit.table import format_table

    rows = [[k, f"{v:.4f}" if isinstance(v, float) else v] for k, v in metrics.items()]
    print(format_table(["metric", "value"], rows))


def _eval(args: argparse.Namespace) -> int:
    from nfkit.runs import evaluate_run

    _print_metrics(evaluate_run(args.run_dir, args.zoo))
    return 0


def _demo(args: argparse.Namespace) -> int:
    from nfkit.demo import DEMO_MODELS, run_demo

    run_demo(args.out, size=args.size, epochs=args.epochs, models=tuple(args.models or DEMO_MODELS), seed=args.seed)
    return 0


def _bench(args: argparse.Namespace) -> int:
    from nfkit.bench_report import run_bench

    options = {"reps": 3, "widths": (32, 128, 512), "depths": (1, 4)} if args.quick else {}
    options.update({k: v for k, v in (("reps", args.reps), ("widths", args.widths), ("depths", args.depths)) if v})
    try:
        run_bench(args.out, models=args.models, architectures=[] if args.growth_only else args.architectures, batch=args.batch, channels=args.channels,
                  growth=not args.no_growth, device=args.device, timeout=args.timeout, overwrite=args.overwrite, **options)
    except FileExistsError as err:
        print(f"nfkit bench: {err}", file=sys.stderr)
        return 2
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``nfkit`` command."""
    parser = argparse.ArgumentParser(prog="nfkit", description="Neural functional networks on the weights of networks.")
    sub = parser.add_subparsers(dest="command", required=True)
    check = sub.add_parser("check", help="check the declared symmetry of every registered model (float64)")
    check.add_argument("--models", nargs="+", help="model families to check (default: all registered)")
    check.add_argument("--architectures", nargs="+", help="architectures to check on (default: all)")
    check.add_argument("--samples", type=int, default=3, help="group elements drawn per check")
    check.add_argument("--seed", type=int, default=0)
    check.set_defaults(run=_check)

    from nfkit.architectures import REFERENCE_ARCHITECTURES

    params = sub.add_parser("params", help="parameter counts of every registered model on a reference architecture")
    params.add_argument("--architecture", choices=sorted(REFERENCE_ARCHITECTURES), default="small-cnn-zoo")
    params.add_argument("--hidden-channels", type=int, nargs="+", help="the same widths for every family")
    params.set_defaults(run=_params)

    zoo = sub.add_parser("zoo", help="generate and inspect model zoos")
    zoo_sub = zoo.add_subparsers(dest="zoo_command", required=True)
    generate = zoo_sub.add_parser("generate", help="train a zoo (resumable; shardable with --shard or torchrun)")
    generate.add_argument("kind", help="cnn (Small-CNN-Zoo nets on digits), inr (one SIREN per digit image) or "
                          "transformer (Small-Transformer-Zoo-style encoders on digit patches or synthetic text)")
    generate.add_argument("--out", required=True, help="the zoo folder to create")
    generate.add_argument("--size", type=int, help="number of networks (cnn: 2000, inr: all 1797 images, transformer: 1000)")
    generate.add_argument("--seed", type=int, default=0)
    generate.add_argument("--chunk", type=int, help="networks trained together, the unit of resuming (200; transformer 100)")
    generate.add_argument("--epochs", type=int, help="cnn, transformer: training epochs (8, 30)")
    generate.add_argument("--checkpoints", type=int, nargs="+",
                          help="cnn, transformer: epochs to store (cnn: 1, epochs/2, epochs; transformer: epochs/3, epochs)")
    generate.add_argument("--activations", nargs="+", choices=["relu", "tanh", "gelu"],
                          help="cnn: relu tanh (both by default); transformer FFN: relu gelu (both by default)")
    generate.add_argument("--dataset", default="digits", choices=["digits", "topics"],
                          help="transformer: digits (8×8 images, 2×2 patches) or topics (synthetic text)")
    generate.add_argument("--blocks", type=int, default=1, help="transformer: encoder blocks")
    generate.add_argument("--steps", type=int, default=500, help="inr: Adam steps per SIREN")
    generate.add_argument("--shared-init", action="store_true",
                          help="inr: start every SIREN from one common initialisation (weights then encode the image)")
    generate.add_argument("--shard", type=_shard, help="i/n: do every n-th chunk starting at i (default: torchrun rank)")
    generate.add_argument("--workers", type=int, default=_default_workers(), help="local processes (default: 2 or fewer cores)")
    generate.add_argument("--overwrite", action="store_true", help="replace an existing zoo folder")
    generate.set_defaults(run=_zoo_generate)
    info = zoo_sub.add_parser("info", help="summarise a zoo folder (verifies its checksums)")
    info.add_argument("path")
    info.set_defaults(run=_zoo_info)

    train = sub.add_parser("train", help="train a model on a task over a zoo (torchrun-ready)")
    train.add_argument("--task", default="generalization", choices=["generalization", "inr-classification", "inr-editing"],
                       help="generalization (CNN or transformer zoo), inr-classification or inr-editing (INR zoo)")
    train.add_argument("--zoo", required=True, help="an nfkit zoo folder (nfkit zoo generate cnn|inr|transformer)")
    train.add_argument("--model", required=True, help="a registered model family (nfkit check lists them)")
    train.add_argument("--out", required=True, help="the run folder (resumed if it holds the same run)")
    train.add_argument("--hidden-channels", type=int, nargs="+")
    train.add_argument("--option", action="append", metavar="KEY=VALUE",
                       help="a model option, value as JSON (repeatable): --option statistics=true --option head_hidden=[256,256]")
    train.add_argument("--epochs", type=int, default=20)
    train.add_argument("--batch-size", type=int, default=32)
    train.add_argument("--lr", type=float, default=1e-3)
    train.add_argument("--weight-decay", type=float, default=0.01)
    train.add_argument("--patience", type=int, default=5)
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--augment", action="store_true", help="apply random elements of the model's group to training nets")
    train.add_argument("--compile", action="store_true", help="torch.compile the model")
    train.add_argument("--overwrite", action="store_true", help="replace a different run in --out")
    train.set_defaults(run=_train)

    evaluate = sub.add_parser("eval", help="evaluate a finished run on its zoo's test split (and rescaled nets)")
    evaluate.add_argument("--run", dest="run_dir", required=True, help="a run folder written by nfkit train")
    evaluate.add_argument("--zoo", help="another zoo of the same architecture")
    evaluate.set_defaults(run=_eval)

    from nfkit.bench import BENCH_ARCHITECTURES

    bench = sub.add_parser("bench", help="time and memory of every model and of nfn 0.1.2 (pip install 'nfkit[bench]')")
    bench.add_argument("--models", nargs="+", help="families, nfn-np, nfn-hnp, 'channel-mixing floor' (default: all)")
    bench.add_argument("--architectures", nargs="+", default=list(BENCH_ARCHITECTURES.values()),
                       help="reference architectures or mlp:a-b-c (default: SIREN, Small CNN Zoo, MLP 784-64-64-10)")
    bench.add_argument("--batch", type=int, default=32)
    bench.add_argument("--channels", type=int, default=32)
    bench.add_argument("--reps", type=int, help="timed repetitions (5; --quick 3)")
    bench.add_argument("--widths", type=int, nargs="+", help="growth sweep widths (32 … 1024)")
    bench.add_argument("--depths", type=int, nargs="+", help="growth sweep hidden layers (1 2 4 8)")
    bench.add_argument("--no-growth", action="store_true", help="only the comparison table")
    bench.add_argument("--growth-only", action="store_true", help="only the growth sweeps")
    bench.add_argument("--quick", action="store_true", help="fewer repetitions and sweep points")
    bench.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    bench.add_argument("--timeout", type=float, default=600.0, help="seconds per measurement")
    bench.add_argument("--out", help="folder for bench.md, bench.jsonl and scaling.png")
    bench.add_argument("--overwrite", action="store_true", help="replace those files if they exist")
    bench.set_defaults(run=_bench)

    demo = sub.add_parser("demo", help="the main job: zoo, six models, Kendall τ table, rescaling test")
    demo.add_argument("--out", default="nfkit-demo")
    demo.add_argument("--size", type=int, default=800, help="networks in the zoo")
    demo.add_argument("--epochs", type=int, default=12)
    demo.add_argument("--models", nargs="+")
    demo.add_argument("--seed", type=int, default=0)
    demo.set_defaults(run=_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``nfkit`` command; returns the exit status."""
    args = build_parser().parse_args(argv)
    return int(args.run(args))


if __name__ == "__main__":
    sys.exit(main())
