"""Generate a zoo of GRU sequence classifiers, many nets at once (the Tiny RNN Zoo of UNF, on images read row by row).

Universal Neural Functionals (Zhou, Finn, Harrison, NeurIPS 2024, Sec. 4.1) predicts the test success
of 10⁴ GRUs from their weights. Nothing of that zoo ships, so this one is trained here: every net is a
:class:`~nfkit.nets.RecurrentClassifier` (``tokens=False``) that reads an image one row per step (28
steps of 28 pixels for MNIST, 8 of 8 for the digits) and classifies it from its last hidden state. Each
net draws its own learning rate (log-uniform 1e-4..1e-2, as in UNF), optimizer, initialisation scale,
weight decay and training fraction, so accuracies spread widely.

All nets of a chunk train together: the input projections are one batched matmul over all steps, the
recurrence one ``baddbmm`` per step for the whole chunk (PyTorch's GRU equations, checked against
``nn.GRU`` in the tests).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
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
from nfkit.errors import InvalidOptionError
from nfkit.nets.recurrent import RecurrentClassifier
from nfkit.spaces.trace import universal_spec_of
from nfkit.spaces.universal import UniversalSpec

__all__ = ["RNNZooConfig", "RNNRecipe", "generate_rnn_zoo", "rnn_zoo_network", "gru_logits", "train_rnn_chunk"]

_CLASSES = 10
_SIDE = {"digits": 8, "mnist": 28}


@dataclass(frozen=True)
class RNNZooConfig:
    """Settings of a generated GRU zoo (stored in its manifest)."""

    size: int = 1000
    seed: int = 0
    epochs: int = 6
    checkpoints: tuple[int, ...] = (1, 3, 6)
    batch_size: int = 32
    chunk: int = 200
    dataset: str = "mnist"
    hidden: int = 16

    def __post_init__(self) -> None:
        object.__setattr__(self, "checkpoints", checked_schedule(self.size, self.chunk, self.epochs, self.checkpoints))
        checked_choices(self.dataset, IMAGE_DATASETS, ("gru",), ("gru",))
        if self.hidden <= 0 or self.batch_size <= 0:
            raise InvalidOptionError(f"hidden and batch_size must be positive, got {self.hidden} and {self.batch_size}")

    def to_dict(self) -> dict[str, object]:
        """JSON-ready settings."""
        d = asdict(self)
        d["checkpoints"] = list(self.checkpoints)
        return d

    def network(self) -> RecurrentClassifier:
        """One net of this zoo (random weights)."""
        side = _SIDE[self.dataset]
        return RecurrentClassifier(side, self.hidden, _CLASSES, "gru", tokens=False)


def rnn_zoo_network(config: RNNZooConfig) -> RecurrentClassifier:
    """The ``nn.Module`` every net of a zoo with ``config`` is (load a row with :func:`~nfkit.spaces.universal_load_into`)."""
    return config.network()


def _sample_hyperparameters(n: int, generator: torch.Generator) -> dict[str, np.ndarray]:
    return {
        "optimizer": choice(n, OPTIMIZERS, generator),
        "learning_rate": log_uniform(n, 1e-4, 1e-2, generator),
        "init_scale": log_uniform(n, 0.3, 3.0, generator),
        "weight_decay": log_uniform(n, 1e-8, 1e-2, generator),
        "train_fraction": (0.1 + 0.9 * torch.rand(n, generator=generator, dtype=torch.float64)).numpy(),
    }


def _init(n: int, side: int, hidden: int, scales: torch.Tensor, generator: torch.Generator) -> list[torch.Tensor]:
    """PyTorch's GRU/Linear initialisation (U(±1/√H), U(±1/√fan_in)) times each net's scale:
    ``[W_ih (N, 3H, I), W_hh (N, 3H, H), b_ih, b_hh (N, 3H), W_out (N, C, H), b_out (N, C)]``."""
    bound = 1.0 / math.sqrt(hidden)
    shapes = [(3 * hidden, side), (3 * hidden, hidden), (3 * hidden,), (3 * hidden,), (_CLASSES, hidden), (_CLASSES,)]
    params = []
    for shape in shapes:
        u = (2 * torch.rand((n, *shape), generator=generator) - 1) * bound
        params.append(u * scales.view(-1, *([1] * len(shape))))
    return params


def gru_logits(params: list[torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """Logits ``(N, B, C)`` of N GRU classifiers on their own batches ``x: (N, B, T, I)``.

    ``r, z = σ(W_i{r,z} x + b_i{r,z} + W_h{r,z} h + b_h{r,z})``, ``n = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn))``,
    ``h ← (1 − z) ⊙ n + z ⊙ h`` from ``h = 0``; the logits read the last ``h``.
    """
    w_ih, w_hh, b_ih, b_hh, w_out, b_out = params
    n, b, t, _ = x.shape
    hidden = w_hh.shape[-1]
    inputs = (x.reshape(n, b * t, -1) @ w_ih.transpose(1, 2) + b_ih.unsqueeze(1)).view(n, b, t, 3 * hidden)
    h = x.new_zeros(n, b, hidden)
    for step in range(t):
        recurrent = torch.baddbmm(b_hh.unsqueeze(1), h, w_hh.transpose(1, 2))
        gi, gh = inputs[:, :, step], recurrent
        r = torch.sigmoid(gi[..., :hidden] + gh[..., :hidden])
        z = torch.sigmoid(gi[..., hidden : 2 * hidden] + gh[..., hidden : 2 * hidden])
        candidate = torch.tanh(gi[..., 2 * hidden :] + r * gh[..., 2 * hidden :])
        h = candidate + z * (h - candidate)
    return torch.baddbmm(b_out.unsqueeze(1), h, w_out.transpose(1, 2))


def _sequences(images: torch.Tensor) -> torch.Tensor:
    """``(M, 1, H, W) → (M, H, W)``: one row of pixels per step."""
    return images[:, 0]


def _evaluate(params: list[torch.Tensor], x: torch.Tensor, y: torch.Tensor, masks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-net accuracy and loss over the examples ``masks (N, M)`` selects (every net sees every example, in slices)."""
    with torch.no_grad():
        n = params[0].shape[0]
        losses, correct = [], []
        for start in range(0, len(y), 500):
            xs, ys = x[start : start + 500], y[start : start + 500]
            logits = gru_logits(params, xs.unsqueeze(0).expand(n, *xs.shape))
            losses.append(F.cross_entropy(logits.transpose(1, 2), ys.expand(n, -1), reduction="none"))
            correct.append((logits.argmax(dim=-1) == ys).to(torch.float64))
        count = masks.sum(dim=1).clamp_min(1)
        return (torch.cat(correct, 1) * masks).sum(1) / count, (torch.cat(losses, 1).double() * masks).sum(1) / count


