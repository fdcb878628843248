"""The ``nfkit`` command line."""

from __future__ import annotations

import argparse
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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``nfkit`` command; returns the exit status."""
    args = build_parser().parse_args(argv)
    return int(args.run(args))


if __name__ == "__main__":
    sys.exit(main())
