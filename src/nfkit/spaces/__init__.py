"""Weight spaces: specs, feature containers, and conversion from and to ``torch.nn`` modules."""

from nfkit.spaces.activations import SUPPORTED_ACTIVATIONS, Activation, Sine
from nfkit.spaces.convert import (
    SUPPORTED_MODULES,
    from_state_dict,
    layer_parameters,
    load_into,
    module_from_spec,
    spec_of,
    to_state_dict,
    weights_of,
)
from nfkit.spaces.features import WeightSpaceFeatures, cat_channels, stack
from nfkit.spaces.spec import Axis, LayerSpec, WeightSpaceSpec
from nfkit.spaces.transformer_features import TransformerFeatures
from nfkit.spaces.transformer_spec import AttentionBlockSpec, TransformerSpec, spec_from_dict

__all__ = [
    "Activation",
    "AttentionBlockSpec",
    "Axis",
    "LayerSpec",
    "Sine",
    "SUPPORTED_ACTIVATIONS",
    "SUPPORTED_MODULES",
    "TransformerFeatures",
    "TransformerSpec",
    "WeightSpaceFeatures",
    "WeightSpaceSpec",
    "cat_channels",
    "from_state_dict",
    "layer_parameters",
    "load_into",
    "module_from_spec",
    "spec_from_dict",
    "spec_of",
    "stack",
    "to_state_dict",
    "weights_of",
]
