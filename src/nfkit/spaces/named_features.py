"""The container shared by transformer and traced-network features: :class:`NamedFeatures`.

One ``(B, C, *shape)`` tensor per tensor of the spec, in the spec's order, checked on construction
and immutable. Everything here needs only the spec's ``tensor_shapes()``, ``shape_key``,
``describe()`` and ``universal()`` (the description groups act through), so a new kind of weight
space gets its container by subclassing and adding its own accessors.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import torch

from nfkit.errors import NonFiniteWeightsError, SpecMismatchError
from nfkit.groups.base import GroupElement
from nfkit.spaces.action import transform_tensors

if TYPE_CHECKING:
    from typing import Self

    from nfkit.spaces.universal import UniversalSpec

__all__ = ["NamedFeatures", "NamedSpec", "Scalar"]

Scalar = int | float | torch.Tensor  # a Python number or a 0-dim tensor (e.g. a learned scale)


class NamedSpec(Protocol):
    """What :class:`NamedFeatures` reads of its spec."""

    def tensor_shapes(self) -> dict[str, tuple[int, ...]]: ...
    @property
    def shape_key(self) -> Hashable: ...
    def describe(self) -> str: ...
    def universal(self) -> UniversalSpec: ...
    def zero_tensors(self) -> frozenset[str]: ...


class NamedFeatures:
    """Name → ``(B, C, *shape)`` for every tensor of ``spec``, in its order; immutable. The base of every
    feature container (dense, transformer, traced): arithmetic with scalars and features of the same space,
    device and dtype moves, batch indexing, flat views, concatenation, the NaN check and the group action.

    Shapes: each tensor ``(B, C, *spec.tensor_shapes()[name])``, one ``B`` and ``C`` for all.
    """

    __slots__ = ("spec", "named")

    spec: NamedSpec
    named: dict[str, torch.Tensor]

    def __init__(self, spec: NamedSpec, named: Mapping[str, torch.Tensor]) -> None:
        shapes = spec.tensor_shapes()
        if set(named) != set(shapes):
            raise SpecMismatchError(
                f"{type(self).__name__}: missing tensors {sorted(set(shapes) - set(named))}, "
                f"unexpected {sorted(set(named) - set(shapes))}"
            )
        lead: tuple[int, ...] | None = None
        for name, shape in shapes.items():
            t = named[name]
            if not isinstance(t, torch.Tensor) or t.dim() != 2 + len(shape) or tuple(t.shape[2:]) != shape:
                got = tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__
                raise SpecMismatchError(f"{name} has shape {got}; expected (B, C, {', '.join(map(str, shape))})")
            if lead is None:
                lead = tuple(t.shape[:2])
            elif tuple(t.shape[:2]) != lead:
                raise SpecMismatchError(f"{name} has batch and channels {tuple(t.shape[:2])}, but the first tensor has {lead}")
        object.__setattr__(self, "spec", spec)
        object.__setattr__(self, "named", {name: named[name] for name in shapes})

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable; use map() or with_tensors()")

    # --- sizes and flat views -------------------------------------------------------------------
    def _first(self) -> torch.Tensor:
        return next(iter(self.named.values()))

    @property
    def batch_size(self) -> int:
        """B."""
        return self._first().shape[0]

    @property
    def channels(self) -> int:
        """C."""
        return self._first().shape[1]

    @property
    def dtype(self) -> torch.dtype:
        """The first tensor's dtype."""
        return self._first().dtype

    @property
    def device(self) -> torch.device:
        """The first tensor's device."""
        return self._first().device

    def __len__(self) -> int:
        return self.batch_size

    def tensors(self) -> Iterator[torch.Tensor]:
        """Every tensor in the spec's order."""
        return iter(self.named.values())

    def named_tensors(self, prefix: str = "") -> dict[str, torch.Tensor]:
        """Name → tensor, in order."""
        return {prefix + k: v for k, v in self.named.items()}

    def flatten(self) -> torch.Tensor:
        """All entries in the spec's order: ``(B, C, P)``."""
        b, c = self.batch_size, self.channels
        return torch.cat([t.reshape(b, c, -1) for t in self.named.values()], dim=-1)

    # --- arithmetic, moves and indexing ---------------------------------------------------------
    def _binary(
        self, other: Scalar | NamedFeatures, fn: Callable[[torch.Tensor, Any], torch.Tensor]
    ) -> Self:
        if isinstance(other, type(self)):
            return self.zip_map(other, fn)
        if isinstance(other, (int, float)) or (isinstance(other, torch.Tensor) and other.dim() == 0):
            return self.map(lambda t: fn(t, other))
        return NotImplemented

    def __add__(self, other: Scalar | NamedFeatures) -> Self:
        return self._binary(other, lambda a, b: a + b)

    __radd__ = __add__

    def __sub__(self, other: Scalar | NamedFeatures) -> Self:
        return self._binary(other, lambda a, b: a - b)

    def __rsub__(self, other: Scalar) -> Self:
        return self._binary(other, lambda a, b: b - a)

    def __mul__(self, other: Scalar | NamedFeatures) -> Self:
        return self._binary(other, lambda a, b: a * b)

    __rmul__ = __mul__

    def __truediv__(self, other: Scalar | NamedFeatures) -> Self:
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

    # --- new features ----------------------------------------------------------------------
    @classmethod
    def from_named(cls, spec: Any, named: Mapping[str, torch.Tensor]) -> Self:
        """Features of ``spec`` from name → tensor (what every operation here builds its result with)."""
        return cls(spec, named)

    @classmethod
    def from_tensors(cls, spec: NamedSpec, tensors: Sequence[torch.Tensor]) -> Self:
        """Features from tensors in the spec's order."""
        names = list(spec.tensor_shapes())
        if len(tensors) != len(names):
            raise SpecMismatchError(f"the spec has {len(names)} tensors, got {len(tensors)}")
        return cls.from_named(spec, dict(zip(names, tensors)))

    def with_tensors(self, tensors: Sequence[torch.Tensor]) -> Self:
        """Same spec, other tensors (in the spec's order)."""
        return self.from_tensors(self.spec, tensors)

    def map(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> Self:
        """Apply ``fn`` to every tensor."""
        return self.from_named(self.spec, {k: fn(v) for k, v in self.named.items()})

    def zip_map(self, other: Self, fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> Self:
        """Apply ``fn`` to matching tensor pairs of two features of the same spec."""
        self._require_same_space(other, "the second operand")
        return self.from_named(self.spec, {k: fn(v, other.named[k]) for k, v in self.named.items()})

    @classmethod
    def concatenate(cls, features: Sequence[Self], dim: int) -> Self:
        """Concatenate along the batch (``dim=0``) or channel (``dim=1``) axis."""
        first = features[0]
        for k, f in enumerate(features[1:], start=1):
            first._require_same_space(f, f"item {k}")
        return cls.from_named(first.spec, {name: torch.cat([f.named[name] for f in features], dim=dim) for name in first.named})

    @classmethod
    def unflatten(cls, spec: NamedSpec, flat: torch.Tensor) -> Self:
        """Inverse of :meth:`flatten`: ``(B, C, P) → features``."""
        shapes = list(spec.tensor_shapes().values())
        numels = [int(torch.Size(s).numel()) for s in shapes]
        if flat.dim() != 3 or flat.shape[-1] != sum(numels):
            raise SpecMismatchError(f"expected a flat tensor of shape (B, C, {sum(numels)}), got {tuple(flat.shape)}")
        parts = torch.split(flat, numels, dim=-1)
        return cls.from_tensors(spec, [p.reshape(*flat.shape[:2], *s) for p, s in zip(parts, shapes)])

    # --- checks and symmetry -------------------------------------------------------------------
    def _require_same_space(self, other: object, what: str) -> None:
        if not isinstance(other, type(self)) or other.spec.shape_key != self.spec.shape_key:
            got = other.spec.describe() if isinstance(other, NamedFeatures) else type(other).__name__
            raise SpecMismatchError(f"{what} does not have the spec of these features ({self.spec.describe()}); it has {got}")

    def check_finite(self, what: str = "weights") -> Self:
        """Raise :class:`NonFiniteWeightsError` naming the first tensor with NaN or Inf; return ``self``."""
        for name, t in self.named.items():
            if not bool(torch.isfinite(t).all()):
                bad = tuple((~torch.isfinite(t)).nonzero()[0].tolist())
                raise NonFiniteWeightsError(f"{what}: {name} contains NaN or Inf (first at index {bad}, value {t[bad].item()})")
        return self

    def transform(self, element: GroupElement) -> Self:
        """The features moved by ``element`` through the spec's universal description
        (:func:`nfkit.spaces.action.transform_tensors`); sets the element does not name stay put.
        Shapes unchanged."""
        return self.from_named(self.spec, transform_tensors(self.spec.universal(), self.named, element))

    def allclose(self, other: NamedFeatures, rtol: float = 1e-5, atol: float = 1e-8) -> bool:
        """Whether every tensor is close to its counterpart."""
        if not isinstance(other, type(self)) or other.spec.shape_key != self.spec.shape_key:
            return False
        return all(torch.allclose(a, b, rtol=rtol, atol=atol) for a, b in zip(self.tensors(), other.tensors()))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(batch={self.batch_size}, channels={self.channels}, dtype={self.dtype}, {self.spec.describe()})"
