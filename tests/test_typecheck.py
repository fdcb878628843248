"""The type checker (mypy, strict, configured in pyproject.toml) passes on src/nfkit."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_mypy_strict_passes_on_the_package(tmp_path):
    pytest.importorskip("mypy", reason="mypy comes with the test extras: pip install -e '.[test]'")
    done = subprocess.run(
        [sys.executable, "-m", "mypy", "--cache-dir", str(tmp_path / "cache"), "--no-error-summary"],
        cwd=ROOT, capture_output=True, text=True, check=False,
    )
    assert done.returncode == 0, "mypy found type errors:\n" + done.stdout + done.stderr
