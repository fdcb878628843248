"""The Small CNN Zoo (Unterthiner et al. 2020, "Predicting Neural Network Accuracy from Weights").

Files per dataset folder (users download them; nothing is fetched here):

* ``weights.npy``: float32 ``(rows, 4970)``, one row per checkpoint, TensorFlow layouts;
* ``layout.csv``: ``varname,start_idx,end_idx,size,shape``; kernels ``(kh, kw, in, out)`` for
  conv layers and ``(in, out)`` for dense ones, biases ``(out,)``;
* ``metrics.csv.gz``: one row per checkpoint, columns ``step``, ``test_accuracy``,
  ``train_accuracy``, ``test_loss``, ``train_loss``, ``config.*`` hyperparameters, …

The split protocol of Zhou et al. 2023 (also Monomial-NFN and MAGEP): order the rows by the
authors' shuffle file if given, keep the final checkpoint (step 86), take the last half as test,
and split the first half 80/20 into train/val after ``random.Random(0).shuffle``.
"""

from __future__ import annotations

import csv
import gzip
import random
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from nfkit.data.zoo_format import Zoo
from nfkit.errors import ZooFormatError
from nfkit.spaces.activations import Activation
from nfkit.spaces.features import WeightSpaceFeatures
from nfkit.spaces.spec import LayerSpec, WeightSpaceSpec

__all__ = ["ZooFormatError", "LayoutEntry", "read_layout", "load_small_cnn_zoo"]

_EXPECTED = (
    "a Small CNN Zoo folder holds weights.npy (rows × parameters, float), layout.csv "
    "(varname,start_idx,end_idx,size,shape) and metrics.csv.gz (one row per weights row, with "
    "step, test_accuracy and config.activation columns)"
)


@dataclass(frozen=True)
class LayoutEntry:
    """One row of ``layout.csv``: a variable, its column range and its TensorFlow shape."""

    layer: str
    kind: str  # "kernel" or "bias"
    start: int
    end: int
    shape: tuple[int, ...]


_VARNAME = re.compile(r"^(?:.*/)?(?P<layer>(?:conv2d|dense)(?:_\d+)?)/(?P<kind>kernel|bias):0$")


def read_layout(path: Path) -> list[LayoutEntry]:
    """Parse ``layout.csv`` (shapes are read as integer tuples, never ``eval``'d)."""
    if not path.is_file():
        raise ZooFormatError(f"{path} is missing; {_EXPECTED}")
    entries = []
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        missing = {"varname", "start_idx", "end_idx", "shape"} - set(reader.fieldnames or [])
        if missing:
            raise ZooFormatError(f"{path} lacks the columns {sorted(missing)}; {_EXPECTED}")
        for line, row in enumerate(reader, start=2):
            match = _VARNAME.match(row["varname"])
            shape = tuple(int(x) for x in re.findall(r"\d+", row["shape"]))
            try:
                start, end = int(row["start_idx"]), int(row["end_idx"])
            except ValueError as error:
                raise ZooFormatError(f"{path}, line {line}: bad start_idx/end_idx ({error})") from None
            if match is None or not shape or end - start != int(np.prod(shape)):
                raise ZooFormatError(f"{path}, line {line}: cannot read {row}; {_EXPECTED}")
            entries.append(LayoutEntry(match["layer"], match["kind"], start, end, shape))
    if not entries:
        raise ZooFormatError(f"{path} has no rows; {_EXPECTED}")
    return entries


#: Every conv layer of the Small CNN Zoo has stride 2 and no padding (28 → 13 → 6 → 2).
_STRIDE = (2, 2)


def _layer_order(name: str) -> tuple[int, int]:
    kind, _, index = name.partition("_")
    return (0 if kind == "conv2d" else 1, int(index) if index else 0)


def _spec_from_layout(entries: list[LayoutEntry], activation: Activation, path: Path) -> WeightSpaceSpec:
    layers = sorted({e.layer for e in entries}, key=_layer_order)
    specs = []
    for i, name in enumerate(layers):
        kernel = [e for e in entries if e.layer == name and e.kind == "kernel"]
        bias = [e for e in entries if e.layer == name and e.kind == "bias"]
        if len(kernel) != 1:
            raise ZooFormatError(f"{path}: layer {name} has {len(kernel)} kernel rows; expected one")
        shape = kernel[0].shape
        act = activation if i < len(layers) - 1 else None
        if name.startswith("conv2d"):
            if len(shape) != 4:
                raise ZooFormatError(f"{path}: conv kernel {name} has shape {shape}; expected (kh, kw, in, out)")
            kh, kw, n_in, n_out = shape
            # the published architecture (Unterthiner et al. 2020): Conv2D(16, 3, stride 2, "valid"); layout.csv
            # records shapes only, so the stride and padding come from the paper, not the file
            specs.append(LayerSpec("conv", n_out, n_in, kernel=(kh, kw), bias=bool(bias), activation=act,
                                   stride=_STRIDE, padding=(0, 0), name=name))
        else:
            if len(shape) != 2:
                raise ZooFormatError(f"{path}: dense kernel {name} has shape {shape}; expected (in, out)")
            n_in, n_out = shape
            reduction: Literal["global_avg_pool"] | None = "global_avg_pool" if specs and specs[-1].kind == "conv" else None
            specs.append(
                LayerSpec("dense", n_out, n_in, bias=bool(bias), activation=act, input_reduction=reduction, name=name)
            )
    return WeightSpaceSpec(tuple(specs))


