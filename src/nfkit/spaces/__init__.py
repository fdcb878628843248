"""Weight spaces: specs, feature containers, and conversion from and to ``torch.nn`` modules."""

from nfkit.spaces.activations import SUPPORTED_ACTIVATIONS, Activation, Sine
from nfkit.spaces.convert import (
    SUPPORTED_MODULES,
    any_spec_of,
    from_state_dict,
    layer_parameters,
    load_into,
    module_from_spec,
    spec_of,
    to_state_dict,
    weights_of,
)
from nfkit.spaces.features import WeightSpaceFeatures, cat_channels, stack
from nfkit.spaces.named_features import NamedFeatures
from nfkit.spaces.spec import Axis, LayerSpec, WeightSpaceSpec
from nfkit.spaces.transformer_features import TransformerFeatures
from nfkit.spaces.trace import universal_load_into, universal_spec_of, universal_weights_of
from nfkit.spaces.transformer_spec import AttentionBlockSpec, TransformerSpec, spec_from_dict
from nfkit.spaces.universal import NeuronSet, TensorAxis, TensorSpec, UniversalSpec, universal_spec
from nfkit.spaces.universal_features import UniversalFeatures

__all__ = [
    "Activation",
    "AttentionBlockSpec",
    "Axis",
    "LayerSpec",
    "NamedFeatures",
    "NeuronSet",
    "Sine",
    "SUPPORTED_ACTIVATIONS",
    "SUPPORTED_MODULES",
    "TensorAxis",
    "TensorSpec",
    "TransformerFeatures",
    "TransformerSpec",
    "UniversalFeatures",
    "UniversalSpec",
    "WeightSpaceFeatures",
    "WeightSpaceSpec",
    "any_spec_of",
    "cat_channels",
    "from_state_dict",
    "layer_parameters",
    "load_into",
    "module_from_spec",
    "spec_from_dict",
    "spec_of",
    "stack",
    "to_state_dict",
    "universal_load_into",
    "universal_spec",
    "universal_spec_of",
    "universal_weights_of",
    "weights_of",
]
