"""Time and memory of every registered model next to nfn 0.1.2, and how cost grows (a benchmark, not a test).

The same as ``nfkit bench`` (see ``nfkit bench --help``); needs ``pip install -e '.[bench]'``
for the reference rows. Each measurement runs in its own process.

    python benchmarks/compare.py --out bench-results            # the full suite (~15 min on 2 cores)
    python benchmarks/compare.py --models np nfn-np --no-growth  # one comparison
"""

from __future__ import annotations

import sys

from nfkit.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", *sys.argv[1:]]))
