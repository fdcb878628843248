"""Atomic writes, umask-respecting folders, and locks that a killed holder never leaves stale."""

import os
import signal
import subprocess
import sys
import textwrap

import pytest

from nfkit.errors import FolderInUseError
from nfkit.util.files import atomic_write_bytes, exclusive_lock, lock_path_for, make_staging_dir


@pytest.fixture
def umask_022():
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def test_folders_and_files_follow_the_umask(tmp_path, umask_022):
    folder = make_staging_dir(tmp_path, ".x-")
    assert oct(folder.stat().st_mode & 0o777) == oct(0o755)  # not mkdtemp's 0700
    atomic_write_bytes(tmp_path / "f", b"1")
    assert oct((tmp_path / "f").stat().st_mode & 0o777) == oct(0o644)


def test_a_second_writer_is_refused_and_the_lock_is_released(tmp_path):
    target = tmp_path / "run"
    with exclusive_lock(target, "run"):
        with pytest.raises(FolderInUseError, match=f"pid {os.getpid()}"):
            with exclusive_lock(target, "run"):
                pass
    assert not lock_path_for(target).exists()
    with exclusive_lock(target, "run"):  # free again
        pass


def test_a_killed_holder_leaves_no_stale_lock(tmp_path):
    target = tmp_path / "zoo"
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import sys, time
            from pathlib import Path
            from nfkit.util.files import exclusive_lock
            with exclusive_lock(Path({str(target)!r}), "zoo"):
                print("locked", flush=True)
                time.sleep(60)
        """)],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(FolderInUseError):
            with exclusive_lock(target, "zoo"):
                pass
        holder.send_signal(signal.SIGKILL)
        holder.wait(10)
        assert lock_path_for(target).exists()  # the file is left behind by the kill ...
        with exclusive_lock(target, "zoo"):  # ... but it does not block anyone
            pass
    finally:
        holder.kill()
        holder.wait()
        holder.stdout.close()
