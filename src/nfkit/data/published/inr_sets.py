"""Published INR datasets: DWS INR sets and NFN SIREN folders (one state dict per image).

Both hold SIRENs 2 → 32 → 32 → out with sine activations ``sin(30 · (W x + b))``; sin is odd,
so the sign-flip group acts on their hidden neurons and positive scaling does not.

* **DWS** (Navon et al. 2023): ``nn.Sequential(Siren(2, 32), Siren(32, 32), nn.Linear(32, 1))``,
  keys ``seq.{0,1,2}.{weight,bias}``, and a splits JSON
  ``{"train": {"path": [...], "label": [...]}, "val": ..., "test": ...}``.
* **NFN** (Zhou et al. 2023): ``siren_*_wts/<prefix>_<label>s/net<idx>.pth`` with keys
  ``net.0.linear.*``, ``net.1.linear.*``, ``net.2.*``; splits by position after sorting by
  ``idx``, at ``split_points`` (45,000 and 50,000 in the paper's configs).

Checkpoints from outside are untrusted: they are read with ``torch.load(weights_only=True)``,
and a file that needs arbitrary unpickling is refused.
"""

from __future__ import annotations

import json
import pickle
import re
from pathlib import Path

import numpy as np
import torch

from nfkit.errors import ZooFormatError
from nfkit.data.zoo_format import Zoo
from nfkit.errors import NonFiniteWeightsError, SpecMismatchError
from nfkit.spaces.state_dict import from_state_dict
from nfkit.spaces.features import WeightSpaceFeatures, stack
from nfkit.spaces.spec import WeightSpaceSpec

__all__ = ["siren_spec", "read_state_dict", "load_dws_inrs", "load_nfn_sirens"]

DWS_NAMES = ("seq.0", "seq.1", "seq.2")
NFN_NAMES = ("net.0.linear", "net.1.linear", "net.2")


def siren_spec(out_features: int = 1, hidden: int = 32, w0: float = 30.0) -> WeightSpaceSpec:
    """The SIREN 2 → hidden → hidden → out weight space with ``Sine(w0)`` activations."""
    from nfkit.spaces.activations import Activation

    return WeightSpaceSpec.mlp([2, hidden, hidden, out_features], Activation("sine", w0))


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """A state dict from an untrusted ``.pth`` file: tensors only, never arbitrary objects."""
    if not path.is_file():
        raise ZooFormatError(f"{path} is missing")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        raise ZooFormatError(
            f"{path} needs arbitrary unpickling to load, which nfkit refuses for files from outside "
            f"({str(error).splitlines()[0]}); re-save it as a plain state dict of tensors"
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError) as error:
        raise ZooFormatError(f"{path} is not a readable PyTorch file; it may be truncated ({error})") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ZooFormatError(f"{path} does not hold a state dict of tensors")
    return state


def _features(paths: list[Path], spec: WeightSpaceSpec, names: tuple[str, ...]) -> WeightSpaceFeatures:
    items = []
    for path in paths:
        try:
            items.append(from_state_dict(read_state_dict(path), spec, names=list(names)).to(torch.float32).check_finite(str(path)))
        except (SpecMismatchError, NonFiniteWeightsError) as error:
            raise ZooFormatError(f"{path}: {error}") from None
    return stack(items)


def _zoo(spec: WeightSpaceSpec, features: WeightSpaceFeatures, labels: list[int], splits: dict[str, np.ndarray],
         paths: list[Path], layout: str, source: Path) -> Zoo:
    """The one zoo type: an ``"inr"`` zoo whose table has each INR's ``label`` and the ``path`` it came from."""
    table = {"label": np.asarray(labels, dtype=np.float64), "path": np.array([str(p) for p in paths], dtype=object)}
    return Zoo("inr", spec, features, table, splits, {"source": str(source), "format": layout})


