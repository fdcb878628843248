"""Generate a CNN zoo in the Small CNN Zoo style (Unterthiner et al. 2020), many nets at once.

Each net is the Small CNN Zoo network (3 × conv 16, 3×3 stride 2, global average pooling,
dense 10; padding 1 so that 8×8 digits fit, none on 28×28 MNIST as in the published zoo) with its
own sampled hyperparameters: activation
(ReLU or Tanh), optimizer (Adam, SGD with momentum 0.9, RMSprop), learning rate, initialisation
scale, dropout, weight decay and training fraction. Accuracies therefore spread widely.

All nets of a chunk train together: their convolutions are one grouped convolution (net k's
channels form group k) and their dense layers one batched matmul, so a step costs one forward
and backward for the whole chunk. Optimizer updates are written out per net with masks.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from nfkit.data.generators.batched import OPTIMIZERS, StackedOptimizers
from nfkit.data.generators.runner import (
    ZooRecipe,
    checked_choices,
    checked_schedule,
    choice,
    generate_zoo,
    log_uniform,
    rows_by_activation,
)
from nfkit.data.generators.sources import IMAGE_DATASETS, ImageSplit, load_images
from nfkit.nets.architectures import small_cnn_zoo
from nfkit.spaces.activations import Activation
from nfkit.spaces.convert import spec_of
from nfkit.spaces.features import WeightSpaceFeatures
from nfkit.spaces.spec import WeightSpaceSpec

__all__ = [
    "CNNZooConfig",
    "CNNRecipe",
    "generate_cnn_zoo",
    "sample_hyperparameters",
    "train_cnn_chunk",
    "OPTIMIZERS",
    "ACTIVATIONS",
    "cnn_zoo_spec",
]

ACTIVATIONS = ("relu", "tanh")
_WIDTH = 16


@dataclass(frozen=True)
class CNNZooConfig:
    """Settings of a generated CNN zoo (stored in its manifest)."""

    size: int = 2000
    seed: int = 0
    epochs: int = 8
    checkpoints: tuple[int, ...] = (1, 3, 8)
    batch_size: int = 32
    chunk: int = 200
    dataset: str = "digits"
    activations: tuple[str, ...] = ACTIVATIONS

    def __post_init__(self) -> None:
        checkpoints = checked_schedule(self.size, self.chunk, self.epochs, self.checkpoints)
        object.__setattr__(self, "checkpoints", checkpoints)
        checked_choices(self.dataset, IMAGE_DATASETS, self.activations, ACTIVATIONS)

    def to_dict(self) -> dict[str, object]:
        """JSON-ready settings."""
        d = asdict(self)
        d["checkpoints"] = list(self.checkpoints)
        d["activations"] = list(self.activations)
        return d


#: Pixels (nets × examples × image pixels) evaluated at once: the 8×8 digits fit in one slice, as
#: they always have; 28×28 MNIST goes in slices of a few hundred examples.
_EVAL_PIXELS = 2**25

#: Conv padding per dataset: 1 so that 8×8 digits fit (8 → 4 → 2 → 1); none on 28×28 MNIST, as in the
#: published Small CNN Zoo (28 → 13 → 6 → 2).
PADDING = {"digits": 1, "mnist": 0}


def cnn_zoo_spec(activation: str, dataset: str = "digits") -> WeightSpaceSpec:
    """The weight space of the generated nets with the given activation, on ``dataset``'s images."""
    spec = spec_of(small_cnn_zoo(torch.nn.ReLU if activation == "relu" else torch.nn.Tanh, padding=PADDING[dataset]))
    assert isinstance(spec, WeightSpaceSpec)
    return spec


def sample_hyperparameters(
    n: int, generator: torch.Generator, activations: tuple[str, ...] = ACTIVATIONS
) -> dict[str, np.ndarray]:
    """Per-net hyperparameters, drawn from ``generator``."""
    return {
        "activation": choice(n, activations, generator),
        "optimizer": choice(n, OPTIMIZERS, generator),
        "learning_rate": log_uniform(n, 1e-4, 1e-1, generator),
        "init_scale": log_uniform(n, 0.1, 3.0, generator),
        "dropout": (0.5 * torch.rand(n, generator=generator, dtype=torch.float64)).numpy(),
        "weight_decay": log_uniform(n, 1e-8, 1e-2, generator),
        "train_fraction": (0.1 + 0.9 * torch.rand(n, generator=generator, dtype=torch.float64)).numpy(),
    }


