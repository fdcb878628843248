"""Option types and parsing helpers of the ``nfkit`` command: one-line usage errors, every default shown,
zero and negative values refused, model options as JSON, early stopping by task."""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Callable
from typing import Any, NoReturn

__all__ = [
    "Parser",
    "positive_int",
    "nonnegative_int",
    "positive_float",
    "nonnegative_float",
    "shard",
    "default_workers",
    "given",
    "patience",
    "model_options",
    "init_distributed_from_env",
]


class Parser(argparse.ArgumentParser):
    """argparse with every default shown and usage errors on one line."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", argparse.ArgumentDefaultsHelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _number(kind: Callable[[str], float], minimum: float, strict: bool, what: str) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}") from None
        if isinstance(value, float) and not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}")
        if value < minimum or (strict and value == minimum):
            raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}")
        return value

    parse.__name__ = what  # argparse names the type in some messages
    return parse


positive_int = _number(int, 0, True, "a positive integer")
nonnegative_int = _number(int, 0, False, "an integer ≥ 0")
positive_float = _number(float, 0.0, True, "a positive number")
nonnegative_float = _number(float, 0.0, False, "a number ≥ 0")


def shard(text: str) -> tuple[int, int]:
    try:
        index, count = (int(x) for x in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--shard takes i/n, e.g. 0/2; got {text!r}") from None
    if not 0 <= index < count:
        raise argparse.ArgumentTypeError(f"--shard {text}: need 0 <= i < n")
    return index, count


def default_workers() -> int:
    import os

    if "WORLD_SIZE" in os.environ:  # under torchrun every rank is already a process
        return 1
    return max(1, min(2, os.cpu_count() or 1))


def given(value: int | None, default: int) -> int:
    """``value`` unless the option was left out (0 is a value, and is refused by the parser, not replaced)."""
    return default if value is None else value


def patience(given: int | None, task: str) -> int | None:
    """``--patience`` (0: off), or the task's default when it was left out."""
    from nfkit.tasks import TASKS

    if given is None:
        return TASKS[task].default_patience
    return given or None


def model_options(pairs: list[str] | None) -> dict[str, object]:
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


def init_distributed_from_env() -> None:
    """Join the process group when launched by ``torchrun`` with more than one process (gloo: CPU-safe)."""
    import os

    import torch.distributed as dist

    if "WORLD_SIZE" in os.environ and int(os.environ["WORLD_SIZE"]) > 1 and not dist.is_initialized():
        dist.init_process_group("gloo")
