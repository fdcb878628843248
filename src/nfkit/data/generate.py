"""Zoo generation that can be killed, resumed and sharded.

Work is cut into chunks of nets. Chunk ``k`` is seeded by ``(seed, k)`` alone, so the zoo is the
same however the chunks are spread over runs, shards or ``torchrun`` ranks. Each finished chunk is
written atomically to ``<out>.chunks/``; a rerun skips the chunks already there. Whoever finishes
the last chunk merges them (under an exclusive lock file) into the zoo folder with
:func:`~nfkit.data.zoo_format.save_zoo`, then removes the chunk folder.
"""

from __future__ import annotations

import concurrent.futures
import io
import json
import math
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch

from nfkit.data.cnn_zoo import CNNZooConfig, cnn_zoo_spec, sample_hyperparameters, train_cnn_chunk
from nfkit.data.dataset import Normalization
from nfkit.data.sources import load_digits
from nfkit.data.zoo_format import Zoo, atomic_write_bytes, save_zoo
from nfkit.spaces.activations import Activation
from nfkit.spaces.features import WeightSpaceFeatures
from nfkit.spaces.spec import WeightSpaceSpec

__all__ = ["generate_cnn_zoo", "shard_from_environment", "SPLIT_FRACTIONS"]

#: Fractions of nets (not rows: all checkpoints of a net share its split) in train, val, test.
SPLIT_FRACTIONS = (0.7, 0.1, 0.2)


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


def _run_chunk(k: int, config: CNNZooConfig, data) -> tuple[np.ndarray, dict[str, list]]:
    generator = torch.Generator().manual_seed(config.seed * 1_000_003 + k)
    first = k * config.chunk
    n = min(config.chunk, config.size - first)
    hyper = sample_hyperparameters(n, generator, config.activations)
    net_ids = np.arange(first, first + n)
    rows_w: list[np.ndarray] = []
    table: dict[str, list] = {}
    for activation in sorted(set(hyper["activation"])):
        members = np.flatnonzero(hyper["activation"] == activation)
        sub = {key: value[members] for key, value in hyper.items()}
        saved, metrics = train_cnn_chunk(sub, data, config, generator)
        for c, epoch in enumerate(sorted(saved)):
            flat = saved[epoch].flatten()[:, 0].numpy()
            for j, m in enumerate(members):
                rows_w.append(flat[j])
                table.setdefault("net_id", []).append(int(net_ids[m]))
                for key, value in sub.items():
                    v = value[j]
                    table.setdefault(key, []).append(v if isinstance(v, str) else float(v))
                for key, value in metrics.items():
                    table.setdefault(key, []).append(float(value[c * len(members) + j]))
    return np.stack(rows_w).astype(np.float32), table


def _merge(out: Path, work: Path, config: CNNZooConfig, n_chunks: int, overwrite: bool) -> Path:
    weights, columns = [], {}
    for k in range(n_chunks):
        chunk = _read_chunk(_chunk_path(work, k))
        if chunk is None:
            raise RuntimeError(f"{_chunk_path(work, k)} disappeared or is corrupt during the merge; rerun to redo it")
        weights.append(chunk[0])
        for key, value in chunk[1].items():
            columns.setdefault(key, []).append(value)
    flat = np.concatenate(weights)
    table = {key: np.concatenate(v) for key, v in columns.items()}
    order = np.lexsort((table["epoch"].astype(np.float64), table["net_id"].astype(np.float64)))
    flat = flat[order]
    table = {key: value[order] for key, value in table.items()}
    kinds = sorted(set(table["activation"]))
    spec = cnn_zoo_spec(kinds[0])
    if len(kinds) > 1:
        spec = WeightSpaceSpec(tuple(_with_activation(layer, i, spec) for i, layer in enumerate(spec.layers)))
    features = WeightSpaceFeatures.unflatten(spec, torch.from_numpy(flat)[:, None])
    # splits by net: every checkpoint of a net lands in the same split
    nets = np.random.default_rng(config.seed).permutation(config.size)
    a = int(SPLIT_FRACTIONS[0] * config.size)
    b = a + int(SPLIT_FRACTIONS[1] * config.size)
    split_of = np.empty(config.size, dtype=object)
    split_of[nets[:a]], split_of[nets[a:b]], split_of[nets[b:]] = "train", "val", "test"
    net_of_row = table["net_id"].astype(np.int64)
    splits = {s: np.flatnonzero(split_of[net_of_row] == s) for s in ("train", "val", "test")}
    norm = Normalization.fit(features[splits["train"]], spec.symmetry_group())
    zoo = Zoo(
        "cnn",
        spec,
        features,
        table,
        splits,
        {"generator": config.to_dict(), "normalization": {"shifts": norm.shifts, "scales": norm.scales}},
    )
    save_zoo(zoo, out, overwrite=overwrite)
    shutil.rmtree(work, ignore_errors=True)
    return out


