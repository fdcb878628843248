"""Shared fixtures: small real networks and their specs."""

from __future__ import annotations

import os
from collections.abc import Callable
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from nfkit.spaces import Sine

ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "relu": nn.ReLU,
    "leaky_relu": lambda: nn.LeakyReLU(0.1),
    "tanh": nn.Tanh,
    "sine": lambda: Sine(3.0),
    "sigmoid": nn.Sigmoid,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
}


def make_mlp(activation: str, sizes: tuple[int, ...] = (3, 6, 5, 2), bias: bool = True) -> nn.Sequential:
    """An MLP with the given hidden activation, float64."""
    modules: list[nn.Module] = []
    for i in range(len(sizes) - 1):
        modules.append(nn.Linear(sizes[i], sizes[i + 1], bias=bias))
        if i < len(sizes) - 2:
            modules.append(ACTIVATIONS[activation]())
    return nn.Sequential(*modules).double()


def make_cnn(activation: str, kernel: int = 3, stride: int = 2, padding: int = 0, bias: bool = True) -> nn.Sequential:
    """A CNN conv 1→4→5, global average pooling, dense 5→3, float64."""
    return nn.Sequential(
        nn.Conv2d(1, 4, kernel, stride=stride, padding=padding, bias=bias),
        ACTIVATIONS[activation](),
        nn.Dropout(0.1),
        nn.Conv2d(4, 5, kernel, stride=stride, padding=padding, bias=bias),
        ACTIVATIONS[activation](),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(5, 3, bias=bias),
    ).double()


@pytest.fixture(autouse=True)
def _seeded() -> None:
    """Every test starts from the same global RNG state: no test depends on luck."""
    torch.manual_seed(0)


@pytest.fixture
def generator() -> torch.Generator:
    return torch.Generator().manual_seed(1234)


def _alive(pid: int) -> bool:
    """Whether a process exists and is not a zombie (Linux ``/proc``)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[1][0] != "Z"
    except FileNotFoundError:
        return False


def _children(pid: int) -> set[int]:
    """The pids of a process's direct children (every thread's)."""
    found: set[int] = set()
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/children") as f:
            found |= {int(p) for p in f.read().split()}
    return found


@pytest.fixture
def processes() -> SimpleNamespace:
    """``processes.alive(pid)`` and ``processes.children(pid)``, for tests that kill parents."""
    return SimpleNamespace(alive=_alive, children=_children)


class ViTBlock(nn.Module):
    """A pre-norm block written by hand: ``x + attn(LN x)``, then ``x + mlp(LN x)`` (GELU)."""

    def __init__(self, width: int, heads: int, hidden: int) -> None:
        super().__init__()
        self.norm1, self.attn = nn.LayerNorm(width), nn.MultiheadAttention(width, heads, batch_first=True)
        self.norm2 = nn.LayerNorm(width)
        self.mlp = nn.Sequential(nn.Linear(width, hidden), nn.GELU(), nn.Linear(hidden, width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = self.norm1(x)
        x = x + self.attn(n, n, n, need_weights=False)[0]
        return x + self.mlp(self.norm2(x))


class ViTWithMLPHead(nn.Module):
    """A linear embedding, two hand-written :class:`ViTBlock` s, a final norm, the mean token, a ReLU MLP head."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Linear(3, 4)
        self.blocks = nn.Sequential(ViTBlock(4, 2, 6), ViTBlock(4, 2, 5))
        self.norm = nn.LayerNorm(4)
        self.head = nn.Sequential(nn.Linear(4, 5), nn.ReLU(), nn.Linear(5, 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.norm(self.blocks(self.embed(x))).mean(1))


class EncoderWithMLPHead(nn.Module):
    """A linear embedding, one encoder layer, the mean token, and a ReLU MLP head (a set of the rest's own)."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Linear(3, 4)
        self.layer = nn.TransformerEncoderLayer(4, 2, 6, dropout=0.0, batch_first=True)
        self.head = nn.Sequential(nn.Linear(4, 5), nn.ReLU(), nn.Linear(5, 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.layer(self.embed(x)).mean(1))
