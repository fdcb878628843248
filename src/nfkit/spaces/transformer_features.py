"""The container of transformer weight-space features: :class:`TransformerFeatures`."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import final

import torch

from nfkit.errors import NonFiniteWeightsError, SpecMismatchError
from nfkit.groups.base import GroupElement
from nfkit.spaces.action import transform_tensors
from nfkit.spaces.features import WeightSpaceFeatures, _NamedOps
from nfkit.spaces.spec import WeightSpaceSpec
from nfkit.spaces.transformer_spec import TransformerSpec

__all__ = ["TransformerFeatures"]



@final
class TransformerFeatures(_NamedOps):
    """Named tensors of a batch of transformers, each ``(B, C, *shape)``, typed by a :class:`TransformerSpec`.

    Names are ``"blocks.{l}.query"`` … (see :mod:`nfkit.spaces.transformer_spec`), and
    ``"embedding.W1"``, ``"head.b2"`` … for the dense parts. Shapes are checked on
    construction; instances are immutable.

    Example:
        >>> from nfkit.spaces.transformer_spec import AttentionBlockSpec
        >>> spec = TransformerSpec((AttentionBlockSpec(8, 2, 4, 4, 16),))
        >>> f = spec.randn(3, channels=2)
        >>> f.blocks[0]["output"].shape, f.flatten().shape
        (torch.Size([3, 2, 2, 4, 8]), torch.Size([3, 2, 600]))
        >>> (f * 2 - f)[1:].allclose(f[1:])
        True
    """

    __slots__ = ("spec", "named")

    spec: TransformerSpec
    named: dict[str, torch.Tensor]

    def __init__(self, spec: TransformerSpec, named: Mapping[str, torch.Tensor]) -> None:
        shapes = spec.tensor_shapes()
        if set(named) != set(shapes):
            missing = sorted(set(shapes) - set(named))
            extra = sorted(set(named) - set(shapes))
            raise SpecMismatchError(f"transformer features: missing tensors {missing}, unexpected {extra}")
        lead: tuple[int, int] | None = None
        ordered = {}
        for name, shape in shapes.items():
            t = named[name]
            if not isinstance(t, torch.Tensor):
                raise SpecMismatchError(f"{name} is a {type(t).__name__}, not a tensor")
            if t.dim() != 2 + len(shape) or tuple(t.shape[2:]) != shape:
                raise SpecMismatchError(
                    f"{name} has shape {tuple(t.shape)}; expected (B, C, {', '.join(map(str, shape))})"
                )
            if lead is None:
                lead = (t.shape[0], t.shape[1])
            elif tuple(t.shape[:2]) != lead:
                raise SpecMismatchError(f"{name} has batch and channels {tuple(t.shape[:2])}, but the first tensor has {lead}")
            ordered[name] = t
        object.__setattr__(self, "spec", spec)
        object.__setattr__(self, "named", ordered)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("TransformerFeatures is immutable; use map() or with_tensors()")

    @staticmethod
    def from_tensors(spec: TransformerSpec, tensors: Sequence[torch.Tensor]) -> TransformerFeatures:
        """Features from tensors in the spec's order (:meth:`TransformerSpec.tensor_shapes`)."""
        names = list(spec.tensor_shapes())
        if len(tensors) != len(names):
            raise SpecMismatchError(f"the spec has {len(names)} tensors, got {len(tensors)}")
        return TransformerFeatures(spec, dict(zip(names, tensors)))

    @staticmethod
    def assemble(
        spec: TransformerSpec,
        blocks: Sequence[Mapping[str, torch.Tensor]],
        embedding: WeightSpaceFeatures | None = None,
        head: WeightSpaceFeatures | None = None,
    ) -> TransformerFeatures:
        """Features from per-block dicts (short names) and the dense parts."""
        named: dict[str, torch.Tensor] = {}
        for part, sub in (("embedding", embedding), ("head", head)):
            if sub is not None:
                named.update(sub.named_tensors(prefix=f"{part}."))
        for l, block in enumerate(blocks):
            named.update({f"blocks.{l}.{k}": v for k, v in block.items()})
        return TransformerFeatures(spec, named)

    # --- parts ---------------------------------------------------------------------------
    @property
    def blocks(self) -> tuple[dict[str, torch.Tensor], ...]:
        """Per block, short name → tensor."""
        return tuple(
            {n: self.named[f"blocks.{l}.{n}"] for n in b.tensor_shapes()} for l, b in enumerate(self.spec.blocks)
        )

    def _dense(self, part: str, spec: WeightSpaceSpec | None) -> WeightSpaceFeatures | None:
        if spec is None:
            return None
        n = spec.num_layers
        return WeightSpaceFeatures(
            spec, [self.named[f"{part}.W{i + 1}"] for i in range(n)], [self.named[f"{part}.b{i + 1}"] for i in range(n)]
        )

    @property
    def embedding(self) -> WeightSpaceFeatures | None:
        """The embedding's features, if the spec has one."""
        return self._dense("embedding", self.spec.embedding)

    @property
    def head(self) -> WeightSpaceFeatures | None:
        """The classifier head's features, if the spec has one."""
        return self._dense("head", self.spec.head)

    # --- new features ----------------------------------------------------------------------
    def with_tensors(self, tensors: Sequence[torch.Tensor]) -> TransformerFeatures:
        """Same spec, other tensors (in the spec's order)."""
        return TransformerFeatures.from_tensors(self.spec, tensors)

    def map(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> TransformerFeatures:
        """Apply ``fn`` to every tensor."""
        return TransformerFeatures(self.spec, {k: fn(v) for k, v in self.named.items()})

    def zip_map(
        self, other: TransformerFeatures, fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    ) -> TransformerFeatures:
        """Apply ``fn`` to matching tensor pairs of two features of the same spec."""
        self.spec.require_compatible(other.spec, "the second operand")
        return TransformerFeatures(self.spec, {k: fn(v, other.named[k]) for k, v in self.named.items()})

    # --- flat views ------------------------------------------------------------------------
    @staticmethod
    def unflatten(spec: TransformerSpec, flat: torch.Tensor) -> TransformerFeatures:
        """Inverse of :meth:`flatten`: ``(B, C, P) → features``."""
        shapes = list(spec.tensor_shapes().values())
        numels = [int(torch.Size(s).numel()) for s in shapes]
        if flat.dim() != 3 or flat.shape[-1] != sum(numels):
            raise SpecMismatchError(f"expected a flat tensor of shape (B, C, {sum(numels)}), got {tuple(flat.shape)}")
        parts = torch.split(flat, numels, dim=-1)
        return TransformerFeatures.from_tensors(spec, [p.reshape(*flat.shape[:2], *s) for p, s in zip(parts, shapes)])

    # --- checks ----------------------------------------------------------------------------
    def check_finite(self, what: str = "weights") -> TransformerFeatures:
        """Raise :class:`NonFiniteWeightsError` naming the first tensor with NaN or Inf; return ``self``."""
        for name, t in self.named.items():
            if not bool(torch.isfinite(t).all()):
                bad = tuple((~torch.isfinite(t)).nonzero()[0].tolist())
                raise NonFiniteWeightsError(f"{what}: {name} contains NaN or Inf (first at index {bad}, value {t[bad].item()})")
        return self

    def transform(self, element: GroupElement) -> TransformerFeatures:
        """The features moved by a transformer group element (:mod:`nfkit.groups.transformer`;
        Tran et al., ICLR 2025, Sec. 3), through the space's universal description
        (:meth:`TransformerSpec.universal`). Shapes unchanged."""
        return TransformerFeatures(self.spec, transform_tensors(self.spec.universal(), self.named, element))

    def allclose(self, other: TransformerFeatures, rtol: float = 1e-5, atol: float = 1e-8) -> bool:
        """Whether every tensor is close to its counterpart."""
        if not isinstance(other, TransformerFeatures) or other.spec.shape_key != self.spec.shape_key:
            return False
        return all(
            a.shape == b.shape and torch.allclose(a, b, rtol=rtol, atol=atol)
            for a, b in zip(self.tensors(), other.tensors())
        )

    @staticmethod
    def concatenate(features: Sequence[TransformerFeatures], dim: int) -> TransformerFeatures:
        """Concatenate along the batch (``dim=0``) or channel (``dim=1``) axis."""
        first = features[0]
        for k, f in enumerate(features[1:], start=1):
            if not isinstance(f, TransformerFeatures) or f.spec.shape_key != first.spec.shape_key:
                raise SpecMismatchError(f"item {k} does not have the spec of item 0 ({first.spec.describe()})")
        return TransformerFeatures(first.spec, {k: torch.cat([f.named[k] for f in features], dim=dim) for k in first.named})

    def __repr__(self) -> str:
        return (
            f"TransformerFeatures(batch={self.batch_size}, channels={self.channels}, dtype={self.dtype}, "
            f"spec={self.spec.describe()})"
        )


TransformerSpec.features_type = TransformerFeatures
