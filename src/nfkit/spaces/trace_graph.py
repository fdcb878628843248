"""The bookkeeping of :func:`~nfkit.spaces.trace.universal_spec_of`: neuron sets joined by residual ties
(a union-find), what each traced value's feature axis is, and which diagonal factors each activation keeps."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import fx, nn

from nfkit.errors import SpecMismatchError, UnsupportedModuleError
from nfkit.nets.sine import Sine
from nfkit.spaces.universal import SCALE, SIGN

_ALL = frozenset({SCALE, SIGN})
_HOMOGENEOUS = frozenset({SCALE})
_ODD = frozenset({SIGN})
_NONE: frozenset[str] = frozenset()

#: What each activation keeps of a set's diagonal factors.
_ACTIVATION_MODULES: dict[type[nn.Module], frozenset[str]] = {
    nn.Identity: _ALL, nn.Dropout: _ALL, nn.ReLU: _HOMOGENEOUS, nn.LeakyReLU: _HOMOGENEOUS,
    nn.Tanh: _ODD, Sine: _ODD, nn.Softsign: _ODD, nn.Hardtanh: _NONE, nn.Sigmoid: _NONE, nn.GELU: _NONE,
    nn.SiLU: _NONE, nn.ELU: _NONE, nn.Softplus: _NONE, nn.Mish: _NONE, nn.ReLU6: _NONE,
    nn.MaxPool1d: _HOMOGENEOUS, nn.MaxPool2d: _HOMOGENEOUS, nn.AvgPool1d: _ALL, nn.AvgPool2d: _ALL,
}
_ACTIVATION_FUNCTIONS: dict[Callable[..., Any], frozenset[str]] = {
    torch.relu: _HOMOGENEOUS, F.relu: _HOMOGENEOUS, F.leaky_relu: _HOMOGENEOUS, torch.tanh: _ODD,
    F.tanh: _ODD, torch.sin: _ODD, torch.sigmoid: _NONE, F.sigmoid: _NONE, F.gelu: _NONE, F.silu: _NONE,
    F.max_pool2d: _HOMOGENEOUS, F.avg_pool2d: _ALL, F.dropout: _ALL,
}
_ACTIVATION_METHODS = {"relu": _HOMOGENEOUS, "tanh": _ODD, "sigmoid": _NONE, "sin": _ODD}


@dataclass
class _Set:
    name: str
    size: int | None
    factors: frozenset[str]
    fixed: bool = False
    kind: str = "permutation"
    blocks: str = ""


@dataclass(frozen=True)
class _Value:
    """A traced tensor: the origin set of its feature axis, where that axis is, and what it looks like."""

    origin: str
    feature_dim: int  # 1 (NC…), -1 (…F), or 0: not known yet (a network input)
    spatial: bool = False  # a conv feature map with spatial axes
    flattened: bool = False  # the feature axis is (set × positions) after flattening a map
    ndim: int | None = None


@dataclass
class _Trace:
    sets: dict[str, _Set] = field(default_factory=dict)
    parent: dict[str, str] = field(default_factory=dict)
    tensors: list[tuple[str, str, tuple[int, int] | None, tuple[int, ...], tuple[tuple[str, str] | None, ...]]] = field(
        default_factory=list
    )

    def new(self, name: str, size: int | None, factors: frozenset[str], *, fixed: bool = False, kind: str = "permutation",
            blocks: str = "") -> str:
        self.sets[name] = _Set(name, size, factors, fixed, kind, blocks)
        self.parent[name] = name
        return name

    def root(self, name: str) -> _Set:
        while self.parent[name] != name:
            name = self.parent[name]
        return self.sets[name]

    def size(self, origin: str, size: int, where: str) -> None:
        s = self.root(origin)
        if s.size is None:
            s.size = size
        elif s.size != size:
            raise SpecMismatchError(f"{where}: expects {size} features, its input has {s.size}")

    def restrict(self, origin: str, keep: frozenset[str]) -> None:
        s = self.root(origin)
        s.factors = s.factors & keep

    def tie(self, a: str, b: str, where: str) -> None:
        ra, rb = self.root(a), self.root(b)
        if ra is rb:
            return
        if ra.size is not None and rb.size is not None and ra.size != rb.size:
            raise SpecMismatchError(f"{where}: adds {ra.size} features to {rb.size}")
        first, second = sorted((ra, rb), key=lambda s: list(self.sets).index(s.name))
        self.parent[second.name] = first.name
        first.size = first.size if first.size is not None else second.size
        first.factors &= second.factors
        first.fixed = first.fixed or second.fixed

    def add(self, name: str, parameter: str, shape: tuple[int, ...], axes: tuple[tuple[str, str] | None, ...],
            rows: tuple[int, int] | None = None) -> None:
        self.tensors.append((name, parameter, rows, shape, axes))


def _unsupported(node: fx.Node, why: str = "") -> UnsupportedModuleError:
    what = node.target if isinstance(node.target, str) else getattr(node.target, "__name__", repr(node.target))
    kind = node.meta.get("module_type")  # set for call_module nodes, so the message names the layer's class
    return UnsupportedModuleError(
        f"cannot derive the weight space: {node.op} {what!r} ({kind + ', ' if kind else ''}node {node.name}) is not "
        f"supported{': ' + why if why else ''}"
    )


@dataclass(frozen=True)
class _Constant:
    """A tensor the network reads that is not a weight (a non-persistent buffer: fixed position encodings)."""

    name: str


@dataclass(frozen=True)
class _Unusable:
    """An output nfkit cannot label (using it anywhere is refused, with ``why``)."""

    why: str


#: the final states of a multi-layer recurrent net: one tensor over several neuron sets
_MIXED = _Unusable("the final states of a multi-layer recurrent net mix several neuron sets; read its output sequence instead")
#: attention weights: a function of the weights no neuron set describes
_ATTENTION_WEIGHTS = _Unusable("attention weights are not features of a neuron set; call attention with need_weights=False")


def _values(args: object) -> list[_Value]:
    found: list[_Value] = []
    if isinstance(args, _Unusable):
        raise UnsupportedModuleError(f"cannot derive the weight space: {args.why}")
    if isinstance(args, _Value):
        found.append(args)
    elif isinstance(args, (tuple, list)):
        for a in args:
            found.extend(_values(a))
    elif isinstance(args, dict):
        for a in args.values():
            found.extend(_values(a))
    return found


def _one_input(node: fx.Node, env: dict[str, Any]) -> _Value:
    args = [env[a.name] if isinstance(a, fx.Node) else a for a in node.args]
    found = [a for a in args if isinstance(a, _Value)]
    if len(found) != 1:
        raise _unsupported(node, "expected one traced tensor input")
    return found[0]
