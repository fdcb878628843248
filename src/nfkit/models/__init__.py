"""The model registry and the model families registered in it.

``invariant(name, spec, out_features=1, **options)`` and
``equivariant(name, spec, out_channels=1, **options)`` build models;
``available()`` lists the names.
"""

from nfkit.models import (  # noqa: F401  (they register their families)
    baselines,
    graph_nfn,
    inr2array,
    magep_nfn,
    nft_nfn,
    probe,
    scalegmn,
    stacked,
    transformer_nfn,
)
from nfkit.models.base import (
    EquivariantModel,
    InvariantModel,
    StackedEquivariantModel,
    StackedInvariantModel,
    WeightSpaceModel,
    mlp_head,
)
from nfkit.models.registry import ModelFamily, available, equivariant, family, invariant, register

__all__ = [
    "EquivariantModel",
    "InvariantModel",
    "ModelFamily",
    "StackedEquivariantModel",
    "StackedInvariantModel",
    "WeightSpaceModel",
    "available",
    "equivariant",
    "family",
    "invariant",
    "mlp_head",
    "register",
]
