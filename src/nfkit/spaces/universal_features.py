"""The container of features on a :class:`~nfkit.spaces.UniversalSpec`: :class:`UniversalFeatures`."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import final

import torch

from nfkit.errors import NonFiniteWeightsError, SpecMismatchError
from nfkit.groups.base import GroupElement
from nfkit.spaces.action import transform_tensors
from nfkit.spaces.features import WeightSpaceFeatures, _NamedOps
from nfkit.spaces.spec import WeightSpaceSpec
from nfkit.spaces.universal import UniversalSpec

__all__ = ["UniversalFeatures"]


@final
class UniversalFeatures(_NamedOps):
    """Named tensors ``(B, C, *shape)``, one per tensor of a :class:`UniversalSpec`, immutable.

    Example:
        >>> from nfkit.spaces import WeightSpaceSpec
        >>> from nfkit.spaces.universal import universal_spec
        >>> spec = universal_spec(WeightSpaceSpec.mlp([2, 4, 1], "tanh"))
        >>> f = spec.randn(3, channels=2)
        >>> f.named["W1"].shape, f.flatten().shape
        (torch.Size([3, 2, 4, 2]), torch.Size([3, 2, 17]))
        >>> g = spec.symmetry_group().sample()
        >>> g.inverse().act(g.act(f)).allclose(f)
        True
    """

    __slots__ = ("spec", "named")

    spec: UniversalSpec
    named: dict[str, torch.Tensor]

    def __init__(self, spec: UniversalSpec, named: Mapping[str, torch.Tensor]) -> None:
        shapes = spec.tensor_shapes()
        if set(named) != set(shapes):
            raise SpecMismatchError(
                f"features: missing tensors {sorted(set(shapes) - set(named))}, unexpected {sorted(set(named) - set(shapes))}"
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
                raise SpecMismatchError(f"{name} has batch and channels {tuple(t.shape[:2])}, the first tensor {lead}")
        object.__setattr__(self, "spec", spec)
        object.__setattr__(self, "named", {name: named[name] for name in shapes})

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("UniversalFeatures is immutable; use map() or with_tensors()")

    @staticmethod
    def from_dense(features: WeightSpaceFeatures, spec: UniversalSpec) -> UniversalFeatures:
        """The dense features ``W1, b1, …`` of an MLP or CNN as features of its universal ``spec``."""
        return UniversalFeatures(spec, features.named_tensors())

    def to_dense(self, spec: WeightSpaceSpec) -> WeightSpaceFeatures:
        """Back to dense features of ``spec`` (tensors named ``W1, b1, …``)."""
        n = spec.num_layers
        return WeightSpaceFeatures(spec, [self.named[f"W{i + 1}"] for i in range(n)], [self.named[f"b{i + 1}"] for i in range(n)])

    # --- new features ----------------------------------------------------------------------
    def with_tensors(self, tensors: Sequence[torch.Tensor]) -> UniversalFeatures:
        """Same spec, other tensors (in the spec's order)."""
        if len(tensors) != len(self.named):
            raise SpecMismatchError(f"the spec has {len(self.named)} tensors, got {len(tensors)}")
        return UniversalFeatures(self.spec, dict(zip(self.named, tensors)))

    def map(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> UniversalFeatures:
        """Apply ``fn`` to every tensor."""
        return UniversalFeatures(self.spec, {k: fn(v) for k, v in self.named.items()})

    def zip_map(self, other: UniversalFeatures, fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> UniversalFeatures:
        """Apply ``fn`` to matching tensor pairs of two features of the same spec."""
        self.spec.require_compatible(other.spec, "the second operand")
        return UniversalFeatures(self.spec, {k: fn(v, other.named[k]) for k, v in self.named.items()})

    @staticmethod
    def concatenate(features: Sequence[UniversalFeatures], dim: int) -> UniversalFeatures:
        """Concatenate along the batch (``dim=0``) or channel (``dim=1``) axis."""
        first = features[0]
        for f in features[1:]:
            first.spec.require_compatible(f.spec, "the features to concatenate")
        return UniversalFeatures(first.spec, {k: torch.cat([f.named[k] for f in features], dim=dim) for k in first.named})

    # --- checks and symmetry -------------------------------------------------------------------
    def check_finite(self, what: str = "weights") -> UniversalFeatures:
        """Raise :class:`NonFiniteWeightsError` naming the first tensor with NaN or Inf; return ``self``."""
        for name, t in self.named.items():
            if not bool(torch.isfinite(t).all()):
                raise NonFiniteWeightsError(f"{what}: {name} contains NaN or Inf")
        return self

    def transform(self, element: GroupElement) -> UniversalFeatures:
        """The features moved by ``element`` (:func:`nfkit.spaces.action.transform_tensors`); sets the
        element does not name stay put."""
        return UniversalFeatures(self.spec, transform_tensors(self.spec, self.named, element))

    def allclose(self, other: UniversalFeatures, rtol: float = 1e-5, atol: float = 1e-8) -> bool:
        """Whether every tensor is close to its counterpart."""
        if not isinstance(other, UniversalFeatures) or other.spec.shape_key != self.spec.shape_key:
            return False
        return all(torch.allclose(a, b, rtol=rtol, atol=atol) for a, b in zip(self.tensors(), other.tensors()))

    def __repr__(self) -> str:
        return f"UniversalFeatures(batch={self.batch_size}, channels={self.channels}, dtype={self.dtype}, {self.spec.describe()})"


UniversalSpec.features_type = UniversalFeatures
