"""Base classes of registered models, and the pieces every stacked family shares: the equivariant
trunk (:func:`equivariant_stack`), the readout-sized MLP head (:meth:`StackedInvariantModel.with_head`)."""

from __future__ import annotations

import abc
from collections.abc import Callable, Sequence
from typing import TypeVar, final

import torch
from torch import nn

from nfkit.errors import SpecMismatchError
from nfkit.groups.base import Group
from nfkit.layers.pointwise import ChannelNorm, FeatureActivation, FeatureDropout
from nfkit.layers.recompute import check_recompute, recomputed_in_chunks
from nfkit.spaces.features import WeightSpaceFeatures
from nfkit.spaces.named_features import NamedFeatures
from nfkit.spaces.spec import WeightSpaceSpec
from nfkit.spaces.transformer_features import TransformerFeatures
from nfkit.spaces.transformer_spec import TransformerSpec
from nfkit.spaces.universal import UniversalSpec
from nfkit.spaces.universal_features import UniversalFeatures

#: every weight space a model may read
AnySpec = WeightSpaceSpec | TransformerSpec | UniversalSpec

__all__ = [
    "WeightSpaceModel",
    "InvariantModel",
    "EquivariantModel",
    "StackedInvariantModel",
    "StackedEquivariantModel",
    "equivariant_stack",
    "stack_width",
    "mlp_head",
]


class WeightSpaceModel(nn.Module, abc.ABC):
    """A model on weight-space features of one spec that declares its symmetry group.

    Attributes:
        spec: the weight space it reads.
        group: the group it is equivariant or invariant to (checked by :mod:`nfkit.testing`).
        in_channels: channels of its input features.
        check_inputs: whether ``forward`` rejects NaN/Inf inputs (a cheap reduction per tensor).
        reads_raw_weights: whether the model needs the weights as they are (it evaluates the networks,
            as probe features do): tasks then skip input normalisation, which would change the functions.
    """

    spec: AnySpec
    group: Group
    in_channels: int
    reads_raw_weights: bool = False

    def __init__(self, spec: AnySpec, group: Group, in_channels: int, *, check_inputs: bool = True) -> None:
        super().__init__()
        if in_channels <= 0:
            raise ValueError(f"in_channels must be positive, got {in_channels}")
        self.spec = spec
        self.group = group
        self.in_channels = in_channels
        self.check_inputs = check_inputs

    def validate(self, features: WeightSpaceFeatures) -> None:
        """Raise a clear error for features of another spec, channel count, or with NaN/Inf."""
        if not isinstance(features, NamedFeatures):
            raise TypeError(
                f"{type(self).__name__} takes WeightSpaceFeatures, TransformerFeatures or UniversalFeatures, got {type(features).__name__}"
            )
        self.spec.require_compatible(features.spec, f"input features of {type(self).__name__}")
        if features.channels != self.in_channels:
            raise SpecMismatchError(
                f"{type(self).__name__} expects {self.in_channels} input channels, got {features.channels}"
            )
        if self.check_inputs:
            features.check_finite("input features")


class InvariantModel(WeightSpaceModel):
    """Maps features ``(B, C, …)`` to a tensor ``(B, out_features)``, invariant to :attr:`group`."""

    out_features: int

    @abc.abstractmethod
    def forward(self, features: WeightSpaceFeatures) -> torch.Tensor:
        """Shapes: features with ``in_channels`` channels → ``(B, out_features)``."""


class EquivariantModel(WeightSpaceModel):
    """Maps features to features of the same spec with ``out_channels`` channels, equivariant to :attr:`group`."""

    out_channels: int

    @abc.abstractmethod
    def forward(self, features: WeightSpaceFeatures) -> WeightSpaceFeatures:
        """Shapes: features with ``in_channels`` channels → features with ``out_channels`` channels."""

    def project(self, features: _AnyFeatures) -> _AnyFeatures:
        """Zero the stored biases the source network lacks (:meth:`zero_tensors` of the spec), so that the
        output is a point of the weight space."""
        zero = features.spec.zero_tensors()
        if not zero:
            return features
        return features.from_named(features.spec, {k: torch.zeros_like(t) if k in zero else t for k, t in features.named.items()})


_AnyFeatures = TypeVar("_AnyFeatures", WeightSpaceFeatures, TransformerFeatures, UniversalFeatures)


