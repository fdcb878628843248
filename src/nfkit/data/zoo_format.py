"""nfkit's on-disk zoo format.

A zoo is a folder::

    manifest.json   format "nfkit-zoo", version, kind, spec, number of rows, splits,
                    normalisation statistics, generator settings, sha256 of every file
    weights.npy     float32 (rows, P): each network flattened in nfkit order W⁽¹⁾, b⁽¹⁾, W⁽²⁾, …
                    (:meth:`~nfkit.spaces.WeightSpaceFeatures.flatten`, one channel)
    labels.csv      one row per weights row: net id, checkpoint, hyperparameters, metrics

Writes are atomic: the folder is assembled under a temporary name and renamed into place, so a
killed writer leaves either the old zoo or the new one, never half of one. An existing folder is
replaced only with ``overwrite=True`` and only if it is an nfkit zoo holding nothing but a zoo's
files (:func:`owned_zoo`); anything else is refused with :class:`~nfkit.errors.NotOursError`.
Reads validate the manifest against its schema (:func:`validate_manifest`), resolve every file
name inside the folder, require ``weights.npy`` and ``labels.csv`` to be listed, and verify every
checksum.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nfkit.errors import NotOursError, SpecMismatchError, ZooFormatError
from nfkit.spaces.features import WeightSpaceFeatures
from nfkit.spaces.spec import WeightSpaceSpec
from nfkit.spaces.transformer_features import TransformerFeatures
from nfkit.spaces.transformer_spec import TransformerSpec, spec_from_dict
from nfkit.spaces.universal import UniversalSpec
from nfkit.spaces.universal_features import UniversalFeatures
from nfkit.util.files import atomic_write_bytes, make_staging_dir, write_csv_columns

__all__ = [
    "FORMAT",
    "VERSION",
    "REQUIRED_FILES",
    "Zoo",
    "save_zoo",
    "load_zoo",
    "sha256",
    "atomic_write_bytes",
    "validate_manifest",
    "owned_zoo",
]

FORMAT = "nfkit-zoo"
VERSION = 1
#: The files every zoo lists, with checksums, in its manifest.
REQUIRED_FILES = ("weights.npy", "labels.csv")
_ZOO_FILES = frozenset({"manifest.json", *REQUIRED_FILES})
_SPLITS = ("train", "val", "test")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


def sha256(path: Path) -> str:
    """Hex digest of a file's bytes."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


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
        files: file name → sha256, as verified when the zoo was loaded (empty for a zoo built in memory).
    """

    kind: str
    spec: WeightSpaceSpec | TransformerSpec | UniversalSpec
    features: WeightSpaceFeatures | TransformerFeatures | UniversalFeatures
    table: dict[str, np.ndarray]
    splits: dict[str, np.ndarray]
    metadata: dict[str, object] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.features)

    @property
    def dataset(self) -> str | None:
        """The image or text dataset a generated zoo was trained or fitted on (``"digits"``, ``"mnist"``, …), if recorded."""
        generator = self.metadata.get("generator")
        dataset = generator.get("dataset") if isinstance(generator, dict) else None
        return str(dataset) if dataset is not None else None

    @property
    def image_side(self) -> int | None:
        """The side of the square images an INR zoo's networks were fitted to (8 digits, 28 MNIST), if known."""
        return {"digits": 8, "mnist": 28}.get(self.dataset or "") if self.kind == "inr" else None

    def column(self, name: str) -> torch.Tensor:
        """A numeric column as a float32 tensor."""
        if name not in self.table:
            raise KeyError(f"no column {name!r}; columns: {', '.join(self.table)}")
        return torch.as_tensor(self.table[name].astype(np.float64), dtype=torch.float32)


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


def owned_zoo(path: Path) -> bool:
    """Whether ``path`` is a folder nfkit can prove it wrote as a zoo: an nfkit manifest and nothing but zoo files."""
    manifest = path / "manifest.json"
    if not path.is_dir() or not manifest.is_file():
        return False
    try:
        if json.loads(manifest.read_text()).get("format") != FORMAT:
            return False
    except (OSError, ValueError, AttributeError):
        return False
    return all(entry.name in _ZOO_FILES and entry.is_file() and not entry.is_symlink() for entry in path.iterdir())


