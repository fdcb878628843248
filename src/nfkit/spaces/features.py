"""The container of MLP and CNN weight-space features: :class:`WeightSpaceFeatures`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TypeVar, final

import torch

from nfkit.errors import GroupMismatchError, NonFiniteWeightsError, SpecMismatchError
from nfkit.groups.base import GroupElement
from nfkit.groups.neurons import MonomialElement
from nfkit.spaces.action import transform_tensors
from nfkit.spaces.named_features import NamedFeatures
from nfkit.spaces.spec import WeightSpaceSpec

__all__ = ["WeightSpaceFeatures", "stack", "cat_channels"]


@final
class WeightSpaceFeatures(NamedFeatures):
    """Weight and bias tensors of a batch of networks, each with channels, typed by a spec.

    Layout (fixed across nfkit):

    * ``weights[i]``: ``(B, C, n_{i+1}, n_i, *kernel_i)`` for layers i = 0..L-1;
    * ``biases[i]``: ``(B, C, n_{i+1})``.

    The shapes are checked against ``spec`` on construction, so a tensor of the wrong
    shape never reaches a layer. Instances are immutable: every operation returns new
    features. The tensors are also :attr:`named` ``W1, b1, …`` (1-based, as in the papers), and every
    operation but the constructor and :meth:`with_tensors` is :class:`~nfkit.spaces.named_features.NamedFeatures`'.

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

    __slots__ = ("weights", "biases")

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
        named = {}
        for i, (w, b) in enumerate(zip(weights, biases), start=1):
            named[f"W{i}"] = w
            named[f"b{i}"] = b
        object.__setattr__(self, "spec", spec)
        object.__setattr__(self, "named", named)
        object.__setattr__(self, "weights", weights)
        object.__setattr__(self, "biases", biases)

    @classmethod
    def from_named(cls, spec: WeightSpaceSpec, named: Mapping[str, torch.Tensor]) -> WeightSpaceFeatures:
        n = spec.num_layers
        return cls(spec, [named[f"W{i}"] for i in range(1, n + 1)], [named[f"b{i}"] for i in range(1, n + 1)])

    def with_tensors(  # type: ignore[override]  # the dense layout's own signature: weights and biases apart
        self, weights: Sequence[torch.Tensor], biases: Sequence[torch.Tensor]
    ) -> WeightSpaceFeatures:
        """New features of the same spec holding other tensors."""
        return WeightSpaceFeatures(self.spec, weights, biases)

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

_F = TypeVar("_F", bound=NamedFeatures)


def stack(features: Sequence[_F]) -> _F:
    """Concatenate along the batch axis. All inputs must have the same spec shapes and channels.

    Example:
        >>> spec = WeightSpaceSpec.mlp([2, 3, 1])
        >>> len(stack([spec.randn(1), spec.randn(2)]))
        3
    """
    if not features:
        raise ValueError("stack needs at least one set of features")
    return type(features[0]).concatenate(features, dim=0)


def cat_channels(features: Sequence[_F]) -> _F:
    """Concatenate along the channel axis (same spec shapes and batch size)."""
    if not features:
        raise ValueError("cat_channels needs at least one set of features")
    return type(features[0]).concatenate(features, dim=1)


# the spec builds its features through this (spec.py cannot import this module: it is imported by it)
WeightSpaceSpec.features_type = WeightSpaceFeatures
