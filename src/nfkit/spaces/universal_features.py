"""The container of features on a :class:`~nfkit.spaces.UniversalSpec`: :class:`UniversalFeatures`."""

from __future__ import annotations

from typing import final

from nfkit.spaces.named_features import NamedFeatures
from nfkit.spaces.universal import UniversalSpec

__all__ = ["UniversalFeatures"]


@final
class UniversalFeatures(NamedFeatures):
    """Named tensors ``(B, C, *shape)``, one per tensor of a :class:`UniversalSpec`, immutable
    (:class:`~nfkit.spaces.named_features.NamedFeatures`).

    Example:
        >>> from nfkit.spaces import WeightSpaceSpec
        >>> spec = WeightSpaceSpec.mlp([2, 4, 1], "tanh").universal()
        >>> f = spec.randn(3, channels=2)
        >>> f.named["W1"].shape, f.flatten().shape
        (torch.Size([3, 2, 4, 2]), torch.Size([3, 2, 17]))
        >>> g = spec.symmetry_group().sample()
        >>> g.inverse().act(g.act(f)).allclose(f)
        True
    """

    __slots__ = ()

    spec: UniversalSpec


UniversalSpec.features_type = UniversalFeatures