def refuse_unless_replaceable(path: Path) -> None:
    """Raise :class:`~nfkit.errors.NotOursError` unless ``path`` is absent or a zoo nfkit wrote (see :func:`owned_zoo`)."""
    if path.exists() and not owned_zoo(path):
        raise NotOursError(
            f"{path} exists and is not a zoo nfkit wrote (it holds other files, or no nfkit manifest); "
            f"nfkit replaces only its own zoos: choose another folder"
        )


def save_zoo(zoo: Zoo, path: str | Path, *, overwrite: bool = False) -> Path:
    """Write ``zoo`` to the folder ``path`` atomically.

    An existing folder is replaced only with ``overwrite`` and only if it is a zoo nfkit wrote
    (:func:`owned_zoo`); the old zoo is moved aside and removed once the new one is in place.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; pass overwrite=True (or --overwrite) to replace it")
    refuse_unless_replaceable(path)
    if zoo.features.channels != 1:
        raise ZooFormatError("a stored zoo holds networks, i.e. features with one channel")
    staging = make_staging_dir(path.parent, f".{path.name}.partial-")
    try:
        flat = zoo.features.flatten()[:, 0].detach().cpu().to(torch.float32).numpy()
        np.save(staging / "weights.npy", flat)
        write_csv_columns(staging / "labels.csv", zoo.table)
        manifest = {
            "format": FORMAT,
            "version": VERSION,
            "kind": zoo.kind,
            "rows": len(zoo),
            "spec": zoo.spec.to_dict(),
            "splits": {k: [int(i) for i in v] for k, v in zoo.splits.items()},
            "metadata": zoo.metadata,
            "files": {name: sha256(staging / name) for name in REQUIRED_FILES},
        }
        (staging / "manifest.json").write_text(json.dumps(manifest, indent=1))
        if path.exists():
            retired = make_staging_dir(path.parent, f".{path.name}.replaced-")
            os.replace(path, retired / "zoo")
            os.replace(staging, path)
            shutil.rmtree(retired, ignore_errors=True)
        else:
            os.replace(staging, path)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return path


def _is_index_list(value: object, rows: int) -> bool:
    return isinstance(value, list) and all(type(i) is int and 0 <= i < rows for i in value)


def validate_manifest(manifest: object, where: Path) -> dict[str, Any]:
    """Check a parsed ``manifest.json`` against the zoo schema; return it or raise one :class:`ZooFormatError`.

    Schema: ``format`` ``"nfkit-zoo"``; ``version`` 1; ``kind`` a string; ``rows`` an integer ≥ 0;
    ``spec`` an object; ``splits`` with ``train``, ``val`` and ``test`` lists of row indices in
    ``[0, rows)``; ``metadata`` an object (optional); ``files`` an object mapping plain file names
    (no folders, resolved inside the zoo folder) to sha256 hex digests, listing at least
    :data:`REQUIRED_FILES`.
    """
    if not isinstance(manifest, dict):
        raise ZooFormatError(f"{where}: the manifest must be a JSON object, got {type(manifest).__name__}")
    if manifest.get("format") != FORMAT or manifest.get("version") != VERSION:
        raise ZooFormatError(
            f"{where}: format {manifest.get('format')!r} version {manifest.get('version')!r}; "
            f"this nfkit reads {FORMAT!r} version {VERSION}"
        )
    missing = [k for k in ("kind", "rows", "spec", "splits", "files") if k not in manifest]
    if missing:
        raise ZooFormatError(f"{where}: missing {', '.join(missing)}; a zoo manifest needs kind, rows, spec, splits and files")
    rows = manifest["rows"]
    if not isinstance(manifest["kind"], str):
        raise ZooFormatError(f"{where}: kind must be a string")
    if type(rows) is not int or rows < 0:
        raise ZooFormatError(f"{where}: rows must be a non-negative integer, got {rows!r}")
    if not isinstance(manifest["spec"], dict):
        raise ZooFormatError(f"{where}: spec must be an object")
    if not isinstance(manifest.get("metadata", {}), dict):
        raise ZooFormatError(f"{where}: metadata must be an object")
    splits = manifest["splits"]
    if not isinstance(splits, dict) or sorted(splits) != sorted(_SPLITS):
        raise ZooFormatError(f"{where}: splits must be an object with exactly train, val and test")
    for name in _SPLITS:
        if not _is_index_list(splits[name], rows):
            raise ZooFormatError(f"{where}: splits.{name} must be a list of row indices in [0, {rows})")
    files = manifest["files"]
    if not isinstance(files, dict):
        raise ZooFormatError(f"{where}: files must be an object of file name → sha256")
    for name, digest in files.items():
        if name in ("", ".", "..") or "/" in name or "\\" in name or "\x00" in name or Path(name).is_absolute():
            raise ZooFormatError(f"{where}: file name {name!r} is not a plain name inside the zoo folder")
        if name == "manifest.json":
            raise ZooFormatError(f"{where}: the manifest cannot list itself")
        if not isinstance(digest, str) or not _HEX64.match(digest):
            raise ZooFormatError(f"{where}: the checksum of {name} must be a sha256 hex digest")
    unlisted = [name for name in REQUIRED_FILES if name not in files]
    if unlisted:
        raise ZooFormatError(f"{where}: files must list {', '.join(unlisted)} with checksums")
    return manifest


def load_zoo(path: str | Path, *, verify: bool = True) -> Zoo:
    """Read a zoo folder written by :func:`save_zoo`: validate its manifest, verify its checksums, build the zoo.

    Raises :class:`~nfkit.errors.ZooFormatError` (one line naming the file) for anything else.
    """
    path = Path(path)
    if not path.exists():
        raise ZooFormatError(f"{path} does not exist; make a zoo with 'nfkit zoo generate' or point to one")
    if not path.is_dir():
        raise ZooFormatError(f"{path} is a file; a zoo is a folder with manifest.json, weights.npy and labels.csv")
    manifest_path = path / "manifest.json"
    if not manifest_path.is_file():
        raise ZooFormatError(f"{manifest_path} is missing; {path} is not an nfkit zoo (or its writer was killed)")
    try:
        manifest = validate_manifest(json.loads(manifest_path.read_text()), manifest_path)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ZooFormatError(f"{manifest_path} is not valid JSON ({error})") from None
    root = path.resolve()
    for name, digest in manifest["files"].items():
        file = path / name
        if file.resolve().parent != root:
            raise ZooFormatError(f"{manifest_path}: {name} resolves outside {path} (a link?); refused")
        if not file.is_file():
            raise ZooFormatError(f"{file} is missing")
        if verify and sha256(file) != digest:
            raise ZooFormatError(f"{file} does not match its checksum in manifest.json: it is corrupt or was edited")
    try:
        spec = spec_from_dict(manifest["spec"])
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as error:
        raise ZooFormatError(f"{manifest_path}: spec is not a weight-space description ({error})") from None
    try:
        flat = np.load(path / "weights.npy", allow_pickle=False)
    except (ValueError, OSError, EOFError) as error:
        raise ZooFormatError(f"{path / 'weights.npy'} is not readable ({error})") from None
    rows = manifest["rows"]
    if flat.ndim != 2 or flat.shape[0] != rows:
        raise ZooFormatError(f"{path / 'weights.npy'} has shape {flat.shape}; manifest.json says {rows} rows")
    try:
        features = spec.unflatten(torch.from_numpy(np.ascontiguousarray(flat, dtype=np.float32))[:, None])
    except SpecMismatchError as error:
        raise ZooFormatError(f"{path / 'weights.npy'} does not fit the spec in manifest.json ({error})") from None
    table = _read_csv(path / "labels.csv")
    if any(len(v) != rows for v in table.values()):
        raise ZooFormatError(f"{path / 'labels.csv'} does not have {rows} rows")
    splits = {k: np.array(manifest["splits"][k], dtype=np.int64) for k in _SPLITS}
    return Zoo(manifest["kind"], spec, features.check_finite(str(path)), table, splits, manifest.get("metadata", {}),
               dict(manifest["files"]))
