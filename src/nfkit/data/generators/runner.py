"""Zoo generation that can be killed, resumed and sharded, for any :class:`ZooRecipe`.

Work is cut into chunks of nets. Chunk ``k`` is seeded by ``(seed, k)`` alone and trained on one
thread, so the zoo is bitwise the same however the chunks are spread over runs, ``--shard i/n``,
``torchrun`` ranks or ``workers`` (a chaotic net amplifies the rounding differences another thread
count would make; parallelism comes from processes instead). Each finished chunk is written
atomically to ``<out>.chunks/``; a rerun skips the chunks already there and recomputes broken
ones. Whoever finishes the last chunk merges them, under an exclusive lock, into the zoo folder
(:func:`~nfkit.data.zoo_format.save_zoo`) and removes the chunk folder's files.

Locks are ``flock``s (:func:`~nfkit.util.files.exclusive_lock`): one per shard, so two processes
running the same shard into the same folder are refused, and one for the merge. The kernel drops a
killed holder's lock, so no lock is ever stale. Worker processes die with the command that started
them (:func:`~nfkit.util.processes.worker_pool`).
"""

from __future__ import annotations

import abc
import io
import json
import math
import os
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nfkit.spaces.kinds import AnySpec
from nfkit.data.dataset import Normalization
from nfkit.data.zoo_format import Zoo, refuse_unless_replaceable, save_zoo
from nfkit.errors import (
    FolderInUseError,
    InvalidOptionError,
    NotOursError,
    ZooFormatError,
)
from nfkit.util.files import atomic_write_bytes, exclusive_lock, make_dir
from nfkit.util.processes import worker_pool

__all__ = [
    "ZooRecipe",
    "generate_zoo",
    "shard_from_environment",
    "SPLIT_FRACTIONS",
    "log_uniform",
    "choice",
    "rows_by_activation",
    "checked_schedule",
    "checked_choices",
]

#: Fractions of nets (not rows: all checkpoints of a net share its split) in train, val, test.
SPLIT_FRACTIONS = (0.7, 0.1, 0.2)


class ZooRecipe(abc.ABC):
    """How to make one kind of zoo. Instances must pickle (worker processes receive them).

    ``config`` needs ``size``, ``seed``, ``chunk`` and ``to_dict()``.
    """

    kind: str
    config: Any

    @abc.abstractmethod
    def load_data(self) -> object:
        """The training data every chunk uses (loaded once per process)."""

    @abc.abstractmethod
    def run_chunk(self, k: int, data: object, generator: torch.Generator) -> tuple[np.ndarray, dict[str, list[object]]]:
        """Train chunk ``k``: flattened networks ``(rows, P)`` and their table (a ``net_id`` column included)."""

    @abc.abstractmethod
    def spec(self, table: dict[str, np.ndarray]) -> AnySpec:
        """The weight space of the merged zoo."""

    def describe(self, rows: int) -> str:
        """A line for the progress report."""
        return f"{self.config.size} nets, {rows} rows"

    def num_nets(self) -> int:
        """How many networks the zoo trains (``config.size``; an INR zoo with views trains more)."""
        return int(self.config.size)

    def split_units(self, table: dict[str, np.ndarray]) -> tuple[np.ndarray, int]:
        """Per row, the unit a split keeps together, and how many units there are.

        By default the net (all checkpoints of a net share its split); an INR zoo with several views
        of an image keeps every view of that image in one split.
        """
        return table["net_id"].astype(np.int64), int(self.config.size)


def log_uniform(n: int, low: float, high: float, generator: torch.Generator) -> np.ndarray:
    """``n`` draws, log-uniform on ``[low, high]`` (float64)."""
    u = torch.rand(n, generator=generator, dtype=torch.float64)
    return torch.exp(math.log(low) + (math.log(high) - math.log(low)) * u).numpy()


