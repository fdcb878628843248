"""Model zoos: loaders of the published zoos in their real formats."""

from nfkit.data.dataset import Normalization, SymmetryAugmentation, WeightDataset, collate
from nfkit.data.small_cnn_zoo import SmallCNNZoo, ZooFormatError, load_small_cnn_zoo, read_layout

__all__ = [
    "Normalization",
    "SmallCNNZoo",
    "SymmetryAugmentation",
    "WeightDataset",
    "ZooFormatError",
    "collate",
    "load_small_cnn_zoo",
    "read_layout",
]
