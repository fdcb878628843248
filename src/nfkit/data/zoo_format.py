"""nfkit's on-disk zoo format.

A zoo is a folder::

    manifest.json   format "nfkit-zoo", version, kind, spec, number of rows, splits,
                    normalisation statistics, generator settings, sha256 of every file
    weights.npy     float32 (rows, P): each network flattened in nfkit order W⁽¹⁾, b⁽¹⁾, W⁽²⁾, …
                    (:meth:`~nfkit.spaces.WeightSpaceFeatures.flatten`, one channel)
    labels.csv      one row per weights row: net id, checkpoint, hyperparameters, metrics

Writes are atomic: the folder is assembled under a temporary name and renamed into place, so a
killed writer leaves either the old zoo or the new one, never half of one. An existing zoo is
replaced only with ``overwrite=True``. Reads verify the format version and every checksum.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from nfkit.data.small_cnn_zoo import ZooFormatError
from nfkit.errors import SpecMismatchError
from nfkit.spaces.features import WeightSpaceFeatures
from nfkit.spaces.spec import WeightSpaceSpec
from nfkit.spaces.transformer_features import TransformerFeatures
from nfkit.spaces.transformer_spec import TransformerSpec, spec_from_dict

__all__ = ["FORMAT", "VERSION", "Zoo", "save_zoo", "load_zoo", "sha256", "atomic_write_bytes"]

FORMAT = "nfkit-zoo"
VERSION = 1


def sha256(path: Path) -> str:
    """Hex digest of a file's bytes."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename (never a partial file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@dataclass
class Zoo:
    """A zoo in memory.

    Attributes:
        kind: ``"cnn"``, ``"inr"``, …
        spec: the networks' weight space.
        features: batch N, one channel.
        table: column name → ``(N,)`` array (net id, checkpoint, hyperparameters, metrics).
        splits: ``{"train", "val", "test"}`` → row indices (all checkpoints of a net share a split).
        metadata: generator settings and anything else JSON-ready.
    """

    kind: str
    spec: WeightSpaceSpec | TransformerSpec
    features: WeightSpaceFeatures | TransformerFeatures
    table: dict[str, np.ndarray]
    splits: dict[str, np.ndarray]
    metadata: dict[str, object] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.features)

    def column(self, name: str) -> torch.Tensor:
        """A numeric column as a float32 tensor."""
        if name not in self.table:
            raise KeyError(f"no column {name!r}; columns: {', '.join(self.table)}")
        return torch.as_tensor(self.table[name].astype(np.float64), dtype=torch.float32)


def _write_csv(path: Path, table: dict[str, np.ndarray]) -> None:
    names = list(table)
    rows = len(next(iter(table.values()))) if table else 0
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(names)
        for i in range(rows):
            writer.writerow([table[n][i] for n in names])


def _read_csv(path: Path) -> dict[str, np.ndarray]:
    with path.open(newline="") as f:
        reader = csv.reader(f)
        names = next(reader, None)
        if names is None:
            raise ZooFormatError(f"{path} is empty")
        columns: list[list[str]] = [[] for _ in names]
        for line, row in enumerate(reader, start=2):
            if len(row) != len(names):
                raise ZooFormatError(f"{path}, line {line}: {len(row)} fields, expected {len(names)}")
            for c, v in zip(columns, row):
                c.append(v)
    table = {}
    for name, values in zip(names, columns):
        try:
            table[name] = np.array([float(v) for v in values])
        except ValueError:
            table[name] = np.array(values, dtype=object)
    return table


def save_zoo(zoo: Zoo, path: str | Path, *, overwrite: bool = False) -> Path:
    """Write ``zoo`` to the folder ``path`` atomically; refuse to replace an existing one unless ``overwrite``."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; pass overwrite=True (or --overwrite) to replace it")
    if zoo.features.channels != 1:
        raise ZooFormatError("a stored zoo holds networks, i.e. features with one channel")
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.partial-"))
    try:
        flat = zoo.features.flatten()[:, 0].detach().cpu().to(torch.float32).numpy()
        np.save(staging / "weights.npy", flat)
        _write_csv(staging / "labels.csv", zoo.table)
        manifest = {
            "format": FORMAT,
            "version": VERSION,
            "kind": zoo.kind,
            "rows": len(zoo),
            "spec": zoo.spec.to_dict(),
            "splits": {k: [int(i) for i in v] for k, v in zoo.splits.items()},
            "metadata": zoo.metadata,
            "files": {name: sha256(staging / name) for name in ("weights.npy", "labels.csv")},
        }
        (staging / "manifest.json").write_text(json.dumps(manifest, indent=1))
        if path.exists():
            retired = path.with_name(f".{path.name}.replaced")
            shutil.rmtree(retired, ignore_errors=True)
            os.replace(path, retired)
            os.replace(staging, path)
            shutil.rmtree(retired, ignore_errors=True)
        else:
            os.replace(staging, path)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return path


def load_zoo(path: str | Path, *, verify: bool = True) -> Zoo:
    """Read a zoo folder written by :func:`save_zoo`, checking its version and checksums."""
    path = Path(path)
    manifest_path = path / "manifest.json"
    if not manifest_path.is_file():
        raise ZooFormatError(f"{manifest_path} is missing; {path} is not an nfkit zoo (or its writer was killed)")
    try:
        manifest = json.loads(manifest_path.read_text())
    except json.JSONDecodeError as error:
        raise ZooFormatError(f"{manifest_path} is not valid JSON ({error})") from None
    if manifest.get("format") != FORMAT or manifest.get("version") != VERSION:
        raise ZooFormatError(
            f"{manifest_path}: format {manifest.get('format')!r} version {manifest.get('version')!r}; "
            f"this nfkit reads {FORMAT!r} version {VERSION}"
        )
    for name, digest in manifest["files"].items():
        file = path / name
        if not file.is_file():
            raise ZooFormatError(f"{file} is missing")
        if verify and sha256(file) != digest:
            raise ZooFormatError(f"{file} does not match its checksum in manifest.json: it is corrupt or was edited")
    spec = spec_from_dict(manifest["spec"])
    try:
        flat = np.load(path / "weights.npy", allow_pickle=False)
    except (ValueError, OSError, EOFError) as error:
        raise ZooFormatError(f"{path / 'weights.npy'} is not readable ({error})") from None
    rows = int(manifest["rows"])
    if flat.shape[0] != rows:
        raise ZooFormatError(f"{path / 'weights.npy'} has {flat.shape[0]} rows; manifest.json says {rows}")
    try:
        features = spec.unflatten(torch.from_numpy(np.ascontiguousarray(flat))[:, None])
    except SpecMismatchError as error:
        raise ZooFormatError(f"{path / 'weights.npy'} does not fit the spec in manifest.json ({error})") from None
    table = _read_csv(path / "labels.csv")
    if any(len(v) != rows for v in table.values()):
        raise ZooFormatError(f"{path / 'labels.csv'} does not have {rows} rows")
    splits = {k: np.array(v, dtype=np.int64) for k, v in manifest["splits"].items()}
    return Zoo(manifest["kind"], spec, features.check_finite(str(path)), table, splits, manifest.get("metadata", {}))
