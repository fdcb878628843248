"""Files and folders written so that nothing a user has is ever lost.

* Writes go through a temporary file and a rename: a killed writer leaves the old file or the new
  one, never half of one.
* A staging folder is created with the user's umask (``tempfile.mkdtemp`` would make it 0700).
* Two processes writing one output take turns through :func:`exclusive_lock`: the second is refused
  at once with :class:`FolderInUseError`, and a lock left by a killed process is never stale, because
  the kernel releases an ``flock`` when its holder dies.
"""

from __future__ import annotations

import csv
import errno
import fcntl
import os
import secrets
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from nfkit.errors import FolderInUseError, NfkitError

__all__ = [
    "FolderInUseError",
    "atomic_write_bytes",
    "atomic_write_text",
    "make_staging_dir",
    "make_dir",
    "exclusive_lock",
    "lock_path_for",
    "write_csv_columns",
    "write_csv_rows",
]


def _umask() -> int:
    # os.umask can only be read by setting it; put it straight back
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename (never a partial file).

    The file gets the permissions a plain ``open(path, "w")`` would (``0o666`` less the umask).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    """:func:`atomic_write_bytes` for UTF-8 text."""
    atomic_write_bytes(path, text.encode())


def make_dir(path: Path) -> None:
    """``mkdir -p`` that turns "a file is in the way" into a clear :class:`NfkitError`."""
    if path.exists() and not path.is_dir():
        raise NfkitError(f"{path} is a file, not a folder; choose another path")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise NfkitError(f"{path}: part of the path is a file, not a folder; choose another path") from None


def make_staging_dir(parent: Path, prefix: str) -> Path:
    """A new, unique, empty folder in ``parent`` with the permissions ``mkdir`` would give it."""
    make_dir(parent)
    while True:
        path = parent / f"{prefix}{secrets.token_hex(4)}"
        try:
            path.mkdir(mode=0o777)  # mkdir applies the umask
            return path
        except FileExistsError:
            continue


def lock_path_for(target: Path) -> Path:
    """The lock file guarding ``target``: a hidden sibling, so the target itself can be moved aside."""
    target = target.resolve()
    return target.parent / f".{target.name}.lock"


@contextmanager
def exclusive_lock(target: Path, what: str) -> Iterator[None]:
    """Hold the exclusive lock on ``target`` (a run or zoo folder), or raise :class:`FolderInUseError`.

    The lock is an ``flock`` on :func:`lock_path_for` ``(target)``; the file records the holder's pid
    and is removed on release. The kernel drops the lock when its holder dies, so a killed writer
    never leaves a lock behind that blocks the next run.
    """
    path = lock_path_for(target)
    make_dir(path.parent)
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            os.close(fd)
            if error.errno not in (errno.EAGAIN, errno.EACCES):
                raise
            holder = _read_pid(path)
            who = f" (pid {holder})" if holder else ""
            raise FolderInUseError(
                f"{target} is being written by another nfkit process{who}; wait for it to finish or choose another folder"
            ) from None
        # the previous holder may have removed the file between our open and our lock: retry on the new one
        try:
            same = os.path.samestat(os.fstat(fd), os.stat(path))
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield
    finally:
        try:
            path.unlink(missing_ok=True)
        finally:
            os.close(fd)


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip() or 0) or None
    except (OSError, ValueError):
        return None


def write_csv_columns(path: Path, columns: Mapping[str, Sequence[object] | np.ndarray]) -> None:
    """Write named columns of equal length as a CSV (header, then one line per row), atomically."""
    names = list(columns)
    rows = len(next(iter(columns.values()))) if columns else 0
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with tmp.open("w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(names)
            for i in range(rows):
                writer.writerow([columns[n][i] for n in names])
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_csv_rows(path: Path, rows: Sequence[Mapping[str, object]]) -> None:
    """Write dict rows (keys of the first row as the header) atomically; nothing for no rows."""
    if rows:
        write_csv_columns(path, {name: [row[name] for row in rows] for name in rows[0]})
