"""Generate a transformer zoo in the style of the Small Transformer Zoo (Transformer-NFN, ICLR 2025, App. F).

Each net is a :class:`~nfkit.nets.transformer.SmallTransformer` (by default D = 16, 2 heads, FFN 32,
one block, no residuals and plain LayerNorms, as in the published zoo) trained either as a
ViT on scikit-learn's 8×8 digits cut into 2×2 patches (16 tokens) or as a text classifier on the
synthetic topic-mixture corpus. Per-net hyperparameters follow the zoo's sweep: optimizer (AdamW
or SGD with momentum 0.9), learning rate, initialisation std (truncated normal, zero biases),
weight decay, training fraction, and here also the FFN activation (ReLU or GELU).

A chunk's nets train together: ``torch.func.vmap`` of ``grad`` over their stacked parameters, each
net on its own batches of its own training subset, with optimizer updates written out per net.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.func import functional_call, grad, vmap

from nfkit.spaces.universal_features import UniversalFeatures
from nfkit.data.generators.runner import (
    ZooRecipe,
    checked_choices,
    checked_schedule,
    choice,
    generate_zoo,
    log_uniform,
    rows_by_activation,
)
from nfkit.data.generators.sources import (
    ImageSplit,
    TokenSplit,
    load_digits,
    topic_mixture_text,
)
from nfkit.data.zoo_format import Zoo
from nfkit.errors import ZooFormatError
from nfkit.nets.transformer import SmallTransformer
from nfkit.spaces.convert import load_into, spec_of, weights_of
from nfkit.spaces.transformer_spec import TransformerSpec

__all__ = ["TransformerZooConfig", "TransformerRecipe", "generate_transformer_zoo", "zoo_network", "OPTIMIZERS"]

OPTIMIZERS = ("adamw", "sgd")
ACTIVATIONS = ("relu", "gelu")
DATASETS = ("digits", "topics")


@dataclass(frozen=True)
class TransformerZooConfig:
    """Settings of a generated transformer zoo (stored in its manifest)."""

    size: int = 1000
    seed: int = 0
    epochs: int = 30  # with 10, a quarter of the nets had not left chance accuracy at the last checkpoint
    checkpoints: tuple[int, ...] = (10, 30)
    batch_size: int = 32
    chunk: int = 100
    dataset: str = "digits"
    d_model: int = 16
    heads: int = 2
    d_ff: int = 32
    blocks: int = 1
    activations: tuple[str, ...] = ACTIVATIONS

    def __post_init__(self) -> None:
        checkpoints = checked_schedule(self.size, self.chunk, self.epochs, self.checkpoints)
        object.__setattr__(self, "checkpoints", checkpoints)
        checked_choices(self.dataset, DATASETS, self.activations, ACTIVATIONS)

    def to_dict(self) -> dict[str, object]:
        """JSON-ready settings."""
        d = asdict(self)
        d["checkpoints"], d["activations"] = list(self.checkpoints), list(self.activations)
        return d

    def network(self, activation: str = "relu") -> SmallTransformer:
        """A fresh network of this zoo's architecture."""
        if self.dataset == "digits":
            return SmallTransformer(d_model=self.d_model, heads=self.heads, d_ff=self.d_ff, blocks=self.blocks,
                                    activation=activation, patch=2, image=8, classes=10)
        return SmallTransformer(d_model=self.d_model, heads=self.heads, d_ff=self.d_ff, blocks=self.blocks,
                                activation=activation, vocab=64, max_len=16, classes=4)


def _load(dataset: str) -> ImageSplit | TokenSplit:
    return load_digits() if dataset == "digits" else topic_mixture_text()


