"""Worker processes die with their parent, however the parent ends."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from nfkit.util.processes import worker_pool

# The script restores Python's Ctrl-C handler first: a shell without job control starts background
# commands with SIGINT ignored, and a test suite launched that way (`pytest &`) would otherwise hand
# the ignored disposition to this child, which then never sees the SIGINT case's signal.
_SCRIPT = textwrap.dedent("""
    import os, signal, sys, time
    signal.signal(signal.SIGINT, signal.default_int_handler)
    from nfkit.util.processes import worker_pool

    def pid_then_work(_):
        print(os.getpid(), flush=True)
        while True:
            time.sleep(0.1)

    if __name__ == "__main__":
        try:
            with worker_pool(2) as pool:
                jobs = [pool.submit(pid_then_work, i) for i in range(2)]
                for job in jobs:
                    job.result()
        except KeyboardInterrupt:
            sys.exit(130)
""")


def _start(tmp_path):
    script = tmp_path / "pool.py"
    script.write_text(_SCRIPT)
    parent = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    workers = {int(parent.stdout.readline()), int(parent.stdout.readline())}
    return parent, workers


def _gone_within(pids: set[int], seconds: float, alive) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not any(alive(p) for p in pids):
            return True
        time.sleep(0.1)
    return False


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM, signal.SIGINT])
def test_workers_die_with_their_parent(tmp_path, sig, processes):
    parent, workers = _start(tmp_path)
    others = processes.children(parent.pid)  # the workers and multiprocessing's helpers
    try:
        assert workers <= others
        parent.send_signal(sig)
        parent.wait(15)
        assert _gone_within(others, 10, processes.alive), f"orphans left after {sig.name}"
        if sig != signal.SIGKILL:  # a clean stop: the parent sees the interrupt, no worker prints a traceback
            assert parent.returncode == 130
            assert "Traceback" not in parent.stderr.read()
    finally:
        parent.kill()
        for pid in others:
            if processes.alive(pid):
                os.kill(pid, signal.SIGKILL)
        parent.stdout.close()
        parent.stderr.close()


def test_the_pool_runs_jobs_and_refuses_no_workers():
    with worker_pool(1) as pool:
        assert pool.submit(pow, 2, 5).result() == 32
    with pytest.raises(ValueError, match="at least 1"):
        with worker_pool(0):
            pass
