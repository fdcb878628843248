"""Non-equivariant baselines: ``"mlp"`` on flattened weights and ``"statnn"`` on per-layer statistics.

* ``mlp``: an MLP on all weights and biases concatenated. Declared group: trivial; it is
  not even permutation-invariant (its negative control).
* ``statnn``: Unterthiner et al. 2020, "Predicting Neural Network Accuracy from Weights",
  Sec. 4: for every weight and bias tensor the mean, variance and the 0, 25, 50, 75 and
  100 % quantiles of its entries (per channel), then an MLP. Statistics over all entries of
  a tensor do not depend on the order of neurons, so it is permutation-invariant; it is
  not scale-invariant.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import final

from torch import nn

from nfkit.errors import UnsupportedArchitectureError
from nfkit.groups.base import Group
from nfkit.layers.canonical import with_canonical_front
from nfkit.layers.statistics import Flattened, LayerStatistics, entry_statistics, layer_statistics
from nfkit.models.base import EquivariantModel, StackedInvariantModel, mlp_head
from nfkit.models.registry import ModelFamily, register
from nfkit.spaces.features import WeightSpaceFeatures
from nfkit.spaces.spec import WeightSpaceSpec
from nfkit.spaces.transformer_spec import TransformerSpec
from nfkit.spaces.universal import UniversalSpec

AnySpec = WeightSpaceSpec | TransformerSpec | UniversalSpec






__all__ = ["flat_mlp", "FlatMLPEditor", "statnn", "entry_statistics", "layer_statistics", "Flattened", "LayerStatistics"]




def flat_mlp(
    spec: AnySpec,
    out_features: int = 1,
    *,
    in_channels: int = 1,
    hidden_channels: Sequence[int] = (256, 256),
    dropout: float = 0.0,
) -> StackedInvariantModel:
    """An MLP on the flattened weight vector: features ``(B, C, …)`` → ``(B, out_features)``."""
    return StackedInvariantModel.with_head(
        spec, spec.trivial_group(), in_channels, out_features, trunk=nn.Identity(), trunk_width=in_channels,
        readout=Flattened(spec), head_hidden=hidden_channels, head_dropout=dropout,
    )


@final
class FlatMLPEditor(EquivariantModel):
    """An MLP from the flattened weights to flattened output features of the same spec.

    Shapes:
        features ``(B, C, …)`` → ``(B, C·P)`` → ``(B, C'·P)`` → features with ``C'`` channels.
    """

    def __init__(
        self,
        spec: AnySpec,
        out_channels: int = 1,
        *,
        in_channels: int = 1,
        hidden_channels: Sequence[int] = (256, 256),
        dropout: float = 0.0,
    ) -> None:
        super().__init__(spec, spec.trivial_group(), in_channels)
        self.out_channels = out_channels
        self.entries = spec.zeros(1).flatten().shape[-1]
        self.mlp = mlp_head(in_channels * self.entries, hidden_channels, out_channels * self.entries, dropout)

    def forward(self, features: WeightSpaceFeatures) -> WeightSpaceFeatures:  # or TransformerFeatures
        self.validate(features)
        flat = self.mlp(features.flatten().flatten(1))
        return self.project(self.spec.unflatten(flat.view(-1, self.out_channels, self.entries)))  # type: ignore[return-value, type-var]








def statnn(
    spec: AnySpec,
    out_features: int = 1,
    *,
    in_channels: int = 1,
    hidden_channels: Sequence[int] = (256, 256),
    dropout: float = 0.0,
    canonical: bool = False,
) -> StackedInvariantModel:
    """Per-tensor statistics then an MLP (Unterthiner et al. 2020): features → ``(B, out_features)``.

    ``canonical=True`` (MLPs, CNNs and traced networks): the statistics of the canonicalised weights
    (:class:`~nfkit.layers.canonical.Canonicalization`,
    :class:`~nfkit.layers.canonical_universal.UniversalCanonicalization`), invariant to the network's
    scalings or sign flips as well.
    """
    group: Group = spec.permutation_group()  # every factor that only moves entries within a tensor
    trunk: nn.Module = nn.Identity()
    if canonical:
        if isinstance(spec, (UniversalSpec, WeightSpaceSpec)):
            group, trunk = with_canonical_front(spec, group, trunk)
        else:
            raise UnsupportedArchitectureError("canonical=True canonicalises MLP, CNN and traced weight spaces only")
    return StackedInvariantModel.with_head(
        spec, group, in_channels, out_features, trunk=trunk, trunk_width=in_channels,
        readout=LayerStatistics(spec), head_hidden=hidden_channels, head_dropout=dropout,
    )


register(
    ModelFamily(
        "mlp",
        "MLP on the flattened weights (no symmetry; the baseline of Zhou et al. 2023)",
        invariant=flat_mlp,
        equivariant=FlatMLPEditor,
        spaces=("dense", "transformer", "universal"),
    )
)
register(
    ModelFamily(
        "statnn",
        "per-tensor statistics and an MLP (Unterthiner et al. 2020)",
        invariant=statnn,
        spaces=("dense", "transformer", "universal"),
    )
)
