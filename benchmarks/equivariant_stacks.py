"""Forward+backward time and peak memory of equivariant stacks (a benchmark, not a test).

Each configuration runs in its own subprocess so that its peak resident memory is its own.
The stack is the ``hidden_channels=[C, C]`` equivariant model of a registered family
(``1→C→C→1`` layers with nonlinearities) on an MLP weight space, by default 784-64-64-10
at batch 32 and C = 32, as in the foundation issue. "channel-mixing floor" is the per-entry
``1→C→C→1`` MLP alone, the cost no NP stack can go below.

    python benchmarks/equivariant_stacks.py                               # floor, np, hnp
    python benchmarks/equivariant_stacks.py --variants np monomial magep --sizes 2 32 32 1
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time


def _measure(variant: str, sizes: list[int], batch: int, channels: int, reps: int) -> dict[str, float]:
    import resource

    import torch

    import nfkit.models
    from nfkit.spaces import WeightSpaceSpec

    torch.manual_seed(0)
    spec = WeightSpaceSpec.mlp(sizes)
    x = spec.randn(batch, 1)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if variant == "channel-mixing floor":
        # per-entry channel mixing 1→C→C→1 with ReLUs: the cost below which no NP stack can go
        model = torch.nn.Sequential(
            torch.nn.Linear(1, channels), torch.nn.ReLU(), torch.nn.Linear(channels, channels), torch.nn.ReLU(),
            torch.nn.Linear(channels, 1),
        )
        inputs = [t.movedim(1, -1) for t in x.tensors()]

        def step() -> None:
            sum(model(t).sum() for t in inputs).backward()
    else:
        model = nfkit.models.equivariant(variant, spec, hidden_channels=[channels, channels])

        def step() -> None:
            model(x).flatten().sum().backward()

    params = sum(p.numel() for p in model.parameters())
    step()  # warm-up
    times = []
    for _ in range(reps):
        model.zero_grad(set_to_none=True)
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"params": params, "median_s": statistics.median(times), "peak_mib": peak / 1024, "over_import_mib": (peak - base) / 1024}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variants", nargs="+", default=["channel-mixing floor", "np", "hnp"])
    parser.add_argument("--sizes", type=int, nargs="+", default=[784, 64, 64, 10])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--channels", type=int, default=32)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(_measure(args.worker, args.sizes, args.batch, args.channels, args.reps)))
        return
    print(f"MLP {'-'.join(map(str, args.sizes))}, batch {args.batch}, stack 1→{args.channels}→{args.channels}→1, "
          f"forward+backward, median of {args.reps}")
    print(f"{'variant':<22} {'parameters':>14} {'time (s)':>10} {'peak RSS (MiB)':>15} {'over import':>12}")
    for variant in args.variants:
        cmd = [sys.executable, __file__, "--worker", variant, "--sizes", *map(str, args.sizes), "--batch",
               str(args.batch), "--channels", str(args.channels), "--reps", str(args.reps)]
        out = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if out.returncode != 0:
            print(f"{variant:<22} failed: {out.stderr.strip().splitlines()[-1] if out.stderr else out.returncode}")
            continue
        r = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"{variant:<22} {r['params']:>14,} {r['median_s']:>10.3f} {r['peak_mib']:>15.0f} {r['over_import_mib']:>12.0f}")


if __name__ == "__main__":
    main()