def _xy(data: ImageSplit | TokenSplit, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
    if isinstance(data, ImageSplit):
        return (data.train_images, data.train_labels) if train else (data.test_images, data.test_labels)
    return (data.train_tokens, data.train_labels) if train else (data.test_tokens, data.test_labels)


def _sample(n: int, config: TransformerZooConfig, generator: torch.Generator) -> dict[str, np.ndarray]:
    optimizer = choice(n, OPTIMIZERS, generator)
    lr = log_uniform(n, 1e-4, 1e-2, generator) * np.where(optimizer == "sgd", 10.0, 1.0)
    return {
        "activation": choice(n, config.activations, generator),
        "optimizer": optimizer,
        "learning_rate": lr,
        "init_std": log_uniform(n, 0.08, 0.5, generator),
        "weight_decay": log_uniform(n, 1e-6, 1e-2, generator),
        "train_fraction": (0.1 + 0.9 * torch.rand(n, generator=generator, dtype=torch.float64)).numpy(),
    }


def _init(net: SmallTransformer, n: int, std: torch.Tensor, generator: torch.Generator) -> dict[str, torch.Tensor]:
    params = {}
    for name, p in net.named_parameters():
        if name.endswith("bias"):
            params[name] = torch.zeros(n, *p.shape)
        else:  # truncated normal at ±2 std, as the zoo's trunc_normal_
            x = torch.randn(n, *p.shape, generator=generator).clamp_(-2.0, 2.0)
            params[name] = x * std.view(-1, *([1] * p.dim()))
    return params


def _evaluate(net: SmallTransformer, params: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor,
              masks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    with torch.no_grad():
        logits = vmap(lambda p: functional_call(net, p, (x,)))(params)  # (N, M, classes)
        losses = F.cross_entropy(logits.transpose(1, 2), y.expand(len(masks), -1), reduction="none").double()
        correct = (logits.argmax(-1) == y).double()
        count = masks.sum(1).clamp_min(1)
        return (correct * masks).sum(1) / count, torch.nan_to_num(losses * masks, nan=1e6).sum(1) / count


def train_chunk(
    hyper: dict[str, np.ndarray], data: ImageSplit | TokenSplit, config: TransformerZooConfig, generator: torch.Generator
) -> tuple[dict[int, np.ndarray], dict[str, np.ndarray]]:
    """Train nets of one activation together; return ``({epoch: flat weights (N, P)}, metrics checkpoint-major)``."""
    (activation,) = set(hyper["activation"])
    net = config.network(activation).eval()  # no dropout: eval and train forward agree
    n = len(hyper["optimizer"])
    lr, wd, std = (torch.as_tensor(hyper[k].astype(np.float64), dtype=torch.float32) for k in ("learning_rate", "weight_decay", "init_std"))
    adam = torch.as_tensor(hyper["optimizer"] == "adamw")
    params = _init(net, n, std, generator)
    first = {k: torch.zeros_like(v) for k, v in params.items()}
    second = {k: torch.zeros_like(v) for k, v in params.items()}
    x_train, y_train = _xy(data, True)
    x_test, y_test = _xy(data, False)
    m = len(y_train)
    order = torch.stack([torch.randperm(m, generator=generator) for _ in range(n)])
    subset = torch.as_tensor(np.maximum(1, np.round(hyper["train_fraction"] * m)).astype(np.int64))
    train_masks = torch.zeros(n, m, dtype=torch.float64)
    for k in range(n):
        train_masks[k, order[k, : subset[k]]] = 1.0

    def loss(p: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(functional_call(net, p, (x,)), y)

    gradient = vmap(grad(loss))
    saved: dict[int, np.ndarray] = {}
    metrics: dict[str, list[np.ndarray]] = {k: [] for k in ("epoch", "test_accuracy", "test_loss", "train_accuracy", "train_loss")}
    step = 0
    for epoch in range(1, config.epochs + 1):
        for _ in range(m // config.batch_size):
            step += 1
            picks = (torch.rand(n, config.batch_size, generator=generator) * subset.unsqueeze(1)).long()
            idx = torch.gather(order, 1, picks)
            grads = gradient(params, x_train[idx], y_train[idx])
            for name, p in params.items():
                shape = (-1, *([1] * (p.dim() - 1)))
                g = torch.nan_to_num(grads[name], nan=0.0, posinf=0.0, neginf=0.0)
                a = adam.view(shape)
                g_sgd = g + wd.view(shape) * p  # SGD: L2 in the gradient; AdamW: decoupled decay below
                first[name] = torch.where(a, 0.9 * first[name] + 0.1 * g, 0.9 * first[name] + g_sgd)
                second[name] = torch.where(a, 0.999 * second[name] + 0.001 * g * g, second[name])
                adam_step = (first[name] / (1 - 0.9**step)) / ((second[name] / (1 - 0.999**step)).sqrt() + 1e-8) + wd.view(shape) * p
                update = torch.where(a, adam_step, first[name])
                params[name] = (p - lr.view(shape) * update).nan_to_num(nan=0.0, posinf=1e6, neginf=-1e6).clamp(-1e6, 1e6)
        if epoch in config.checkpoints:
            test = _evaluate(net, params, x_test, y_test, torch.ones(n, len(y_test), dtype=torch.float64))
            train = _evaluate(net, params, x_train, y_train, train_masks)
            saved[epoch] = _flatten(net, params)
            metrics["epoch"].append(np.full(n, epoch))
            for key, value in zip(("test_accuracy", "test_loss", "train_accuracy", "train_loss"), (*test, *train)):
                metrics[key].append(value.numpy())
    return saved, {k: np.concatenate(v) for k, v in metrics.items()}


def _flatten(net: SmallTransformer, params: dict[str, torch.Tensor]) -> np.ndarray:
    rows = []
    for k in range(len(next(iter(params.values())))):
        net.load_state_dict({name: p[k] for name, p in params.items()})
        rows.append(weights_of(net).flatten()[0, 0].numpy())
    return np.stack(rows)


class TransformerRecipe(ZooRecipe):
    """The transformer zoo as a :class:`~nfkit.data.generators.runner.ZooRecipe`."""

    kind = "transformer"

    def __init__(self, config: TransformerZooConfig) -> None:
        self.config = config

    def load_data(self) -> ImageSplit | TokenSplit:
        return _load(self.config.dataset)

    def run_chunk(self, k: int, data: object, generator: torch.Generator) -> tuple[np.ndarray, dict[str, list[object]]]:
        config = self.config
        first = k * config.chunk
        hyper = _sample(min(config.chunk, config.size - first), config, generator)
        assert isinstance(data, (ImageSplit, TokenSplit))
        return rows_by_activation(hyper, first, lambda sub: train_chunk(sub, data, config, generator))

    def spec(self, table: dict[str, np.ndarray]) -> TransformerSpec:
        kinds = sorted(set(table["activation"]))
        spec = spec_of(self.config.network(kinds[0]))
        assert isinstance(spec, TransformerSpec)
        if len(kinds) == 1:
            return spec
        return replace(spec, blocks=tuple(replace(b, activation="mixed") for b in spec.blocks))

    def describe(self, rows: int) -> str:
        return f"{self.config.size} transformers × {len(self.config.checkpoints)} checkpoints"


def generate_transformer_zoo(out: str | Path, config: TransformerZooConfig = TransformerZooConfig(), **options: Any) -> Path | None:
    """Generate (or resume) a transformer zoo into ``out``; ``options`` are :func:`~nfkit.data.generators.runner.generate_zoo`'s
    (``shard``, ``workers``, ``overwrite``, ``progress``)."""
    return generate_zoo(out, TransformerRecipe(config), **options)


def zoo_network(zoo: Zoo, row: int) -> SmallTransformer:
    """The ``nn.Module`` of row ``row`` of a generated transformer zoo, weights loaded (eval mode)."""
    generator_settings = zoo.metadata["generator"]
    if not isinstance(generator_settings, dict):
        raise ZooFormatError("the zoo's metadata has no generator settings; it was not made by nfkit zoo generate transformer")
    settings = dict(generator_settings)
    settings["checkpoints"], settings["activations"] = tuple(settings["checkpoints"]), tuple(settings["activations"])
    config = TransformerZooConfig(**settings)
    net = config.network(str(zoo.table["activation"][row]))
    features = zoo.features[row]
    assert not isinstance(features, UniversalFeatures)  # a transformer zoo's spec is a TransformerSpec
    return load_into(net, features).eval()
