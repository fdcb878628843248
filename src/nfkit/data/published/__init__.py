"""Loaders of the published zoos in their real formats, each returning the one zoo type
(:class:`~nfkit.data.zoo_format.Zoo`): the Small CNN Zoo, DWS and NFN INR sets, the Small Transformer Zoo.

Files from outside are untrusted: checkpoints load with ``torch.load(weights_only=True)``, and every
malformed file is a :class:`~nfkit.errors.ZooFormatError` naming it.
"""

from nfkit.data.published.inr_sets import load_dws_inrs, load_nfn_sirens, read_state_dict, siren_spec
from nfkit.data.published.small_cnn_zoo import load_small_cnn_zoo, read_layout
from nfkit.data.published.small_transformer_zoo import load_small_transformer_zoo

__all__ = ["load_dws_inrs", "load_nfn_sirens", "load_small_cnn_zoo", "load_small_transformer_zoo", "read_layout",
           "read_state_dict", "siren_spec"]