def _init(n: int, scales: torch.Tensor, generator: torch.Generator) -> list[torch.Tensor]:
    """Glorot-normal weights times each net's scale, zero biases: ``[W1, b1, …, W4, b4]`` stacked over nets."""
    shapes = [(_WIDTH, 1, 3, 3), (_WIDTH, _WIDTH, 3, 3), (_WIDTH, _WIDTH, 3, 3), (10, _WIDTH)]
    params = []
    for shape in shapes:
        fan_in = math.prod(shape[1:])
        fan_out = shape[0] * math.prod(shape[2:])
        std = math.sqrt(2.0 / (fan_in + fan_out))
        w = torch.randn((n, *shape), generator=generator) * std * scales.view(-1, *([1] * len(shape)))
        params += [w, torch.zeros(n, shape[0])]
    return params


def _forward(
    params: list[torch.Tensor], x: torch.Tensor, activation: str, dropout: torch.Tensor | None, generator: torch.Generator | None,
    padding: int = 1,
) -> torch.Tensor:
    """Logits ``(N, B, 10)`` of N nets on their own batches ``x: (N, B, 1, H, W)``."""
    n, b = x.shape[:2]
    act = torch.relu if activation == "relu" else torch.tanh
    h = x.transpose(0, 1).reshape(b, n, *x.shape[3:])
    for i in range(3):
        w, bias = params[2 * i], params[2 * i + 1]
        h = F.conv2d(h, w.reshape(-1, *w.shape[2:]), bias.reshape(-1), stride=2, padding=padding, groups=n)
        h = act(h)
        if dropout is not None:
            keep = 1.0 - dropout.repeat_interleave(_WIDTH).view(1, -1, 1, 1)
            mask = torch.rand(h.shape, generator=generator) < keep
            h = h * mask / keep
    pooled = h.mean(dim=(2, 3)).view(b, n, _WIDTH).transpose(0, 1)  # (N, B, 16)
    return torch.baddbmm(params[7].unsqueeze(1), pooled, params[6].transpose(1, 2))


