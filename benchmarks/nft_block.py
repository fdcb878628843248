"""Forward+backward time and peak memory of one NFT block on a batch of SIRENs (a benchmark, not a test).

The reference NFT implementation takes about 10 s for one block's forward and backward on a
batch of 32 SIRENs (2-32-32-1) on a 2-core CPU; this measures ours on the same input.

    python benchmarks/nft_block.py [--channels 32] [--heads 4] [--batch 32]
"""

from __future__ import annotations

import argparse
import resource
import statistics
import time

import torch

from nfkit.layers.nft import NFTBlock
from nfkit.spaces import WeightSpaceSpec


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--channels", type=int, default=32)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--reps", type=int, default=5)
    args = parser.parse_args()
    torch.manual_seed(0)
    spec = WeightSpaceSpec.mlp([2, 32, 32, 1], "sine")
    block = NFTBlock(spec, args.channels, args.heads)
    x = spec.randn(args.batch, args.channels)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    def step() -> None:
        block.zero_grad(set_to_none=True)
        sum(t.sum() for t in block(x).tensors()).backward()

    step()
    times = []
    for _ in range(args.reps):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"NFT block, SIREN 2-32-32-1, batch {args.batch}, {args.channels} channels, {args.heads} heads: "
          f"forward+backward median {statistics.median(times) * 1000:.1f} ms over {args.reps}, "
          f"peak RSS {peak / 1024:.0f} MiB ({(peak - base) / 1024:.0f} MiB over setup), "
          f"{sum(p.numel() for p in block.parameters()):,} parameters")


if __name__ == "__main__":
    main()
