"""The container shared by transformer and traced-network features: :class:`NamedFeatures`.

One ``(B, C, *shape)`` tensor per tensor of the spec, in the spec's order, checked on construction
and immutable. Everything here needs only the spec's ``tensor_shapes()``, ``shape_key``,
``describe()`` and ``universal()`` (the description groups act through), so a new kind of weight
space gets its container by subclassing and adding its own accessors.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Protocol

import torch

from nfkit.errors import NonFiniteWeightsError, SpecMismatchError
from nfkit.groups.base import GroupElement
from nfkit.spaces.action import transform_tensors
from nfkit.spaces.features import _Ops

if TYPE_CHECKING:
    from typing import Self

    from nfkit.spaces.universal import UniversalSpec

__all__ = ["NamedFeatures", "NamedSpec"]


class NamedSpec(Protocol):
    """What :class:`NamedFeatures` reads of its spec."""

    def tensor_shapes(self) -> dict[str, tuple[int, ...]]: ...
    @property
    def shape_key(self) -> Hashable: ...
    def describe(self) -> str: ...
    def universal(self) -> UniversalSpec: ...


class NamedFeatures(_Ops):
    """Name → ``(B, C, *shape)`` for every tensor of ``spec``, in its order; immutable.

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

    # --- new features ----------------------------------------------------------------------
    @classmethod
    def from_tensors(cls, spec: NamedSpec, tensors: Sequence[torch.Tensor]) -> Self:
        """Features from tensors in the spec's order."""
        names = list(spec.tensor_shapes())
        if len(tensors) != len(names):
            raise SpecMismatchError(f"the spec has {len(names)} tensors, got {len(tensors)}")
        return cls(spec, dict(zip(names, tensors)))

    def with_tensors(self, tensors: Sequence[torch.Tensor]) -> Self:
        """Same spec, other tensors (in the spec's order)."""
        return self.from_tensors(self.spec, tensors)

    def map(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> Self:
        """Apply ``fn`` to every tensor."""
        return type(self)(self.spec, {k: fn(v) for k, v in self.named.items()})

    def zip_map(self, other: Self, fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> Self:
        """Apply ``fn`` to matching tensor pairs of two features of the same spec."""
        self._require_same_space(other, "the second operand")
        return type(self)(self.spec, {k: fn(v, other.named[k]) for k, v in self.named.items()})

    @classmethod
    def concatenate(cls, features: Sequence[Self], dim: int) -> Self:
        """Concatenate along the batch (``dim=0``) or channel (``dim=1``) axis."""
        first = features[0]
        for k, f in enumerate(features[1:], start=1):
            first._require_same_space(f, f"item {k}")
        return cls(first.spec, {name: torch.cat([f.named[name] for f in features], dim=dim) for name in first.named})

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
        return type(self)(self.spec, transform_tensors(self.spec.universal(), self.named, element))

    def allclose(self, other: NamedFeatures, rtol: float = 1e-5, atol: float = 1e-8) -> bool:
        """Whether every tensor is close to its counterpart."""
        if not isinstance(other, type(self)) or other.spec.shape_key != self.spec.shape_key:
            return False
        return all(torch.allclose(a, b, rtol=rtol, atol=atol) for a, b in zip(self.tensors(), other.tensors()))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(batch={self.batch_size}, channels={self.channels}, dtype={self.dtype}, {self.spec.describe()})"