def checked_schedule(size: int, chunk: int, epochs: int, checkpoints: tuple[int, ...]) -> tuple[int, ...]:
    """Validate a trained zoo's size and schedule; return its checkpoint epochs sorted and deduplicated.

    Example:
        >>> checked_schedule(10, 5, 4, (4, 1, 4))
        (1, 4)
    """
    for name, value in (("size", size), ("chunk", chunk), ("epochs", epochs)):
        if value <= 0:
            raise InvalidOptionError(f"{name} must be a positive integer, got {value}")
    epochs_kept = tuple(sorted(set(checkpoints)))
    if not epochs_kept or not set(epochs_kept) <= set(range(1, epochs + 1)):
        raise InvalidOptionError(f"checkpoints {epochs_kept} must be epochs in 1..{epochs}")
    return epochs_kept


def checked_choices(dataset: str, datasets: Iterable[str], activations: tuple[str, ...], allowed: tuple[str, ...]) -> None:
    """Refuse a dataset or activations a recipe does not offer, with the ones it does.

    Example:
        >>> checked_choices("digits", ("digits", "mnist"), ("relu",), ("relu", "tanh"))
    """
    options = tuple(datasets)
    if dataset not in options:
        raise InvalidOptionError(f"unknown dataset {dataset!r}; available: {', '.join(options)}")
    if not activations or not set(activations) <= set(allowed):
        raise InvalidOptionError(f"activations must be among {allowed}, got {activations}")


def choice(n: int, options: tuple[str, ...], generator: torch.Generator) -> np.ndarray:
    """``n`` uniform draws from ``options`` (an object array of strings)."""
    return np.array([options[i] for i in torch.randint(0, len(options), (n,), generator=generator)], dtype=object)


def rows_by_activation(
    hyper: dict[str, np.ndarray],
    first: int,
    train: Callable[[dict[str, np.ndarray]], tuple[dict[int, np.ndarray], dict[str, np.ndarray]]],
    by: str = "activation",
) -> tuple[np.ndarray, dict[str, list[object]]]:
    """Train a chunk's nets one activation (or other ``by`` column's value) at a time and lay out its rows and table.

    Args:
        hyper: per-net hyperparameters (a ``by`` column included) of nets ``first, first+1, …``.
        train: trains nets of one activation: ``({epoch: flat weights (n, P)}, {column: values, checkpoint-major})``.

    Returns ``(rows (R, P), table)`` with a ``net_id`` column, the hyperparameters and the metrics.
    """
    rows: list[np.ndarray] = []
    table: dict[str, list[object]] = {}
    for group in sorted(set(hyper[by])):
        members = np.flatnonzero(hyper[by] == group)
        sub = {key: value[members] for key, value in hyper.items()}
        saved, metrics = train(sub)
        for c, epoch in enumerate(sorted(saved)):
            for j, member in enumerate(members):
                rows.append(saved[epoch][j])
                table.setdefault("net_id", []).append(int(first + member))
                for key, value in sub.items():
                    table.setdefault(key, []).append(value[j] if isinstance(value[j], str) else float(value[j]))
                for key, value in metrics.items():
                    table.setdefault(key, []).append(float(value[c * len(members) + j]))
    return np.stack(rows), table


def shard_from_environment() -> tuple[int, int]:
    """``(rank, world size)`` from ``torchrun``'s ``RANK``/``WORLD_SIZE``, else ``(0, 1)``."""
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


def _say(message: str) -> None:
    sys.stderr.write(message + "\n")
    sys.stderr.flush()


def _chunk_path(work: Path, k: int) -> Path:
    return work / f"chunk_{k:05d}.npz"


def _read_chunk(path: Path) -> tuple[np.ndarray, dict[str, np.ndarray]] | None:
    try:
        with np.load(path, allow_pickle=False) as data:
            weights = data["weights"]
            table = json.loads(bytes(data["table"]).decode())
        return weights, {k: np.array(v, dtype=object if isinstance(v[0], str) else None) for k, v in table.items()}
    except (OSError, ValueError, KeyError, EOFError, json.JSONDecodeError):
        return None  # a corrupt or partial chunk is recomputed


