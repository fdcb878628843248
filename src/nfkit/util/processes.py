"""Worker processes that never outlive the command that started them.

A pool's workers are started with ``spawn``. Each one asks the kernel to kill it when its parent
dies (Linux ``PR_SET_PDEATHSIG``) and, as a second line where that is unavailable or the
parent's spawning thread has ended, watches its parent's pid twice a second. Workers ignore
Ctrl-C: the parent gets it, terminates them and re-raises, so an interrupted run stops at once
and cleanly. SIGTERM to the parent is turned into the same interruption.
"""

from __future__ import annotations

import concurrent.futures
import ctypes
import os
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import torch.multiprocessing

__all__ = ["worker_pool", "interruptible"]

_PR_SET_PDEATHSIG = 1


def _watch_parent(parent: int) -> None:
    while True:
        time.sleep(0.5)
        if os.getppid() != parent:
            os._exit(1)


def _die_with_parent(parent: int) -> None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        pass  # not Linux: the watchdog thread below still ends us
    if os.getppid() != parent:  # the parent died before the kernel was told
        os._exit(1)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True, name="nfkit-parent-watch").start()


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


@contextmanager
def interruptible() -> Iterator[None]:
    """Within the block, SIGTERM raises :class:`KeyboardInterrupt` in the main thread (as Ctrl-C does)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _terminate(pool: concurrent.futures.ProcessPoolExecutor) -> None:
    processes = list(getattr(pool, "_processes", {}).values())
    for process in processes:
        if process.is_alive():
            process.terminate()
    pool.shutdown(wait=False, cancel_futures=True)
    deadline = time.monotonic() + 5
    for process in processes:
        process.join(max(0.0, deadline - time.monotonic()))
        if process.is_alive():
            process.kill()


@contextmanager
def worker_pool(workers: int) -> Iterator[concurrent.futures.ProcessPoolExecutor]:
    """A ``spawn`` process pool whose workers die with this process; on any error or interrupt they are terminated.

    Example:
        >>> with worker_pool(1) as pool:
        ...     pool.submit(abs, -3).result()
        3
    """
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    context = torch.multiprocessing.get_context("spawn")
    pool = concurrent.futures.ProcessPoolExecutor(
        max_workers=workers, mp_context=context, initializer=_die_with_parent, initargs=(os.getpid(),)
    )
    with interruptible():
        try:
            yield pool
        except BaseException:
            _terminate(pool)
            raise
        pool.shutdown(wait=True)
