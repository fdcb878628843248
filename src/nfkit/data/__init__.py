"""Model zoos: loaders of the published zoos in their real formats."""

from nfkit.data.small_cnn_zoo import SmallCNNZoo, load_small_cnn_zoo, read_layout

__all__ = ["SmallCNNZoo", "load_small_cnn_zoo", "read_layout"]
