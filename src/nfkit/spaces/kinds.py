"""The three kinds of weight space, as type aliases: dense (MLPs, CNNs), transformer, and universal (traced)."""

from __future__ import annotations

from nfkit.spaces.features import WeightSpaceFeatures
from nfkit.spaces.spec import WeightSpaceSpec
from nfkit.spaces.transformer_features import TransformerFeatures
from nfkit.spaces.transformer_spec import TransformerSpec
from nfkit.spaces.universal import UniversalSpec
from nfkit.spaces.universal_features import UniversalFeatures

__all__ = ["AnySpec", "AnyFeatures"]

#: Any weight-space description nfkit reads.
AnySpec = WeightSpaceSpec | TransformerSpec | UniversalSpec
#: Features of any of them.
AnyFeatures = WeightSpaceFeatures | TransformerFeatures | UniversalFeatures
