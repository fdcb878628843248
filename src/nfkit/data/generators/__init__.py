"""Zoos generated here on built-in data, each returning the one zoo type (:class:`~nfkit.data.zoo_format.Zoo`)
through the resumable, sharded runner (:mod:`nfkit.data.generators.runner`): CNNs and transformers on
scikit-learn's digits or generated text, one SIREN per digit image."""

from nfkit.data.generators.cnn_zoo import CNNZooConfig, generate_cnn_zoo
from nfkit.data.generators.inr_zoo import INRZooConfig, generate_inr_zoo
from nfkit.data.generators.runner import ZooRecipe, generate_zoo
from nfkit.data.generators.transformer_zoo import (
           TransformerZooConfig,
           generate_transformer_zoo,
)

__all__ = ["CNNZooConfig", "INRZooConfig", "TransformerZooConfig", "ZooRecipe", "generate_cnn_zoo", "generate_inr_zoo",
           "generate_transformer_zoo", "generate_zoo"]