@final
class StackedInvariantModel(InvariantModel):
    """``head(readout(trunk(x)))``: equivariant trunk, invariant readout, MLP head.

    Args:
        spec, group, in_channels: as for every model; ``group`` is what trunk and readout respect.
        out_features: the head's output width.
        trunk: features → features (equivariant to ``group``).
        readout: features → ``(B, D)`` (invariant to ``group``).
        head: ``(B, D) → (B, out_features)``.
        recompute: networks per chunk when trunk and readout are recomputed in backward
            (:func:`~nfkit.layers.recompute.recomputed_in_chunks`: the activations of that many
            networks at once, one more forward pass of compute, the same gradients); 0: off.

    Shapes:
        features ``(B, in_channels, …)`` → ``(B, out_features)``.
    """

    def __init__(
        self,
        spec: AnySpec,
        group: Group,
        in_channels: int,
        out_features: int,
        *,
        trunk: nn.Module,
        readout: nn.Module,
        head: nn.Module,
        recompute: int = 0,
    ) -> None:
        super().__init__(spec, group, in_channels)
        self.out_features = out_features
        self.trunk = trunk
        self.readout = readout
        self.head = head
        self.recompute = check_recompute(recompute)

    def _pooled(self, features: WeightSpaceFeatures) -> torch.Tensor:
        return self.readout(self.trunk(features))

    def forward(self, features: WeightSpaceFeatures) -> torch.Tensor:
        self.validate(features)
        return self.head(recomputed_in_chunks(self._pooled, features, self.recompute))

    @classmethod
    def with_head(
        cls,
        spec: AnySpec,
        group: Group,
        in_channels: int,
        out_features: int,
        *,
        trunk: nn.Module,
        trunk_width: int,
        readout: nn.Module,
        head_hidden: Sequence[int],
        head_dropout: float = 0.0,
        recompute: int = 0,
    ) -> StackedInvariantModel:
        """``trunk → readout → MLP head``, the head sized by ``readout.num_outputs(trunk_width)``."""
        if not callable(getattr(readout, "num_outputs", None)):
            raise TypeError(f"{type(readout).__name__} has no num_outputs(channels); every readout must say its width")
        width = int(getattr(readout, "num_outputs")(trunk_width))
        return cls(spec, group, in_channels, out_features, trunk=trunk, readout=readout,
                   head=mlp_head(width, head_hidden, out_features, head_dropout), recompute=recompute)


@final
class StackedEquivariantModel(EquivariantModel):
    """``project(readout(trunk(x)))``: equivariant trunk and equivariant readout to ``out_channels``.

    ``recompute``: as for :class:`StackedInvariantModel` (trunk and readout recomputed in chunks).

    Shapes:
        features with ``in_channels`` channels → features with ``out_channels`` channels.
    """

    def __init__(
        self,
        spec: AnySpec,
        group: Group,
        in_channels: int,
        out_channels: int,
        *,
        trunk: nn.Module,
        readout: nn.Module,
        recompute: int = 0,
    ) -> None:
        super().__init__(spec, group, in_channels)
        self.out_channels = out_channels
        self.trunk = trunk
        self.readout = readout
        self.recompute = check_recompute(recompute)

    def _mapped(self, features: WeightSpaceFeatures) -> WeightSpaceFeatures:
        return self.readout(self.trunk(features))

    def forward(self, features: WeightSpaceFeatures) -> WeightSpaceFeatures:
        self.validate(features)
        return self.project(recomputed_in_chunks(self._mapped, features, self.recompute))


def equivariant_stack(
    layer: Callable[[int, int], nn.Module],
    in_channels: int,
    hidden_channels: Sequence[int],
    *,
    activation: str = "relu",
    normalize: bool = False,
    dropout: float = 0.0,
) -> nn.Sequential:
    """The trunk every stacked family shares: per hidden width ``h``,
    ``layer(c, h) → FeatureActivation(activation) (→ ChannelNorm(h)) (→ FeatureDropout(dropout))``.

    ``layer(c_in, c_out)`` builds one equivariant linear layer. The activation must commute with the
    family's group (ReLU for permutations and positive scaling, an odd one for sign flips); channel
    norm and dropout commute with permutations only, so monomial families leave them off.

    Shapes:
        features with ``in_channels`` channels → features with ``hidden_channels[-1]`` channels
        (``in_channels`` when there are no hidden widths).
    """
    modules: list[nn.Module] = []
    width = in_channels
    for h in hidden_channels:
        modules += [layer(width, h), FeatureActivation(activation)]
        if normalize:
            modules.append(ChannelNorm(h))
        if dropout > 0:
            modules.append(FeatureDropout(dropout))
        width = h
    return nn.Sequential(*modules)


def stack_width(in_channels: int, hidden_channels: Sequence[int]) -> int:
    """The channels coming out of :func:`equivariant_stack`."""
    return hidden_channels[-1] if hidden_channels else in_channels


def mlp_head(in_features: int, hidden: Sequence[int], out_features: int, dropout: float = 0.0) -> nn.Sequential:
    """``Linear → ReLU (→ Dropout)`` for each hidden width, then ``Linear`` to ``out_features``.

    Shapes:
        ``(B, in_features) → (B, out_features)``.
    """
    modules: list[nn.Module] = []
    width = in_features
    for h in hidden:
        modules += [nn.Linear(width, h), nn.ReLU()]
        if dropout > 0:
            modules.append(nn.Dropout(dropout))
        width = h
    modules.append(nn.Linear(width, out_features))
    return nn.Sequential(*modules)
