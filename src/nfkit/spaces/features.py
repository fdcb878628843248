"""The container of weight-space features: :class:`WeightSpaceFeatures`."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, TypeVar, cast, final

import numpy as np
import torch

from nfkit.errors import GroupMismatchError, NonFiniteWeightsError, SpecMismatchError
from nfkit.groups.base import GroupElement
from nfkit.groups.neurons import MonomialElement
from nfkit.spaces.action import transform_tensors
from nfkit.spaces.spec import WeightSpaceSpec

if TYPE_CHECKING:
    from typing import Self

__all__ = ["WeightSpaceFeatures", "stack", "cat_channels"]

Scalar = int | float | torch.Tensor  # a Python number or a 0-dim tensor (e.g. a learned scale)


class _Ops:
    """Arithmetic, device/dtype moves and batch indexing, shared by every feature container.

    Subclasses provide ``map``, ``zip_map`` and ``batch_size``.
    """

    __slots__ = ()

    def map(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> Self:
        raise NotImplementedError

    def zip_map(self, other: Self, fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> Self:
        raise NotImplementedError

    @property
    def batch_size(self) -> int:
        raise NotImplementedError

    def _binary(
        self, other: Scalar | _Ops, fn: Callable[[torch.Tensor, Any], torch.Tensor]
    ) -> Self:
        if isinstance(other, type(self)):
            return self.zip_map(other, fn)
        if isinstance(other, (int, float)) or (isinstance(other, torch.Tensor) and other.dim() == 0):
            return self.map(lambda t: fn(t, other))
        return NotImplemented

    def __add__(self, other: Scalar | _Ops) -> Self:
        return self._binary(other, lambda a, b: a + b)

    __radd__ = __add__

    def __sub__(self, other: Scalar | _Ops) -> Self:
        return self._binary(other, lambda a, b: a - b)

    def __rsub__(self, other: Scalar) -> Self:
        return self._binary(other, lambda a, b: b - a)

    def __mul__(self, other: Scalar | _Ops) -> Self:
        return self._binary(other, lambda a, b: a * b)

    __rmul__ = __mul__

    def __truediv__(self, other: Scalar | _Ops) -> Self:
        return self._binary(other, lambda a, b: a / b)

    def __neg__(self) -> Self:
        return self.map(torch.neg)

    def to(self, *args: Any, **kwargs: Any) -> Self:
        """``Tensor.to`` on every tensor (device and/or dtype)."""
        return self.map(lambda t: t.to(*args, **kwargs))

    def detach(self) -> Self:
        """Detached from the autograd graph."""
        return self.map(torch.Tensor.detach)

    def clone(self) -> Self:
        """Deep copy of the tensors."""
        return self.map(torch.Tensor.clone)

    def __getitem__(self, index: int | slice | torch.Tensor | Sequence[int] | np.ndarray) -> Self:
        """Batch indexing. An integer keeps the batch axis (gives a batch of one)."""
        if isinstance(index, int):
            if not -self.batch_size <= index < self.batch_size:
                raise IndexError(f"index {index} out of range for a batch of {self.batch_size}")
            index = slice(index, index + 1 if index != -1 else None)
        elif isinstance(index, (list, tuple, np.ndarray)):
            index = torch.as_tensor(index)
            if index.dtype != torch.bool:
                index = index.long()
        return self.map(lambda t: t[index])


@final
class WeightSpaceFeatures(_Ops):
    """Weight and bias tensors of a batch of networks, each with channels, typed by a spec.

    Layout (fixed across nfkit):

    * ``weights[i]``: ``(B, C, n_{i+1}, n_i, *kernel_i)`` for layers i = 0..L-1;
    * ``biases[i]``: ``(B, C, n_{i+1})``.

    The shapes are checked against ``spec`` on construction, so a tensor of the wrong
    shape never reaches a layer. Instances are immutable: every operation returns new
    features.

    Example:
        >>> spec = WeightSpaceSpec.mlp([3, 4, 2])
        >>> f = spec.randn(5, channels=2)
        >>> len(f), f.channels
        (5, 2)
        >>> g = (f * 2 - f)[1:3]
        >>> g.allclose(f[1:3])
        True
        >>> f.flatten().shape
        torch.Size([5, 2, 26])
    """

    __slots__ = ("spec", "weights", "biases")

    spec: WeightSpaceSpec
    weights: tuple[torch.Tensor, ...]
    biases: tuple[torch.Tensor, ...]

    def __init__(
        self, spec: WeightSpaceSpec, weights: Sequence[torch.Tensor], biases: Sequence[torch.Tensor]
    ) -> None:
        weights = tuple(weights)
        biases = tuple(biases)
        if len(weights) != spec.num_layers or len(biases) != spec.num_layers:
            raise SpecMismatchError(
                f"the spec has {spec.num_layers} layers but got {len(weights)} weight and {len(biases)} bias tensors"
            )
        lead: tuple[int, int] | None = None
        for i, (w, b, layer) in enumerate(zip(weights, biases, spec.layers)):
            for kind, tensor, expected in (("weight", w, layer.weight_shape), ("bias", b, (layer.n_out,))):
                if not isinstance(tensor, torch.Tensor):
                    raise SpecMismatchError(f"layer {i + 1} {kind} is a {type(tensor).__name__}, not a tensor")
                if tensor.dim() != 2 + len(expected) or tuple(tensor.shape[2:]) != expected:
                    raise SpecMismatchError(
                        f"layer {i + 1} ({layer.describe()}) {kind} has shape {tuple(tensor.shape)}; "
                        f"expected (B, C, {', '.join(map(str, expected))})"
                    )
                if lead is None:
                    lead = (tensor.shape[0], tensor.shape[1])
                elif tuple(tensor.shape[:2]) != lead:
                    raise SpecMismatchError(
                        f"layer {i + 1} {kind} has batch and channels {tuple(tensor.shape[:2])}, "
                        f"but the first weight has {lead}"
                    )
        object.__setattr__(self, "spec", spec)
        object.__setattr__(self, "weights", weights)
        object.__setattr__(self, "biases", biases)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("WeightSpaceFeatures is immutable; use with_tensors() or map()")

    # --- sizes ---------------------------------------------------------------------------------
    @property
    def batch_size(self) -> int:
        """B."""
        return self.weights[0].shape[0]

    @property
    def channels(self) -> int:
        """C."""
        return self.weights[0].shape[1]

    @property
    def dtype(self) -> torch.dtype:
        """The first weight's dtype."""
        return self.weights[0].dtype

    @property
    def device(self) -> torch.device:
        """The first weight's device."""
        return self.weights[0].device

    def __len__(self) -> int:
        return self.batch_size

    def tensors(self) -> Iterator[torch.Tensor]:
        """``W⁽¹⁾, b⁽¹⁾, W⁽²⁾, b⁽²⁾, …`` in order."""
        for w, b in zip(self.weights, self.biases):
            yield w
            yield b

    def named_tensors(self, prefix: str = "") -> dict[str, torch.Tensor]:
        """``{"W1": W⁽¹⁾, "b1": b⁽¹⁾, …}`` (1-based, as in the papers), names prefixed with ``prefix``."""
        named = {}
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            named[f"{prefix}W{i + 1}"] = w
            named[f"{prefix}b{i + 1}"] = b
        return named

    # --- building new features -----------------------------------------------------------------
    def with_tensors(self, weights: Sequence[torch.Tensor], biases: Sequence[torch.Tensor]) -> WeightSpaceFeatures:
        """New features of the same spec holding other tensors."""
        return WeightSpaceFeatures(self.spec, weights, biases)

    def map(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> WeightSpaceFeatures:
        """Apply ``fn`` to every weight and bias tensor."""
        return WeightSpaceFeatures(self.spec, [fn(w) for w in self.weights], [fn(b) for b in self.biases])

    def zip_map(
        self, other: WeightSpaceFeatures, fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    ) -> WeightSpaceFeatures:
        """Apply ``fn`` to matching tensor pairs of two features of the same spec."""
        self.spec.require_compatible(other.spec, "the second operand")
        return WeightSpaceFeatures(
            self.spec,
            [fn(a, b) for a, b in zip(self.weights, other.weights)],
            [fn(a, b) for a, b in zip(self.biases, other.biases)],
        )

    # --- flat views ------------------------------------------------------------------------------
    def flatten(self) -> torch.Tensor:
        """All entries in order ``W⁽¹⁾, b⁽¹⁾, …``: shape ``(B, C, P)`` with ``P`` entries per channel.

        ``P`` counts the (zero) biases of bias-free layers too, so that :meth:`unflatten` inverts it.
        """
        b, c = self.batch_size, self.channels
        return torch.cat([t.reshape(b, c, -1) for t in self.tensors()], dim=-1)

    @staticmethod
    def unflatten(spec: WeightSpaceSpec, flat: torch.Tensor) -> WeightSpaceFeatures:
        """Inverse of :meth:`flatten`: ``(B, C, P) → features``."""
        sizes = []
        for w_shape, b_shape in zip(spec.weight_shapes, spec.bias_shapes):
            sizes += [w_shape, b_shape]
        numels = [int(torch.Size(s).numel()) for s in sizes]
        if flat.dim() != 3 or flat.shape[-1] != sum(numels):
            raise SpecMismatchError(f"expected a flat tensor of shape (B, C, {sum(numels)}), got {tuple(flat.shape)}")
        parts = torch.split(flat, numels, dim=-1)
        tensors = [p.reshape(*flat.shape[:2], *s) for p, s in zip(parts, sizes)]
        return WeightSpaceFeatures(spec, tensors[0::2], tensors[1::2])

    # --- checks ------------------------------------------------------------------------------
    def check_finite(self, what: str = "weights") -> WeightSpaceFeatures:
        """Raise :class:`NonFiniteWeightsError` naming the first tensor holding NaN or Inf; return ``self``."""
        for i, layer in enumerate(self.spec.layers):
            for kind, tensor in (("weight", self.weights[i]), ("bias", self.biases[i])):
                if not bool(torch.isfinite(tensor).all()):
                    bad = (~torch.isfinite(tensor)).nonzero()[0].tolist()
                    name = f" ({layer.name})" if layer.name else ""
                    raise NonFiniteWeightsError(
                        f"{what}: layer {i + 1}{name} {kind} contains NaN or Inf "
                        f"(first at index {tuple(bad)}, value {tensor[tuple(bad)].item()})"
                    )
        return self

    def transform(self, element: GroupElement) -> WeightSpaceFeatures:
        """The features moved by a hidden-neuron monomial element ``g = (D_ℓ P_ℓ)_ℓ``.

        ``W⁽ⁱ⁾ ↦ g_i W⁽ⁱ⁾ g_{i-1}⁻¹`` and ``b⁽ⁱ⁾ ↦ g_i b⁽ⁱ⁾`` with ``g_0 = g_L = I``
        (:mod:`nfkit.groups.neurons`; Zhou et al. 2023, Sec. 2; Tran et al. 2024, Sec. 4), acting through
        the space's universal description (:meth:`WeightSpaceSpec.universal`). The element must act on
        every hidden layer.

        Shapes: weights ``(B, C, n_i, n_{i-1}, *kernel)`` and biases ``(B, C, n_i)``, unchanged.
        """
        if isinstance(element, MonomialElement) and element.hidden_sizes != self.spec.hidden_sizes:
            raise GroupMismatchError(
                f"group element acts on hidden layers of sizes {element.hidden_sizes}, "
                f"but the features have hidden sizes {self.spec.hidden_sizes}"
            )
        moved = transform_tensors(self.spec.universal(), self.named_tensors(), element, exact=True)
        n = self.spec.num_layers
        return self.with_tensors([moved[f"W{i}"] for i in range(1, n + 1)], [moved[f"b{i}"] for i in range(1, n + 1)])

    def allclose(self, other: WeightSpaceFeatures, rtol: float = 1e-5, atol: float = 1e-8) -> bool:
        """Whether every tensor is close to its counterpart (same spec shapes required)."""
        if other.spec.shape_key != self.spec.shape_key:
            return False
        return all(
            a.shape == b.shape and torch.allclose(a, b, rtol=rtol, atol=atol)
            for a, b in zip(self.tensors(), other.tensors())
        )

    def __repr__(self) -> str:
        return (
            f"WeightSpaceFeatures(batch={self.batch_size}, channels={self.channels}, "
            f"dtype={self.dtype}, spec={self.spec.describe()})"
        )


_F = TypeVar("_F", bound=_Ops)


def stack(features: Sequence[_F]) -> _F:
    """Concatenate along the batch axis. All inputs must have the same spec and channels.

    Example:
        >>> spec = WeightSpaceSpec.mlp([2, 3, 1])
        >>> len(stack([spec.randn(1), spec.randn(2)]))
        3
    """
    if not features:
        raise ValueError("stack needs at least one WeightSpaceFeatures")
    first = features[0]
    if not isinstance(first, WeightSpaceFeatures):
        return type(first).concatenate(features, dim=0)  # type: ignore[attr-defined]  # TransformerFeatures
    dense = cast("Sequence[WeightSpaceFeatures]", features)
    for k, f in enumerate(dense[1:], start=1):
        if f.spec != first.spec:
            raise SpecMismatchError(
                f"item {k} has spec {f.spec.describe()!r}, but item 0 has {first.spec.describe()!r}"
            )
    return WeightSpaceFeatures(  # type: ignore[return-value]  # _F is WeightSpaceFeatures here
        first.spec,
        [torch.cat(ts, dim=0) for ts in zip(*(f.weights for f in dense))],
        [torch.cat(ts, dim=0) for ts in zip(*(f.biases for f in dense))],
    )


def cat_channels(features: Sequence[_F]) -> _F:
    """Concatenate along the channel axis (same spec shapes and batch size)."""
    if not features:
        raise ValueError("cat_channels needs at least one WeightSpaceFeatures")
    first = features[0]
    if not isinstance(first, WeightSpaceFeatures):
        return type(first).concatenate(features, dim=1)  # type: ignore[attr-defined]  # TransformerFeatures
    dense = cast("Sequence[WeightSpaceFeatures]", features)
    for f in dense[1:]:
        first.spec.require_compatible(f.spec)
    return WeightSpaceFeatures(  # type: ignore[return-value]  # _F is WeightSpaceFeatures here
        first.spec,
        [torch.cat(ts, dim=1) for ts in zip(*(f.weights for f in dense))],
        [torch.cat(ts, dim=1) for ts in zip(*(f.biases for f in dense))],
    )


# the spec builds its features through this (spec.py cannot import this module: it is imported by it)
WeightSpaceSpec.features_type = WeightSpaceFeatures