def _with_activation(layer, i, spec):
    from dataclasses import replace

    return replace(layer, activation=Activation("mixed")) if i < spec.num_layers - 1 else layer


def _train_chunks(work: Path, config: CNNZooConfig, chunks: list[int], n_chunks: int, progress: bool, label: str) -> None:
    """Train and store the given chunks, single-threaded (see :func:`generate_cnn_zoo`)."""
    data = load_digits() if config.dataset == "digits" else None
    if data is None:
        raise ValueError(f"unknown dataset {config.dataset!r}; available: digits")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    start = time.perf_counter()
    try:
        for done, k in enumerate(chunks, start=1):
            path = _chunk_path(work, k)
            if _read_chunk(path) is not None:
                if progress:
                    _say(f"[cnn zoo] chunk {k + 1}/{n_chunks} already done, skipped")
                continue
            weights, table = _run_chunk(k, config, data)
            buffer = io.BytesIO()
            np.savez(buffer, weights=weights, table=np.frombuffer(json.dumps(table).encode(), dtype=np.uint8))
            atomic_write_bytes(path, buffer.getvalue())
            if progress:
                bar = "#" * (20 * done // len(chunks))
                _say(f"[cnn zoo] {label}[{bar:<20}] chunk {k + 1}/{n_chunks} ({done}/{len(chunks)}), {time.perf_counter() - start:.0f} s")
    finally:
        torch.set_num_threads(threads)


def _worker(work: str, config: CNNZooConfig, chunks: list[int], n_chunks: int, progress: bool, label: str) -> None:
    _train_chunks(Path(work), config, chunks, n_chunks, progress, label)


def generate_cnn_zoo(
    out: str | Path,
    config: CNNZooConfig = CNNZooConfig(),
    *,
    shard: tuple[int, int] | None = None,
    workers: int = 1,
    overwrite: bool = False,
    progress: bool = True,
) -> Path | None:
    """Generate (or resume) a CNN zoo into the folder ``out``.

    Args:
        out: the zoo folder to create; an existing one is replaced only with ``overwrite``.
        config: sizes, seed, epochs, checkpoints.
        shard: ``(i, n)`` to do only chunks ``k ≡ i (mod n)``; by default from ``torchrun``'s environment.
        workers: local processes that split this shard's chunks.
        progress: report each chunk on stderr.

    Every chunk trains on one thread: a chaotic net (high learning rate) amplifies the rounding
    differences that another thread count makes, so parallelism comes from processes instead,
    and the zoo is bitwise the same however its chunks were spread over shards, ranks or workers.

    Returns the zoo folder once every chunk exists and has been merged, else ``None`` (other shards
    still have work; the last one to finish merges).
    """
    out = Path(out)
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} exists; pass overwrite=True (--overwrite) to replace it")
    shard_index, shard_count = shard if shard is not None else shard_from_environment()
    if not 0 <= shard_index < shard_count:
        raise ValueError(f"shard {shard_index}/{shard_count} is not a valid shard")
    work = out.with_name(out.name + ".chunks")
    work.mkdir(parents=True, exist_ok=True)
    settings = json.dumps(config.to_dict(), sort_keys=True)
    settings_path = work / "config.json"
    if settings_path.exists() and settings_path.read_text() != settings:
        raise ValueError(
            f"{work} holds chunks of a generation with other settings ({settings_path.read_text()}); "
            f"finish that one with the same settings or remove {work}"
        )
    if not settings_path.exists():
        atomic_write_bytes(settings_path, settings.encode())
    n_chunks = math.ceil(config.size / config.chunk)
    mine = [k for k in range(n_chunks) if k % shard_count == shard_index]
    start = time.perf_counter()
    if workers <= 1 or len(mine) <= 1:
        _train_chunks(work, config, mine, n_chunks, progress, "")
    else:
        context = torch.multiprocessing.get_context("spawn")
        with concurrent.futures.ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
            jobs = [
                pool.submit(_worker, str(work), config, mine[w::workers], n_chunks, progress, f"worker {w}: ")
                for w in range(min(workers, len(mine)))
            ]
            for job in jobs:
                job.result()
    if any(_read_chunk(_chunk_path(work, k)) is None for k in range(n_chunks)):
        if progress:
            _say(f"[cnn zoo] shard {shard_index}/{shard_count} done; the last shard to finish merges into {out}")
        return None
    lock = work / "merge.lock"
    try:
        fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return None  # another process is merging
    os.close(fd)
    result = _merge(out, work, config, n_chunks, overwrite)
    if progress:
        _say(f"[cnn zoo] wrote {out} ({config.size} nets × {len(config.checkpoints)} checkpoints) in {time.perf_counter() - start:.0f} s")
    return result