def train_rnn_chunk(
    hyper: dict[str, np.ndarray], data: ImageSplit, config: RNNZooConfig, generator: torch.Generator
) -> tuple[dict[int, np.ndarray], dict[str, np.ndarray]]:
    """Train one chunk: ``({epoch: flat weights (N, P) in the spec's order}, {column: checkpoint-major values})``."""
    n = len(hyper["optimizer"])
    def to(a: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(np.asarray(a, dtype=np.float64), dtype=torch.float32)

    side = _SIDE[config.dataset]
    params = [p.requires_grad_() for p in _init(n, side, config.hidden, to(hyper["init_scale"]), generator)]
    optimizer = StackedOptimizers(params, hyper["optimizer"], to(hyper["learning_rate"]), to(hyper["weight_decay"]))
    train_x, test_x = _sequences(data.train_images), _sequences(data.test_images)
    n_train = len(data.train_labels)
    order = torch.stack([torch.randperm(n_train, generator=generator) for _ in range(n)])
    subset = torch.as_tensor(np.maximum(1, np.round(hyper["train_fraction"] * n_train)).astype(np.int64))
    train_masks = torch.zeros(n, n_train, dtype=torch.float64)
    for k in range(n):
        train_masks[k, order[k, : subset[k]]] = 1.0
    test_masks = torch.ones(n, len(data.test_labels), dtype=torch.float64)
    layout = _flat_layout(config)
    saved: dict[int, np.ndarray] = {}
    metrics: dict[str, list[np.ndarray]] = {k: [] for k in ("epoch", "test_accuracy", "test_loss", "train_accuracy", "train_loss")}
    for epoch in range(1, config.epochs + 1):
        for _ in range(n_train // config.batch_size):
            picks = (torch.rand(n, config.batch_size, generator=generator) * subset.unsqueeze(1)).long()
            idx = torch.gather(order, 1, picks)
            logits = gru_logits(params, train_x[idx])
            loss = F.cross_entropy(logits.reshape(-1, _CLASSES), data.train_labels[idx].reshape(-1), reduction="sum") / config.batch_size
            optimizer.step(torch.autograd.grad(loss, params))
        if epoch in config.checkpoints:
            test_acc, test_loss = _evaluate(params, test_x, data.test_labels, test_masks)
            train_acc, train_loss = _evaluate(params, train_x, data.train_labels, train_masks)
            saved[epoch] = layout(params)
            metrics["epoch"].append(np.full(n, epoch))
            for name, value in (("test_accuracy", test_acc), ("test_loss", test_loss), ("train_accuracy", train_acc), ("train_loss", train_loss)):
                metrics[name].append(torch.nan_to_num(value, nan=1e6, posinf=1e6).numpy())
    return saved, {k: np.concatenate(v) for k, v in metrics.items()}


def _flat_layout(config: RNNZooConfig) -> Any:
    """``params → (N, P)`` in the order of the zoo's universal spec (its tensors read the state dict)."""
    spec = rnn_zoo_spec(config)
    names = ["recurrent.weight_ih_l0", "recurrent.weight_hh_l0", "recurrent.bias_ih_l0", "recurrent.bias_hh_l0", "readout.weight", "readout.bias"]

    def flatten(params: list[torch.Tensor]) -> np.ndarray:
        state = dict(zip(names, (p.detach() for p in params)))
        parts = []
        for t in spec.tensors:
            value = state[t.parameter]
            if t.rows is not None:
                value = value[:, t.rows[0] : t.rows[1]]
            parts.append(value.reshape(value.shape[0], -1))
        return torch.cat(parts, dim=1).numpy()

    return flatten


def rnn_zoo_spec(config: RNNZooConfig) -> UniversalSpec:
    """The universal weight space of the zoo's nets (hidden units: permutations × sign flips)."""
    return universal_spec_of(config.network())


class RNNRecipe(ZooRecipe):
    """The GRU zoo as a :class:`~nfkit.data.generators.runner.ZooRecipe`."""

    kind = "rnn"

    def __init__(self, config: RNNZooConfig) -> None:
        self.config = config

    def load_data(self) -> ImageSplit:
        return load_images(self.config.dataset)

    def run_chunk(self, k: int, data: object, generator: torch.Generator) -> tuple[np.ndarray, dict[str, list[object]]]:
        assert isinstance(data, ImageSplit)
        config = self.config
        first = k * config.chunk
        n = min(config.chunk, config.size - first)
        hyper = _sample_hyperparameters(n, generator)
        hyper["cell"] = np.array(["gru"] * n, dtype=object)
        return rows_by_activation(hyper, first, lambda sub: train_rnn_chunk(sub, data, config, generator), by="cell")

    def spec(self, table: dict[str, np.ndarray]) -> UniversalSpec:
        return rnn_zoo_spec(self.config)

    def describe(self, rows: int) -> str:
        return f"{self.config.size} GRUs × {len(self.config.checkpoints)} checkpoints"


def generate_rnn_zoo(out: str | Path, config: RNNZooConfig = RNNZooConfig(), **options: Any) -> Path | None:
    """Generate (or resume) a GRU zoo into ``out``; ``options`` are :func:`~nfkit.data.generators.runner.generate_zoo`'s."""
    return generate_zoo(out, RNNRecipe(config), **options)
