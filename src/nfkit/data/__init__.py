"""Model zoos: loaders of the published zoos in their real formats."""

from nfkit.data.dataset import Compose, Normalization, SymmetryAugmentation, WeightDataset, collate
from nfkit.data.inr_sets import INRSet, load_dws_inrs, load_nfn_sirens, siren_spec
from nfkit.data.small_cnn_zoo import SmallCNNZoo, ZooFormatError, load_small_cnn_zoo, read_layout

__all__ = [
    "Compose",
    "INRSet",
    "Normalization",
    "SmallCNNZoo",
    "SymmetryAugmentation",
    "WeightDataset",
    "ZooFormatError",
    "collate",
    "load_dws_inrs",
    "load_nfn_sirens",
    "load_small_cnn_zoo",
    "read_layout",
    "siren_spec",
]
