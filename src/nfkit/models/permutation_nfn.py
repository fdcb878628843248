"""The ``"np"`` and ``"hnp"`` families: stacks of NP or HNP layers (Zhou et al. 2023).

Invariant form (the paper's generalisation predictor, Sec. 4.2)::

    [NPLinear/HNPLinear → ReLU (→ ChannelNorm) (→ FeatureDropout)] × len(hidden_channels)
    → NPPool/HNPPool → MLP head

Equivariant form (the paper's editing model)::

    [NPLinear/HNPLinear → ReLU (→ ChannelNorm)] × len(hidden_channels) → NPLinear/HNPLinear(→ out_channels)

Every part commutes with hidden-neuron permutations, so the declared group is
:func:`nfkit.groups.permutations`. ReLU and the per-entry normalisation are not
scale-equivariant, so the models are not scale-invariant (the negative control).
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from nfkit.groups.neurons import permutations
from nfkit.layers.hnp import HNPLinear, HNPPool
from nfkit.layers.np import NPLinear, NPPool
from nfkit.layers.permutation_basis import PermutationEquivariantLinear, PermutationInvariantPool
from nfkit.layers.pointwise import ChannelNorm, FeatureActivation, FeatureDropout
from nfkit.models.base import StackedEquivariantModel, StackedInvariantModel, mlp_head
from nfkit.models.registry import ModelFamily, register
from nfkit.spaces.spec import WeightSpaceSpec

__all__ = ["permutation_invariant", "permutation_equivariant"]

_VARIANTS: dict[str, tuple[type[PermutationEquivariantLinear], type[PermutationInvariantPool]]] = {
    "np": (NPLinear, NPPool),
    "hnp": (HNPLinear, HNPPool),
}


def _variant(name: str) -> tuple[type[PermutationEquivariantLinear], type[PermutationInvariantPool]]:
    if name not in _VARIANTS:
        raise ValueError(f"unknown variant {name!r}; expected one of {', '.join(_VARIANTS)}")
    return _VARIANTS[name]


def _trunk(
    spec: WeightSpaceSpec,
    linear: type[PermutationEquivariantLinear],
    in_channels: int,
    hidden_channels: Sequence[int],
    normalize: bool,
    dropout: float,
) -> nn.Sequential:
    modules: list[nn.Module] = []
    width = in_channels
    for h in hidden_channels:
        modules += [linear(spec, width, h), FeatureActivation("relu")]
        if normalize:
            modules.append(ChannelNorm(h))
        if dropout > 0:
            modules.append(FeatureDropout(dropout))
        width = h
    return nn.Sequential(*modules)


def permutation_invariant(
    spec: WeightSpaceSpec,
    out_features: int = 1,
    *,
    variant: str,
    in_channels: int = 1,
    hidden_channels: Sequence[int] = (16, 16, 16),
    head_hidden: Sequence[int] = (256, 256),
    normalize: bool = False,
    dropout: float = 0.0,
    head_dropout: float = 0.0,
) -> StackedInvariantModel:
    """NP or HNP layers, invariant pooling and an MLP head: features → ``(B, out_features)``."""
    linear, pool = _variant(variant)
    readout = pool(spec)
    width = hidden_channels[-1] if hidden_channels else in_channels
    return StackedInvariantModel(
        spec,
        permutations(spec.hidden_sizes),
        in_channels,
        out_features,
        trunk=_trunk(spec, linear, in_channels, hidden_channels, normalize, dropout),
        readout=readout,
        head=mlp_head(readout.num_outputs(width), head_hidden, out_features, head_dropout),
    )


def permutation_equivariant(
    spec: WeightSpaceSpec,
    out_channels: int = 1,
    *,
    variant: str,
    in_channels: int = 1,
    hidden_channels: Sequence[int] = (16, 16, 16),
    normalize: bool = False,
    dropout: float = 0.0,
) -> StackedEquivariantModel:
    """NP or HNP layers with ReLUs, ending in an equivariant linear layer to ``out_channels``."""
    linear, _ = _variant(variant)
    return StackedEquivariantModel(
        spec,
        permutations(spec.hidden_sizes),
        in_channels,
        out_channels,
        trunk=_trunk(spec, linear, in_channels, hidden_channels, normalize, dropout),
        readout=linear(spec, hidden_channels[-1] if hidden_channels else in_channels, out_channels),
    )


register(
    ModelFamily(
        "np",
        "NP layers, equivariant to permutations of every neuron layer (Zhou et al. 2023, Eq. 2)",
        invariant=permutation_invariant,
        equivariant=permutation_equivariant,
        fixed={"variant": "np"},
    )
)
register(
    ModelFamily(
        "hnp",
        "HNP layers, equivariant to hidden-neuron permutations (Zhou et al. 2023, Sec. 3.2)",
        invariant=permutation_invariant,
        equivariant=permutation_equivariant,
        fixed={"variant": "hnp"},
    )
)
