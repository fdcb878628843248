"""The ``nfkit`` command line: :func:`main` and its subcommands (check, params, demo, zoo, train, eval, bench)."""

from nfkit.cli.main import build_parser, main

__all__ = ["build_parser", "main"]