def load_dws_inrs(splits_json: str | Path, root: str | Path | None = None, out_features: int = 1) -> Zoo:
    """Load a DWS INR set from its splits JSON (paths are resolved against ``root``, default: the JSON's folder)."""
    splits_json = Path(splits_json)
    if not splits_json.is_file():
        raise ZooFormatError(f"{splits_json} is missing")
    try:
        table = json.loads(splits_json.read_text())
    except json.JSONDecodeError as error:
        raise ZooFormatError(f"{splits_json} is not valid JSON ({error})") from None
    if not isinstance(table, dict):
        raise ZooFormatError(f'{splits_json} must hold an object {{"train": {{"path": [...], "label": [...]}}, "val": ..., "test": ...}}, '
                             f"not a {type(table).__name__}")
    base = Path(root) if root is not None else splits_json.parent
    paths: list[Path] = []
    labels: list[int] = []
    splits: dict[str, np.ndarray] = {}
    for split in ("train", "val", "test"):
        entry = table.get(split)
        if (not isinstance(entry, dict) or not isinstance(entry.get("path"), list) or not isinstance(entry.get("label"), list)
                or len(entry["path"]) != len(entry["label"])):
            raise ZooFormatError(f'{splits_json}: "{split}" must be {{"path": [...], "label": [...]}} of equal lengths')
        bad = next((v for v in entry["label"] if type(v) is not int or v < 0), None)
        if bad is not None:
            raise ZooFormatError(f'{splits_json}: "{split}" has label {bad!r}; labels must be class indices (integers ≥ 0)')
        if not all(isinstance(p, str) for p in entry["path"]):
            raise ZooFormatError(f'{splits_json}: "{split}" paths must be strings')
        splits[split] = np.arange(len(paths), len(paths) + len(entry["path"]))
        paths += [Path(p) if Path(p).is_absolute() else base / p for p in entry["path"]]
        labels += [int(v) for v in entry["label"]]
    spec = siren_spec(out_features)
    return _zoo(spec, _features(paths, spec, DWS_NAMES), labels, splits, paths, "dws", splits_json)


_NFN_DIR = re.compile(r"^(?P<prefix>.+)_(?P<label>\d+)s$")
_NFN_FILE = re.compile(r"^net(?P<idx>\d+)\.pth$")


def load_nfn_sirens(
    root: str | Path,
    prefix: str = "randinit_smaller",
    split_points: tuple[int, int] = (45_000, 50_000),
    out_features: int = 1,
) -> Zoo:
    """Load an NFN SIREN folder ``root/<prefix>_<label>s/net<idx>.pth``.

    Only folders whose prefix is exactly ``prefix`` are read (``<prefix>_aug<k>`` copies are not
    picked up by accident). Networks are ordered by ``idx`` (the image's index in the dataset); the
    first ``split_points[0]`` are train, the next ones up to ``split_points[1]`` val, the rest test.
    A folder with no more networks than ``split_points[1]`` cannot follow that protocol (it would be
    all train): it is split 70/10/20 by position instead, and ``metadata["split"]`` says so.
    """
    root = Path(root)
    if not root.is_dir():
        raise ZooFormatError(f"{root} is not a folder of <prefix>_<label>s/net<idx>.pth files")
    found: list[tuple[int, int, Path]] = []
    for folder in sorted(root.iterdir()):
        match = _NFN_DIR.match(folder.name)
        if not folder.is_dir() or match is None or match["prefix"] != prefix:
            continue
        for file in folder.iterdir():
            m = _NFN_FILE.match(file.name)
            if m is not None:
                found.append((int(m["idx"]), int(match["label"]), file))
    if not found:
        raise ZooFormatError(f"{root} has no {prefix}_<label>s/net<idx>.pth files")
    found.sort()
    indices = [i for i, _, _ in found]
    if len(set(indices)) != len(indices):
        raise ZooFormatError(f"{root}: some net<idx>.pth index appears in two label folders")
    n = len(found)
    if n > split_points[1]:
        a, b = split_points
        split_note = f"published split: train {a}, val {b - a}, test {n - b} (by image index)"
    else:  # a smaller folder: never a silent train-only split
        a, b = int(round(0.7 * n)), int(round(0.8 * n))
        split_note = (f"{n} networks, not enough for the published split at {split_points[0]}/{split_points[1]}: "
                      f"proportional 70/10/20 by image index instead (train {a}, val {b - a}, test {n - b})")
    splits = {"train": np.arange(0, a), "val": np.arange(a, b), "test": np.arange(b, n)}
    spec = siren_spec(out_features)
    paths = [p for _, _, p in found]
    zoo = _zoo(spec, _features(paths, spec, NFN_NAMES), [l for _, l, _ in found], splits, paths, "nfn-sirens", root)
    zoo.metadata["split"] = split_note
    return zoo
