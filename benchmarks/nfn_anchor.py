"""The reference implementation on nfkit's split: nfn 0.1.2's NP/HNP INR classifiers (a benchmark, not a test).

Builds the published INR-classification model from ``nfn==0.1.2``'s own layers
(``classify_siren_configs/nfnet/inv_ff[_io].yaml``, see ``../shared/reference/data-formats.md`` §3.2):
Gaussian Fourier features of every weight entry (mapping 128, scale 10 → 256 channels), for NP the
IO sinusoidal encoding, three NP or HNP layers with ReLU, the invariant pool, and an MLP head
(1000 wide, dropout 0.5); Adam at 1e-4, batch 32, raw (unnormalised) weights. It trains on the
same zoo and split as ``nfkit train --task inr-classification`` and prints test accuracy at the
best validation epoch, so nfkit's families can be read beside it:

    .venv/bin/pip install -q -e '.[bench]'
    .venv/bin/python benchmarks/nfn_anchor.py --zoo zoos/inr-mnist --layers np hnp --channels 32 --epochs 30
"""

from __future__ import annotations

import argparse
import math
import sys
import time

import torch
from torch import nn

from nfkit.data.formats import open_zoo
from nfkit.spaces.features import WeightSpaceFeatures
from nfkit.util.table import format_table


def build(layer: str, features: WeightSpaceFeatures, channels: int, classes: int) -> nn.Module:
    """The published classifier from nfn's layers, for the zoo's weight space."""
    import nfn.layers as ref
    from nfn.common import WeightSpaceFeatures as RefFeatures
    from nfn.common import network_spec_from_wsfeat

    probe = features[:1]
    network = network_spec_from_wsfeat(RefFeatures(list(probe.weights), list(probe.biases)))
    modules: list[nn.Module] = [ref.GaussianFourierFeatureTransform(network, 1, mapping_size=128, scale=10)]
    width = 256
    if layer == "np":
        encoding = ref.IOSinusoidalEncoding(network, max_freq=10, num_bands=6, enc_layers=False)
        modules.append(encoding)
        width = encoding.num_out_chan(width)
    linear = ref.NPLinear if layer == "np" else ref.HNPLinear
    for c_in, c_out in zip([width, channels, channels], [channels] * 3):
        modules += [linear(network, c_in, c_out), ref.TupleOp(nn.ReLU())]
    pool = ref.NPPool(network) if layer == "np" else ref.HNPPool(network)
    modules += [pool, nn.Flatten(start_dim=-2)]
    trunk = nn.Sequential(*modules)

    class Classifier(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.trunk = trunk
            with torch.no_grad():
                width = self.trunk(RefFeatures(list(probe.weights), list(probe.biases))).shape[-1]
            self.head = nn.Sequential(nn.Linear(width, 1000), nn.ReLU(), nn.Dropout(0.5), nn.Linear(1000, classes))

        def forward(self, x: WeightSpaceFeatures) -> torch.Tensor:
            return self.head(self.trunk(RefFeatures(list(x.weights), list(x.biases))))

    return Classifier()


def train(layer: str, zoo_path: str, channels: int, epochs: int, seed: int) -> dict[str, object]:
    zoo = open_zoo(zoo_path)
    assert isinstance(zoo.features, WeightSpaceFeatures)
    labels = zoo.column("label").long()
    classes = int(labels.max()) + 1
    torch.manual_seed(seed)
    model = build(layer, zoo.features, channels, classes)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    split = {k: torch.as_tensor(v) for k, v in zoo.splits.items()}

    def accuracy(rows: torch.Tensor) -> float:
        model.eval()
        with torch.no_grad():
            right = sum(int((model(zoo.features[rows[i:i + 256]]).argmax(1) == labels[rows[i:i + 256]]).sum())
                        for i in range(0, len(rows), 256))
        return right / len(rows)

    best = (-1.0, 0.0, 0)
    began = time.perf_counter()
    for epoch in range(1, epochs + 1):
        model.train()
        order = split["train"][torch.randperm(len(split["train"]))]
        total = 0.0
        for i in range(0, len(order), 32):
            rows = order[i:i + 32]
            loss = nn.functional.cross_entropy(model(zoo.features[rows]), labels[rows])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += float(loss.detach()) * len(rows)
        val = accuracy(split["val"])
        if val > best[0]:
            best = (val, accuracy(split["test"]), epoch)
        print(f"  nfn-{layer} epoch {epoch}: train loss {total / len(order):.4f}, val accuracy {val:.3f}", flush=True)
    return {"model": f"nfn-{layer}", "test_accuracy": best[1], "best_epoch": best[2],
            "parameters": sum(p.numel() for p in model.parameters()), "seconds": time.perf_counter() - began}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--zoo", required=True, help="an INR zoo in any format nfkit train reads")
    parser.add_argument("--layers", nargs="+", default=["np", "hnp"], choices=["np", "hnp"])
    parser.add_argument("--channels", type=int, default=32, help="width of the three equivariant layers (published: 512)")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    rows = []
    for layer in args.layers:
        result = train(layer, args.zoo, args.channels, args.epochs, args.seed)
        rows.append([result["model"], f"{float(result['test_accuracy']):.3f}", f"{int(result['parameters']):,}",
                     f"{float(result['seconds']):.0f}", str(result["best_epoch"])])
    print(format_table(["model", "test accuracy", "parameters", "train s", "best epoch"], rows))
    return 0 if all(math.isfinite(float(r[1])) for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