def _train_chunks(work: Path, recipe: ZooRecipe, chunks: list[int], n_chunks: int, progress: bool, label: str) -> None:
    data = recipe.load_data()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    start = time.perf_counter()
    try:
        for done, k in enumerate(chunks, start=1):
            path = _chunk_path(work, k)
            if _read_chunk(path) is not None:
                if progress:
                    _say(f"[{recipe.kind} zoo] chunk {k + 1}/{n_chunks} already done, skipped")
                continue
            generator = torch.Generator().manual_seed(recipe.config.seed * 1_000_003 + k)
            weights, table = recipe.run_chunk(k, data, generator)
            buffer = io.BytesIO()
            np.savez(buffer, weights=weights.astype(np.float32), table=np.frombuffer(json.dumps(table).encode(), dtype=np.uint8))
            atomic_write_bytes(path, buffer.getvalue())
            if progress:
                bar = "#" * (20 * done // len(chunks))
                _say(f"[{recipe.kind} zoo] {label}[{bar:<20}] chunk {k + 1}/{n_chunks} ({done}/{len(chunks)}), "
                     f"{time.perf_counter() - start:.0f} s")
    finally:
        torch.set_num_threads(threads)


def _worker(work: str, recipe: ZooRecipe, chunks: list[int], n_chunks: int, progress: bool, label: str) -> None:
    _train_chunks(Path(work), recipe, chunks, n_chunks, progress, label)


def _merge(out: Path, work: Path, recipe: ZooRecipe, n_chunks: int, overwrite: bool) -> Zoo:
    weights: list[np.ndarray] = []
    columns: dict[str, list[np.ndarray]] = {}
    for k in range(n_chunks):
        chunk = _read_chunk(_chunk_path(work, k))
        if chunk is None:
            raise ZooFormatError(f"{_chunk_path(work, k)} is corrupt or disappeared during the merge; "
                                 f"rerun the same command: it recomputes that chunk and merges again")
        weights.append(chunk[0])
        for key, value in chunk[1].items():
            columns.setdefault(key, []).append(value)
    flat = np.concatenate(weights)
    table = {key: np.concatenate(v) for key, v in columns.items()}
    keys = [table["net_id"].astype(np.float64)]
    if "epoch" in table:
        keys.insert(0, table["epoch"].astype(np.float64))
    order = np.lexsort(keys)
    flat, table = flat[order], {key: value[order] for key, value in table.items()}
    spec = recipe.spec(table)
    features = spec.unflatten(torch.from_numpy(flat)[:, None])
    unit_of_row, size = recipe.split_units(table)
    units = np.random.default_rng(recipe.config.seed).permutation(size)
    a = int(SPLIT_FRACTIONS[0] * size)
    b = a + int(SPLIT_FRACTIONS[1] * size)
    split_of = np.empty(size, dtype=object)
    split_of[units[:a]], split_of[units[a:b]], split_of[units[b:]] = "train", "val", "test"
    splits = {s: np.flatnonzero(split_of[unit_of_row] == s) for s in ("train", "val", "test")}
    norm = Normalization.fit(features[splits["train"]], spec.symmetry_group())
    metadata = {"generator": recipe.config.to_dict(), "normalization": {"shifts": norm.shifts, "scales": norm.scales}}
    zoo = Zoo(recipe.kind, spec, features, table, splits, metadata)
    save_zoo(zoo, out, overwrite=overwrite)
    _remove_work(work)
    return zoo


def _ours_in_work(name: str) -> bool:
    """Files the generator writes into ``<out>.chunks`` (chunks, their temporaries, settings, locks)."""
    return (name.startswith(("chunk_", ".chunk_", ".shard-", ".config.json.")) or name in ("config.json", "merge.lock"))


def _remove_work(work: Path) -> None:
    """Remove the chunk folder's own files, then the folder if nothing else is left in it."""
    for entry in work.iterdir():
        if entry.is_file() and _ours_in_work(entry.name):
            entry.unlink(missing_ok=True)
    try:
        work.rmdir()
    except OSError:
        pass  # something nfkit did not write is in there: leave it


def generate_zoo(
    out: str | Path,
    recipe: ZooRecipe,
    *,
    shard: tuple[int, int] | None = None,
    workers: int = 1,
    overwrite: bool = False,
    progress: bool = True,
) -> Path | None:
    """Generate (or resume) a zoo into the folder ``out``.

    Args:
        out: the zoo folder to create; an existing one is replaced only with ``overwrite``.
        recipe: what to train (e.g. :class:`~nfkit.data.generators.cnn_zoo.CNNRecipe`).
        shard: ``(i, n)`` to do only chunks ``k ≡ i (mod n)``; by default from ``torchrun``'s environment.
        workers: local processes that split this shard's chunks.
        progress: report each chunk on stderr.

    Returns the zoo folder once every chunk exists and has been merged, else ``None`` (other shards
    still have work; the last one to finish merges).
    """
    out = Path(out)
    config = recipe.config
    if workers < 1:
        raise InvalidOptionError(f"workers must be at least 1, got {workers}")
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} exists; pass overwrite=True (--overwrite) to replace it")
    refuse_unless_replaceable(out)  # checked now, not after hours of training
    shard_index, shard_count = shard if shard is not None else shard_from_environment()
    if not 0 <= shard_index < shard_count:
        raise InvalidOptionError(f"shard {shard_index}/{shard_count} is not a valid shard")
    work = out.with_name(out.name + ".chunks")
    settings = json.dumps({"kind": recipe.kind, **config.to_dict()}, sort_keys=True)
    settings_path = work / "config.json"
    if work.exists() and not settings_path.exists() and any(not _ours_in_work(e.name) for e in work.iterdir()):
        raise NotOursError(f"{work} exists and holds files nfkit did not write; move it away or choose another --out")
    make_dir(work)
    if settings_path.exists() and settings_path.read_text() != settings:
        raise InvalidOptionError(
            f"{work} holds chunks of a generation with other settings ({settings_path.read_text()}); "
            f"finish that one with the same settings or remove {work}"
        )
    if not settings_path.exists():
        atomic_write_bytes(settings_path, settings.encode())
    n_chunks = math.ceil(recipe.num_nets() / config.chunk)
    mine = [k for k in range(n_chunks) if k % shard_count == shard_index]
    start = time.perf_counter()
    with exclusive_lock(work / f"shard-{shard_index}-of-{shard_count}", f"shard {shard_index}/{shard_count} of {out}"):
        if workers <= 1 or len(mine) <= 1:
            _train_chunks(work, recipe, mine, n_chunks, progress, "")
        else:
            with worker_pool(min(workers, len(mine))) as pool:
                jobs = [
                    pool.submit(_worker, str(work), recipe, mine[w::workers], n_chunks, progress, f"worker {w}: ")
                    for w in range(min(workers, len(mine)))
                ]
                for job in jobs:
                    job.result()
    missing = sum(_read_chunk(_chunk_path(work, k)) is None for k in range(n_chunks))
    if missing:
        if progress:
            _say(f"[{recipe.kind} zoo] shard {shard_index}/{shard_count} done; {missing} chunks of other shards are "
                 f"still missing; the last shard to finish merges into {out}")
        return None
    try:
        with exclusive_lock(out, f"{out} (merging)"):
            if not work.exists():  # another shard merged while we waited
                return out
            zoo = _merge(out, work, recipe, n_chunks, overwrite)
    except FolderInUseError:
        if progress:
            _say(f"[{recipe.kind} zoo] another process is merging {out}")
        return None
    if progress:
        _say(f"[{recipe.kind} zoo] wrote {out} ({recipe.describe(len(zoo))}) in {time.perf_counter() - start:.0f} s")
    return out