def _read_metrics(path: Path) -> dict[str, list[str]]:
    if not path.is_file():
        raise ZooFormatError(f"{path} is missing; {_EXPECTED}")
    try:
        with gzip.open(path, "rt", newline="") as f:
            reader = csv.DictReader(f)
            columns: dict[str, list[str]] = {name: [] for name in reader.fieldnames or []}
            for row in reader:
                for name in columns:
                    columns[name].append(row[name])
    except (OSError, EOFError, gzip.BadGzipFile) as error:
        raise ZooFormatError(f"{path} is not a readable gzip CSV ({error}); {_EXPECTED}") from None
    for needed in ("step", "test_accuracy", "config.activation"):
        if needed not in columns:
            raise ZooFormatError(f"{path} has no column {needed!r}; {_EXPECTED}")
    return columns


def _as_array(values: list[str]) -> np.ndarray:
    try:
        return np.array([float(v) for v in values])
    except ValueError:
        return np.array(values, dtype=object)


def _read_order(path: Path, rows: int) -> np.ndarray:
    # The authors' split files start with a header line "0" that their loader reads as data, so
    # index 0 appears twice; we read the header as a header and keep each index once.
    text = path.read_text().split()
    order = np.array([int(x) for x in text[1:]])
    if sorted(order.tolist()) != list(range(rows)):
        raise ZooFormatError(f"{path} is not a permutation of the {rows} weight rows")
    return order


def load_small_cnn_zoo(
    root: str | Path,
    *,
    step: int | None = 86,
    activation: str | None = None,
    order_file: str | Path | None = None,
    dtype: torch.dtype = torch.float32,
) -> Zoo:
    """Load a Small CNN Zoo folder exactly, converting TensorFlow layouts to PyTorch's.

    Args:
        root: the folder with ``weights.npy``, ``layout.csv`` and ``metrics.csv.gz``.
        step: keep only checkpoints of this training step (86, the final one, by default; None keeps all).
        activation: keep only networks with this ``config.activation`` (``"relu"``, ``"tanh"``); with
            None and several activations present, the spec's activation is ``"mixed"``, whose group is
            permutations only.
        order_file: the authors' shuffle file (``cifar10_split.csv`` …); rows are taken in its order.
        dtype: of the returned features.

    Conv kernels ``(kh, kw, in, out)`` become ``(out, in, kh, kw)`` and dense ``(in, out)`` become
    ``(out, in)``. Raises :class:`ZooFormatError` naming the file for anything missing, truncated or
    inconsistent.
    """
    root = Path(root)
    layout = read_layout(root / "layout.csv")
    metrics = _read_metrics(root / "metrics.csv.gz")
    weights_path = root / "weights.npy"
    if not weights_path.is_file():
        raise ZooFormatError(f"{weights_path} is missing; {_EXPECTED}")
    try:
        weights = np.load(weights_path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as error:
        raise ZooFormatError(f"{weights_path} is not a readable .npy array ({error}); it may be truncated") from None
    width = max(e.end for e in layout)
    if weights.ndim != 2 or weights.shape[1] != width:
        raise ZooFormatError(f"{weights_path} has shape {weights.shape}; layout.csv describes {width} columns per row")
    if len(metrics["step"]) != weights.shape[0]:
        raise ZooFormatError(
            f"metrics.csv.gz has {len(metrics['step'])} rows but weights.npy has {weights.shape[0]}; "
            f"they must describe the same checkpoints"
        )
    order = _read_order(Path(order_file), weights.shape[0]) if order_file is not None else np.arange(weights.shape[0])
    steps = np.array([int(float(s)) for s in metrics["step"]])
    activations = np.array(metrics["config.activation"], dtype=object)
    keep = np.ones(weights.shape[0], dtype=bool)
    if step is not None:
        keep &= steps == step
    if activation is not None:
        keep &= activations == activation
    rows = order[keep[order]]
    if len(rows) == 0:
        raise ZooFormatError(f"no rows of {root} have step={step} and activation={activation}")
    kinds = sorted(set(activations[rows]))
    act = Activation.parse(kinds[0]) if len(kinds) == 1 else Activation("mixed")
    spec = _spec_from_layout(layout, act, root / "layout.csv")

    block = torch.as_tensor(np.asarray(weights[np.sort(rows)], dtype=np.float64))
    block = block[torch.as_tensor(np.argsort(np.argsort(rows)))]  # back to the requested order
    if not bool(torch.isfinite(block).all()):
        bad = int((~torch.isfinite(block)).any(dim=1).nonzero()[0])
        raise ZooFormatError(f"{weights_path}: row {int(rows[bad])} contains NaN or Inf")
    tensors: dict[tuple[str, str], torch.Tensor] = {}
    for e in layout:
        t = block[:, e.start : e.end].reshape(len(rows), *e.shape)
        if e.kind == "kernel":
            t = t.permute(0, 4, 3, 1, 2) if t.dim() == 5 else t.permute(0, 2, 1)
        tensors[(e.layer, e.kind)] = t.to(dtype)
    w = [tensors[(layer.name, "kernel")][:, None] for layer in spec.layers]
    b = [
        tensors[(layer.name, "bias")][:, None] if layer.bias else torch.zeros(len(rows), 1, layer.n_out, dtype=dtype)
        for layer in spec.layers
    ]
    features = WeightSpaceFeatures(spec, w, b)
    kept_metrics = {name: _as_array([values[r] for r in rows]) for name, values in metrics.items()}
    n = len(rows)
    test = np.arange(n - n // 2, n)
    first = list(range(n - n // 2))
    random.Random(0).shuffle(first)
    n_train = int(0.8 * len(first))
    splits = {"train": np.array(first[:n_train]), "val": np.array(first[n_train:]), "test": test}
    table = {**kept_metrics, "row": np.asarray(rows, dtype=np.float64)}
    return Zoo("cnn", spec, features, table, splits, {"source": str(root), "format": "small-cnn-zoo"})
