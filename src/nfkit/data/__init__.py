"""Model zoos: the one zoo type and its on-disk format, datasets that feed models, the published zoos'
loaders (:mod:`nfkit.data.published`) and the generators (:mod:`nfkit.data.generators`).

Every loader and generator returns a :class:`Zoo`: features, a table of per-network columns, splits.
"""

from nfkit.data.dataset import Compose, Normalization, SymmetryAugmentation, WeightDataset, collate
from nfkit.data.published import (
    load_dws_inrs,
    load_nfn_sirens,
    load_small_cnn_zoo,
    load_small_transformer_zoo,
    read_layout,
    siren_spec,
)
from nfkit.data.zoo_format import Zoo, load_zoo, save_zoo
from nfkit.errors import ZooFormatError

__all__ = [
    "Compose",
    "Normalization",
    "SymmetryAugmentation",
    "WeightDataset",
    "Zoo",
    "ZooFormatError",
    "collate",
    "load_dws_inrs",
    "load_nfn_sirens",
    "load_small_cnn_zoo",
    "load_small_transformer_zoo",
    "load_zoo",
    "read_layout",
    "save_zoo",
    "siren_spec",
]
