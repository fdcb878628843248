"""The container of transformer weight-space features: :class:`TransformerFeatures`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import final

import torch

from nfkit.spaces.features import WeightSpaceFeatures
from nfkit.spaces.named_features import NamedFeatures
from nfkit.spaces.spec import WeightSpaceSpec
from nfkit.spaces.transformer_spec import TransformerSpec

__all__ = ["TransformerFeatures"]


@final
class TransformerFeatures(NamedFeatures):
    """Named tensors of a batch of transformers, each ``(B, C, *shape)``, typed by a :class:`TransformerSpec`.

    Names are ``"blocks.{l}.query"`` … (see :mod:`nfkit.spaces.transformer_spec`), and
    ``"embedding.W1"``, ``"head.b2"`` … for the dense parts. Shapes are checked on
    construction; instances are immutable. Arithmetic, flat views and the group action are
    :class:`~nfkit.spaces.named_features.NamedFeatures`'.

    Example:
        >>> from nfkit.spaces.transformer_spec import AttentionBlockSpec
        >>> spec = TransformerSpec((AttentionBlockSpec(8, 2, 4, 4, 16),))
        >>> f = spec.randn(3, channels=2)
        >>> f.blocks[0]["output"].shape, f.flatten().shape
        (torch.Size([3, 2, 2, 4, 8]), torch.Size([3, 2, 600]))
        >>> (f * 2 - f)[1:].allclose(f[1:])
        True
    """

    __slots__ = ()

    spec: TransformerSpec

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


TransformerSpec.features_type = TransformerFeatures
