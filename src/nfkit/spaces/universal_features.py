"""The container of features on a :class:`~nfkit.spaces.UniversalSpec`: :class:`UniversalFeatures`."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import final

import torch

from nfkit.errors import GroupMismatchError, NonFiniteWeightsError, SpecMismatchError
from nfkit.groups.base import GroupElement
from nfkit.groups.universal import UniversalElement
from nfkit.spaces.features import WeightSpaceFeatures, _NamedOps
from nfkit.spaces.spec import WeightSpaceSpec
from nfkit.spaces.universal import TensorAxis, UniversalSpec

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
        """The features moved by ``element``: per labelled axis, ``x ↦ G x`` (``"out"``), ``x ↦ x G⁻¹``
        (``"in"``) or ``x ↦ P x`` (``"tied"``), with ``G`` the axis' set's matrix. Sets the element does
        not name stay put."""
        if not isinstance(element, UniversalElement):
            raise GroupMismatchError(f"{element!r} does not act on universal features")
        known = {s.name for s in self.spec.sets}
        unknown = (set(element.permutations) | set(element.matrices)) - known
        if unknown:
            raise GroupMismatchError(f"the element acts on neuron sets {sorted(unknown)} this space does not have")
        inverse = element.inverse()
        out = {}
        for t in self.spec.tensors:
            x = self.named[t.name]
            axes = t.symmetric_axes()
            # per-head matrices act on the heads where they are, before the heads' permutation moves them
            for d, axis in axes:
                if axis.set in element.blocks:
                    heads = next(h for h, a in axes if a.set == element.blocks[axis.set])
                    x = _act_per_head(x, 2 + heads, 2 + d, axis, element.matrices[axis.set])
            for d, axis in axes:
                if axis.set not in element.blocks:
                    x = _act_on_axis(x, 2 + d, axis, element, inverse)
            out[t.name] = x
        return UniversalFeatures(self.spec, out)

    def allclose(self, other: UniversalFeatures, rtol: float = 1e-5, atol: float = 1e-8) -> bool:
        """Whether every tensor is close to its counterpart."""
        if not isinstance(other, UniversalFeatures) or other.spec.shape_key != self.spec.shape_key:
            return False
        return all(torch.allclose(a, b, rtol=rtol, atol=atol) for a, b in zip(self.tensors(), other.tensors()))

    def __repr__(self) -> str:
        return f"UniversalFeatures(batch={self.batch_size}, channels={self.channels}, dtype={self.dtype}, {self.spec.describe()})"


def _act_per_head(x: torch.Tensor, heads: int, dim: int, axis: TensorAxis, blocks: torch.Tensor) -> torch.Tensor:
    """``x ↦ A_j x`` (``"out"``) or ``x ↦ x A_j⁻¹`` (``"in"``) along ``dim`` for the slice of head ``j``."""
    moved = torch.movedim(x, (heads, dim), (-2, -1))
    if axis.role == "out":
        moved = torch.einsum("...jd,jed->...je", moved, blocks.to(x))
    else:
        moved = torch.einsum("...jd,jde->...je", moved, torch.linalg.inv(blocks).to(x))
    return torch.movedim(moved, (-2, -1), (heads, dim))


def _act_on_axis(x: torch.Tensor, dim: int, axis: TensorAxis, g: UniversalElement, g_inv: UniversalElement) -> torch.Tensor:
    shape = [1] * x.dim()
    shape[dim] = -1
    if axis.set in g.matrices:
        # "out": x ↦ G x along dim; "in": x ↦ x G⁻¹, i.e. new[j] = Σ_i old[i] (G⁻¹)[i, j]
        m = g.matrices[axis.set] if axis.role == "out" else g_inv.matrices[axis.set].transpose(0, 1)
        moved = torch.movedim(x, dim, -1)
        return torch.movedim(moved @ m.to(x).transpose(0, 1), -1, dim)
    if axis.set not in g.permutations:
        return x
    sources, d = g.permutations[axis.set]
    x = x.index_select(dim, sources.to(x.device))
    if axis.role == "out":
        return x * d.to(x).view(shape)
    if axis.role == "in":
        return x / d.to(x).view(shape)
    return x


UniversalSpec.features_type = UniversalFeatures
