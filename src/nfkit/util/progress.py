"""Progress a person can see: a bar on a terminal, a flushed line per step elsewhere.

Bars come from ``tqdm`` and are drawn only when standard error is a terminal; lines written with
:func:`say` always appear at once (flushed), so a log redirected to a file fills as the work goes.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from typing import TypeVar

from tqdm import tqdm

__all__ = ["progress_bar", "say", "bars_enabled"]

T = TypeVar("T")


def bars_enabled() -> bool:
    """Whether bars are drawn: standard error is a terminal."""
    return sys.stderr.isatty()


def progress_bar(items: Iterable[T], *, total: int | None = None, desc: str = "", unit: str = "it") -> Iterator[T]:
    """``items``, with a tqdm bar on standard error when it is a terminal (nothing otherwise).

    Example:
        >>> list(progress_bar(range(3), desc="demo"))
        [0, 1, 2]
    """
    yield from tqdm(items, total=total, desc=desc, unit=unit, leave=False, file=sys.stderr,
                    disable=not bars_enabled(), dynamic_ncols=True)


def say(message: str, *, stream: str = "stdout") -> None:
    """Print one line and flush it now, without breaking a bar that is being drawn."""
    target = sys.stdout if stream == "stdout" else sys.stderr
    tqdm.write(message, file=target)
    target.flush()
