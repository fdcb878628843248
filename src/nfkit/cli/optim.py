"""``nfkit optim meta-train`` and ``nfkit optim eval``: learned optimizers from the command line."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

from nfkit.cli.options import init_distributed_from_env, positive_float, positive_int
from nfkit.errors import InvalidOptionError

__all__ = ["add_optim_commands"]

_EVAL_FILES = {"results.json", "results.md", "curves.png"}


def _meta_train(args: argparse.Namespace) -> int:
    import torch

    from nfkit.optim.meta import MetaConfig, meta_train
    from nfkit.util.progress import say

    config = MetaConfig(
        tasks=args.tasks, update=args.update, hidden_channels=tuple(args.hidden_channels), iterations=args.iterations,
        pairs=args.pairs, truncation=args.truncation, horizon=args.horizon, sigma=args.sigma, meta_lr=args.meta_lr,
        estimator=args.estimator, seed=args.seed, checkpoint_every=args.checkpoint_every, learning_rate=args.initial_lr,
    )
    torch.set_num_threads(1)  # tiny networks: one thread per process is fastest, and torchrun adds processes
    init_distributed_from_env()
    result = meta_train(args.out, config, progress=say)
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0:
        print(f"wrote {result.path} (final mean training loss {result.losses[-1]:.4f}; "
              f"this process ran {result.seconds:.0f} s); evaluate it with: nfkit optim eval --optimizer {result.path}")
    return 0


def _named(specs: list[str]) -> dict[str, str]:
    named: dict[str, str] = {}
    for spec in specs:
        name, _, path = spec.rpartition("=") if "=" in spec else ("", "", spec)
        name = name or Path(path).parent.name or Path(path).stem
        if name in named:
            raise InvalidOptionError(f"two optimizers are named {name!r}; name them with NAME=PATH")
        named[name] = path
    return named


def _eval(args: argparse.Namespace) -> int:
    import torch

    from nfkit.errors import NotOursError
    from nfkit.optim.evaluate import evaluate
    from nfkit.optim.inner import HELD_OUT
    from nfkit.util.files import atomic_write_bytes, atomic_write_text, make_dir
    from nfkit.util.progress import say
    from nfkit.util.table import format_table

    learned = _named(args.optimizer)
    out = Path(args.out) if args.out else None
    if out is not None:
        if out.exists() and (not out.is_dir() or any(e.name not in _EVAL_FILES for e in out.iterdir())):
            raise NotOursError(f"{out} holds files nfkit optim eval did not write (or is a file); choose another folder")
    torch.set_num_threads(1)
    groups = {name: HELD_OUT[name][: args.seeds] for name in args.tasks}
    report = evaluate(groups, learned, steps=args.steps, every=args.every, progress=say)
    text = []
    summary: dict[str, Any] = {}
    for group, results in report.items():
        adam_seconds = sum(c.seconds_per_step for c in results[0].curves) / len(results[0].curves)
        rows = [r.summary(adam_seconds) for r in results]
        summary[group] = {"tasks": [t.describe() for t in groups[group]], "results": rows}
        text.append(f"{group}: {groups[group][0].describe().rsplit(' seed', 1)[0]}, {len(groups[group])} seeds, "
                    f"{args.steps} steps\n" + format_table(list(rows[0]), [list(r.values()) for r in rows]))
    print("\n\n".join(text))
    if out is not None:
        make_dir(out)
        atomic_write_text(out / "results.md", "\n\n".join(text) + "\n")
        atomic_write_text(out / "results.json", json.dumps(summary, indent=1))
        png = _plot(report, args.every)
        if png is not None:
            atomic_write_bytes(out / "curves.png", png)
        print(f"wrote {out / 'results.md'}, results.json" + (", curves.png" if png else " (pip install 'nfkit[plots]' for curves.png)"))
    return 0


def _plot(report: Any, every: int) -> bytes | None:
    import io

    from nfkit.util.plots import pyplot

    plt = pyplot()
    if plt is None:
        return None
    figure, axes = plt.subplots(1, len(report), figsize=(5 * len(report), 4), squeeze=False)
    for axis, (group, results) in zip(axes[0], report.items()):
        for result in results:
            curves = [[x if math.isfinite(x) else float("nan") for x in c.losses] for c in result.curves]
            mean = [sum(v) / len(v) for v in zip(*curves)]
            axis.plot([i * every for i in range(len(mean))], mean, label=result.name)
        axis.set_title(group)
        axis.set_xlabel("step")
        axis.set_ylabel("test loss (mean over seeds)")
        axis.set_yscale("log")
        axis.legend(fontsize=8)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    plt.close(figure)
    return buffer.getvalue()


def add_optim_commands(sub: Any) -> None:
    """Add ``optim meta-train`` and ``optim eval`` to the ``nfkit`` subcommands."""
    from nfkit.cli.options import Parser
    from nfkit.optim.inner import DISTRIBUTIONS, HELD_OUT
    from nfkit.optim.meta import ESTIMATORS, MetaConfig
    from nfkit.optim.rule import update_families

    defaults = MetaConfig()
    optim = sub.add_parser("optim", help="learned optimizers: meta-train an NFN update rule, evaluate it against tuned Adam")
    optim_sub = optim.add_subparsers(dest="optim_command", required=True, parser_class=Parser)
    meta = optim_sub.add_parser(
        "meta-train", help="meta-train a learned optimizer with PES (resumable; torchrun-ready)",
        description="Meta-train a learned optimizer: an equivariant network over the weight space of small classifiers, "
        "by Persistent Evolution Strategies. Rerunning the same command resumes; under torchrun the particle pairs are "
        "shared among the processes.")
    meta.add_argument("--out", required=True, help="folder for optimizer.pt, log.csv and the resumable state.pt")
    meta.add_argument("--tasks", default=defaults.tasks, choices=list(DISTRIBUTIONS),
                      help="the inner task distribution: " + "; ".join(f"{k}: {v.summary}" for k, v in DISTRIBUTIONS.items()))
    meta.add_argument("--update", default=defaults.update, choices=update_families(),
                      help="the update network: an equivariant family, or per-parameter (the baseline)")
    meta.add_argument("--hidden-channels", type=positive_int, nargs="+", default=list(defaults.hidden_channels),
                      help="widths of the update network")
    meta.add_argument("--iterations", type=positive_int, default=defaults.iterations, help="meta-gradient steps")
    meta.add_argument("--pairs", type=positive_int, default=defaults.pairs, help="antithetic particle pairs per step")
    meta.add_argument("--truncation", type=positive_int, default=defaults.truncation, help="inner steps per unroll")
    meta.add_argument("--horizon", type=positive_int, default=defaults.horizon,
                      help="inner steps before a pair starts a new task (a multiple of --truncation)")
    meta.add_argument("--initial-lr", type=positive_float, default=defaults.learning_rate,
                      help="the rule's step size α before meta-training")
    meta.add_argument("--sigma", type=positive_float, default=defaults.sigma, help="perturbation scale")
    meta.add_argument("--meta-lr", type=positive_float, default=defaults.meta_lr, help="Adam's learning rate on the rule")
    meta.add_argument("--estimator", default=defaults.estimator, choices=ESTIMATORS,
                      help="pes (unbiased over the horizon) or es (truncated ES: biased towards short horizons)")
    meta.add_argument("--seed", type=int, default=defaults.seed, help="seed of every random draw")
    meta.add_argument("--checkpoint-every", type=positive_int, default=defaults.checkpoint_every,
                      help="iterations between checkpoints")
    meta.set_defaults(run=_meta_train)

    evaluate = optim_sub.add_parser(
        "eval", help="step-reduction factor against tuned Adam on held-out tasks, final losses, loss curves",
        description="Evaluate learned optimizers on held-out inner tasks (new seeds, unseen widths, an unseen dataset) "
        "against Adam tuned over 20 learning rates and SGD with momentum tuned over 10.")
    evaluate.add_argument("--optimizer", nargs="*", default=[], metavar="[NAME=]PATH",
                          help="learned optimizers (optimizer.pt from meta-train); default: only the baselines")
    evaluate.add_argument("--tasks", nargs="+", default=[k for k in HELD_OUT if not k.startswith("cnn")], choices=list(HELD_OUT),
                          help="held-out task groups (a learned optimizer is skipped where its layer structure does not fit)")
    evaluate.add_argument("--seeds", type=positive_int, default=3, help="seeds per task group (at most 3)")
    evaluate.add_argument("--steps", type=positive_int, default=1000, help="training steps per run")
    evaluate.add_argument("--every", type=positive_int, default=10, help="steps between test-loss measurements")
    evaluate.add_argument("--out", help="folder for results.md, results.json and curves.png (default: print only)")
    evaluate.set_defaults(run=_eval)
