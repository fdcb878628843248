"""Plumbing below everything else: atomic files and folders nfkit can prove it made, locks,
worker processes that die with their parent, progress a person can see.

Nothing here knows about weight spaces; every other module may import it.
"""

from nfkit.util.files import (
    FolderInUseError,
    atomic_write_bytes,
    atomic_write_text,
    exclusive_lock,
    lock_path_for,
    make_dir,
    make_staging_dir,
    write_csv_rows,
)
from nfkit.util.processes import worker_pool
from nfkit.util.progress import progress_bar, say

__all__ = [
    "FolderInUseError",
    "atomic_write_bytes",
    "atomic_write_text",
    "exclusive_lock",
    "lock_path_for",
    "make_dir",
    "make_staging_dir",
    "progress_bar",
    "say",
    "worker_pool",
    "write_csv_rows",
]
