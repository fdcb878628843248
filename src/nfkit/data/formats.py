"""Open any zoo folder nfkit reads, in its own format, as the one :class:`~nfkit.data.zoo_format.Zoo` type.

Formats (detected from the folder, or named):

* ``nfkit``: a folder written by ``nfkit zoo generate`` (``manifest.json``).
* ``small-cnn-zoo``: ``weights.npy``, ``layout.csv``, ``metrics.csv.gz`` (Unterthiner et al. 2020);
  the final checkpoint (step 86), the loader's split.
* ``nfn-sirens``: ``<prefix>_<label>s/net<idx>.pth`` (Zhou et al. 2023); the published 45k/5k split
  by image index, or a proportional 70/10/20 one for smaller folders (said in ``metadata["split"]``).
* ``dws``: a DWS INR splits JSON (Navon et al. 2023), given as the file or the folder holding one.
* ``small-transformer-zoo``: ``<run>_<epoch>_<acc>.pt`` checkpoints (Tran et al. 2025); epoch 75,
  the seeded 70/15/15 split.

``activation`` keeps the networks of one hidden activation of a mixed zoo (the ScaleGMN / Monomial
protocol), so that families built for scaling or sign symmetry can run on them.
"""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import numpy as np

from nfkit.spaces.kinds import AnySpec
from nfkit.spaces.universal import UniversalSpec
from nfkit.data.published.inr_sets import load_dws_inrs, load_nfn_sirens
from nfkit.data.published.small_cnn_zoo import load_small_cnn_zoo
from nfkit.data.published.small_transformer_zoo import load_small_transformer_zoo
from nfkit.data.zoo_format import Zoo, load_zoo
from nfkit.errors import InvalidOptionError, ZooFormatError
from nfkit.spaces.activations import Activation
from nfkit.spaces.spec import WeightSpaceSpec
from nfkit.spaces.transformer_spec import TransformerSpec

__all__ = ["FORMATS", "detect_format", "open_zoo", "select_activation"]

FORMATS = ("nfkit", "small-cnn-zoo", "nfn-sirens", "dws", "small-transformer-zoo")

_NFN_DIR = re.compile(r"^.+_\d+s$")
_TRANSFORMER_FILE = re.compile(r"^.+_\d+_\d+\.pt$")


def _dws_splits(path: Path) -> Path | None:
    if path.is_file() and path.suffix == ".json":
        return path
    candidates = sorted(path.glob("*split*.json")) if path.is_dir() else []
    return candidates[0] if candidates else None


def detect_format(path: str | Path) -> str:
    """Which of :data:`FORMATS` the folder (or DWS splits file) ``path`` holds; a clear error if none."""
    path = Path(path)
    if not path.exists():
        raise ZooFormatError(f"{path} does not exist; make a zoo with 'nfkit zoo generate' or point to one")
    if path.is_file() and path.suffix != ".json":
        raise ZooFormatError(f"{path} is a file; a zoo is a folder (or, for DWS INRs, a splits JSON)")
    if path.is_dir() and (path / "manifest.json").is_file():
        return "nfkit"
    if path.is_dir() and (path / "layout.csv").is_file() and (path / "weights.npy").is_file():
        return "small-cnn-zoo"
    if _dws_splits(path) is not None:
        return "dws"
    if path.is_dir():
        if any(d.is_dir() and _NFN_DIR.match(d.name) and any(d.glob("net*.pth")) for d in path.iterdir()):
            return "nfn-sirens"
        if any(_TRANSFORMER_FILE.match(f.name) for f in path.rglob("*.pt")):
            return "small-transformer-zoo"
    raise ZooFormatError(
        f"{path} is not a zoo nfkit reads: no manifest.json (nfkit), layout.csv + weights.npy (Small CNN Zoo), "
        f"<prefix>_<label>s/net<idx>.pth (NFN SIRENs), a splits JSON (DWS) or <run>_<epoch>_<acc>.pt (Small Transformer Zoo)"
    )


def open_zoo(path: str | Path, *, format: str | None = None, activation: str | None = None) -> Zoo:
    """The zoo at ``path`` in any of :data:`FORMATS` (detected unless ``format`` is given), optionally one activation's nets."""
    path = Path(path)
    if format is not None and format not in FORMATS:
        raise InvalidOptionError(f"unknown zoo format {format!r}; available: {', '.join(FORMATS)}")
    kind = format or detect_format(path)
    if kind == "nfkit":
        zoo = load_zoo(path)
    elif kind == "small-cnn-zoo":
        zoo = load_small_cnn_zoo(path, activation=activation)
    elif kind == "nfn-sirens":
        zoo = load_nfn_sirens(path)
    elif kind == "dws":
        splits = _dws_splits(path)
        if splits is None:
            raise ZooFormatError(f"{path}: no DWS splits JSON (*split*.json) found")
        zoo = load_dws_inrs(splits)
    else:
        zoo = load_small_transformer_zoo(path)
    zoo.metadata["format"] = kind
    return select_activation(zoo, activation) if activation is not None else zoo


def _activation_column(zoo: Zoo) -> np.ndarray | None:
    for name in ("activation", "config.activation"):
        if name in zoo.table:
            return zoo.table[name].astype(str)
    return None


def select_activation(zoo: Zoo, activation: str) -> Zoo:
    """The networks of ``zoo`` whose hidden activation is ``activation``, with a spec that says so.

    A mixed ReLU/Tanh zoo's spec has the activation ``"mixed"`` (group: permutations only); its ReLU
    subset is a ReLU weight space (× positive scaling), its Tanh subset a Tanh one (× sign flips).
    Splits keep their rows, re-indexed.
    """
    column = _activation_column(zoo)
    if column is None:
        current = _hidden_activation(zoo.spec)
        if current == activation:
            return zoo
        raise InvalidOptionError(f"this zoo's networks all use {current}; there is no {activation!r} subset")
    keep = np.flatnonzero(column == activation)
    if len(keep) == 0:
        raise InvalidOptionError(f"no network of this zoo uses {activation!r}; it has {', '.join(sorted(set(column)))}")
    new_index = np.full(len(zoo), -1)
    new_index[keep] = np.arange(len(keep))
    splits = {name: new_index[rows][new_index[rows] >= 0] for name, rows in zoo.splits.items()}
    table = {name: values[keep] for name, values in zoo.table.items()}
    spec = _with_activation(zoo.spec, activation)
    features = spec.unflatten(zoo.features[keep].flatten())
    metadata = {**zoo.metadata, "activation": activation}
    return Zoo(zoo.kind, spec, features, table, splits, metadata, dict(zoo.files))


def _hidden_activation(spec: AnySpec) -> str:
    if isinstance(spec, UniversalSpec):
        raise InvalidOptionError("--activation selects subsets of MLP, CNN and transformer zoos; this zoo's networks are traced ones")
    if isinstance(spec, TransformerSpec):
        return str(spec.blocks[0].activation)
    return spec.hidden_activations[0].name if spec.hidden_activations else "none"


def _with_activation(spec: AnySpec, activation: str) -> WeightSpaceSpec | TransformerSpec:
    if isinstance(spec, UniversalSpec):
        raise InvalidOptionError("--activation selects subsets of MLP, CNN and transformer zoos; this zoo's networks are traced ones")
    if isinstance(spec, TransformerSpec):
        return replace(spec, blocks=tuple(replace(b, activation=activation) for b in spec.blocks))
    act = Activation.parse(activation)
    last = spec.num_layers - 1
    return WeightSpaceSpec(tuple(replace(layer, activation=act) if i < last else layer for i, layer in enumerate(spec.layers)))
