"""The container of features on a :class:`~nfkit.spaces.UniversalSpec`: :class:`UniversalFeatures`."""

from __future__ import annotations

from typing import final

from nfkit.spaces.features import WeightSpaceFeatures
from nfkit.spaces.named_features import NamedFeatures
from nfkit.spaces.spec import WeightSpaceSpec
from nfkit.spaces.universal import UniversalSpec

__all__ = ["UniversalFeatures"]


@final
class UniversalFeatures(NamedFeatures):
    """Named tensors ``(B, C, *shape)``, one per tensor of a :class:`UniversalSpec`, immutable
    (:class:`~nfkit.spaces.named_features.NamedFeatures`).

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

    __slots__ = ()

    spec: UniversalSpec

    @staticmethod
    def from_dense(features: WeightSpaceFeatures, spec: UniversalSpec) -> UniversalFeatures:
        """The dense features ``W1, b1, …`` of an MLP or CNN as features of its universal ``spec``."""
        return UniversalFeatures(spec, features.named_tensors())

    def to_dense(self, spec: WeightSpaceSpec) -> WeightSpaceFeatures:
        """Back to dense features of ``spec`` (tensors named ``W1, b1, …``)."""
        n = spec.num_layers
        return WeightSpaceFeatures(spec, [self.named[f"W{i + 1}"] for i in range(n)], [self.named[f"b{i + 1}"] for i in range(n)])


UniversalSpec.features_type = UniversalFeatures