def _evaluate(params: list[torch.Tensor], activation: str, images: torch.Tensor, labels: torch.Tensor,
              masks: torch.Tensor, padding: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-net accuracy and loss over the examples each net's mask selects: ``masks (N, M)``.

    Examples go through in slices so that memory stays bounded on 28×28 images (every net sees every
    example; the sums are exact whatever the slice size)."""
    with torch.no_grad():
        n = params[0].shape[0]
        step = max(1, _EVAL_PIXELS // (n * images[0].numel()))
        loss_parts, correct_parts = [], []
        for start in range(0, len(labels), step):
            x, y = images[start : start + step], labels[start : start + step]
            logits = _forward(params, x.unsqueeze(0).expand(n, *x.shape), activation, None, None, padding)
            loss_parts.append(F.cross_entropy(logits.transpose(1, 2), y.expand(n, -1), reduction="none"))
            correct_parts.append((logits.argmax(dim=-1) == y).to(torch.float64))
        losses, correct = torch.cat(loss_parts, dim=1), torch.cat(correct_parts, dim=1)
        count = masks.sum(dim=1).clamp_min(1)
        return (correct * masks).sum(dim=1) / count, (losses.double() * masks).sum(dim=1) / count


def train_cnn_chunk(
    hyper: dict[str, np.ndarray], data: ImageSplit, config: CNNZooConfig, generator: torch.Generator
) -> tuple[dict[int, WeightSpaceFeatures], dict[str, np.ndarray]]:
    """Train the nets of one chunk (all with the same activation); return features per checkpoint and metrics.

    Returns ``({epoch: features of batch N}, {column: (len(checkpoints)·N,) values})`` with rows ordered
    checkpoint-major.
    """
    activations = set(hyper["activation"])
    if len(activations) != 1:
        raise ValueError(f"train_cnn_chunk trains nets of one activation at a time, got {sorted(activations)}")
    activation = activations.pop()
    n = len(hyper["activation"])
    def to(a: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(np.asarray(a, dtype=np.float64), dtype=torch.float32)

    lr, wd, dropout = to(hyper["learning_rate"]), to(hyper["weight_decay"]), to(hyper["dropout"])
    params = [p.requires_grad_() for p in _init(n, to(hyper["init_scale"]), generator)]
    optimizer = StackedOptimizers(params, hyper["optimizer"], lr, wd)
    n_train = len(data.train_labels)
    # each net trains on its own random subset of the training set
    order = torch.stack([torch.randperm(n_train, generator=generator) for _ in range(n)])
    subset_size = torch.as_tensor(np.maximum(1, np.round(hyper["train_fraction"] * n_train)).astype(np.int64))
    train_masks = torch.zeros(n, n_train, dtype=torch.float64)
    for k in range(n):
        train_masks[k, order[k, : subset_size[k]]] = 1.0
    test_masks = torch.ones(n, len(data.test_labels), dtype=torch.float64)
    steps_per_epoch = n_train // config.batch_size
    saved: dict[int, WeightSpaceFeatures] = {}
    metrics: dict[str, list[np.ndarray]] = {k: [] for k in ("epoch", "test_accuracy", "test_loss", "train_accuracy", "train_loss")}
    spec = cnn_zoo_spec(activation, config.dataset)
    padding = PADDING[config.dataset]
    for epoch in range(1, config.epochs + 1):
        for _ in range(steps_per_epoch):
            picks = (torch.rand(n, config.batch_size, generator=generator) * subset_size.unsqueeze(1)).long()
            idx = torch.gather(order, 1, picks)
            logits = _forward(params, data.train_images[idx], activation, dropout, generator, padding)
            loss = F.cross_entropy(logits.reshape(-1, 10), data.train_labels[idx].reshape(-1), reduction="sum") / config.batch_size
            optimizer.step(torch.autograd.grad(loss, params))
        if epoch in config.checkpoints:
            test_acc, test_loss = _evaluate(params, activation, data.test_images, data.test_labels, test_masks, padding)
            train_acc, train_loss = _evaluate(params, activation, data.train_images, data.train_labels, train_masks, padding)
            weights = [params[2 * i].detach().clone()[:, None] for i in range(4)]
            biases = [params[2 * i + 1].detach().clone()[:, None] for i in range(4)]
            saved[epoch] = WeightSpaceFeatures(spec, weights, biases)
            metrics["epoch"].append(np.full(n, epoch))
            for name, value in (("test_accuracy", test_acc), ("test_loss", test_loss), ("train_accuracy", train_acc), ("train_loss", train_loss)):
                metrics[name].append(torch.nan_to_num(value, nan=1e6, posinf=1e6).numpy())
    return saved, {k: np.concatenate(v) for k, v in metrics.items()}


class CNNRecipe(ZooRecipe):
    """The CNN zoo as a :class:`~nfkit.data.generators.runner.ZooRecipe`."""

    kind = "cnn"

    def __init__(self, config: CNNZooConfig) -> None:
        self.config = config

    def load_data(self) -> ImageSplit:
        return load_images(self.config.dataset)

    def run_chunk(self, k: int, data: object, generator: torch.Generator) -> tuple[np.ndarray, dict[str, list[object]]]:
        config = self.config
        first = k * config.chunk
        n = min(config.chunk, config.size - first)
        hyper = sample_hyperparameters(n, generator, config.activations)

        def train(sub: dict[str, np.ndarray]) -> tuple[dict[int, np.ndarray], dict[str, np.ndarray]]:
            assert isinstance(data, ImageSplit)
            saved, metrics = train_cnn_chunk(sub, data, config, generator)
            return {epoch: f.flatten()[:, 0].numpy() for epoch, f in saved.items()}, metrics

        return rows_by_activation(hyper, first, train)

    def spec(self, table: dict[str, np.ndarray]) -> WeightSpaceSpec:
        kinds = sorted(set(table["activation"]))
        spec = cnn_zoo_spec(kinds[0], self.config.dataset)
        if len(kinds) == 1:
            return spec
        mixed = Activation("mixed")
        return WeightSpaceSpec(
            tuple(replace(l, activation=mixed) if i < spec.num_layers - 1 else l for i, l in enumerate(spec.layers))
        )

    def describe(self, rows: int) -> str:
        return f"{self.config.size} nets × {len(self.config.checkpoints)} checkpoints"


def generate_cnn_zoo(out: str | Path, config: CNNZooConfig = CNNZooConfig(), **options: Any) -> Path | None:
    """Generate (or resume) a CNN zoo into ``out``; ``options`` are :func:`~nfkit.data.generators.runner.generate_zoo`'s
    (``shard``, ``workers``, ``overwrite``, ``progress``)."""
    return generate_zoo(out, CNNRecipe(config), **options)
