"""Loader of the Small Transformer Zoo (Tran et al., "Equivariant Neural Functional Networks for
Transformers", ICLR 2025, App. F) in its published layout (users download it; nothing is fetched).

Layout::

    <root>/…/<run>_<epoch>_<int(test_acc·10000)>.pt    plain state dicts (epochs 1, 50, 75, 100, best…)
    <metadata>.csv                                        optional: wandb config + ckpt_epoch, ckpt_file,
                                                          test_top1_accuracy (MNIST) or test_accuracy (AG-News)

State-dict keys: ``embedding.*`` (MNIST: the patch-embedding convolution; absent in AG-News, whose
frozen word2vec embedding is not shipped), ``encoder.{l}.attention.{queries,keys,values,out_projection}.weight``
(no biases), ``encoder.{l}.fc{1,2}.{weight,bias}``, ``classifier.fc{1,2}.{weight,bias}``. Blocks have no
residuals and plain LayerNorms (so the stream permutation is a symmetry). The number of heads is
not recorded in the weights: pass it (the zoo uses 2).

The NFN protocol: keep checkpoints of epoch ``"75"`` with accuracy ≥ ``cut_off``, shuffle with
Python's ``random`` seeded by 3, split 70/15/15.
"""

from __future__ import annotations

import csv
import random
import re
from pathlib import Path

import numpy as np
import torch

from nfkit.data.published.inr_sets import read_state_dict
from nfkit.errors import ZooFormatError
from nfkit.data.zoo_format import Zoo
from nfkit.spaces.features import stack
from nfkit.spaces.spec import LayerSpec, WeightSpaceSpec
from nfkit.spaces.transformer_features import TransformerFeatures
from nfkit.spaces.transformer_spec import AttentionBlockSpec, TransformerSpec

__all__ = ["load_small_transformer_zoo", "parse_checkpoint_name", "features_from_zoo_state_dict"]

_NAME = re.compile(r"^(?P<run>.+)_(?P<epoch>\d+|best\d*)_(?P<accuracy>\d+)\.pt$")
_LAYOUT = "<run>_<epoch>_<int(test_accuracy*10000)>.pt holding a state dict with encoder.{l}.attention.* keys"


def parse_checkpoint_name(name: str) -> tuple[str, str, float] | None:
    """``(run, epoch, test accuracy)`` from a checkpoint file name, or ``None`` if it is not one.

    Example:
        >>> parse_checkpoint_name("3f9x2k_75_9312.pt")
        ('3f9x2k', '75', 0.9312)
    """
    match = _NAME.match(name)
    if match is None:
        return None
    return match["run"], match["epoch"], int(match["accuracy"]) / 10000


def _take(state: dict[str, torch.Tensor], key: str, path: Path) -> torch.Tensor:
    if key not in state:
        raise ZooFormatError(f"{path}: no {key!r}; expected {_LAYOUT}")
    return state.pop(key)


def features_from_zoo_state_dict(state: dict[str, torch.Tensor], heads: int, path: Path = Path("<state dict>")) -> TransformerFeatures:
    """One checkpoint as features (batch 1, one channel). Raises :class:`ZooFormatError` for other layouts."""
    state = dict(state)
    blocks, named = [], {}
    l = 0
    while f"encoder.{l}.attention.queries.weight" in state:
        p = f"encoder.{l}."
        q, k, v, o = (_take(state, p + f"attention.{n}.weight", path) for n in ("queries", "keys", "values", "out_projection"))
        fc1w, fc1b, fc2w, fc2b = (_take(state, p + n, path) for n in ("fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"))
        d = q.shape[1]
        if q.shape[0] % heads or v.shape[0] % heads:
            raise ZooFormatError(f"{path}: {p}attention projections of width {q.shape[0]} do not split into {heads} heads")
        dk, dv = q.shape[0] // heads, v.shape[0] // heads
        if k.shape != q.shape or o.shape != (d, heads * dv) or fc1w.shape[1] != d or fc2w.shape != (d, fc1w.shape[0]):
            raise ZooFormatError(f"{path}: block {l} tensors do not fit together (queries {tuple(q.shape)}, out_projection {tuple(o.shape)})")
        blocks.append(AttentionBlockSpec(d, heads, dk, dv, fc1w.shape[0], attention_bias=False, norm_affine=False, residual=False, norm_first=True))
        named.update({
            f"blocks.{l}.query": q.reshape(heads, dk, d).transpose(1, 2),
            f"blocks.{l}.key": k.reshape(heads, dk, d).transpose(1, 2),
            f"blocks.{l}.value": v.reshape(heads, dv, d).transpose(1, 2),
            f"blocks.{l}.output": o.t().reshape(heads, dv, d),
            f"blocks.{l}.query_bias": q.new_zeros(heads, dk),
            f"blocks.{l}.key_bias": q.new_zeros(heads, dk),
            f"blocks.{l}.value_bias": q.new_zeros(heads, dv),
            f"blocks.{l}.output_bias": q.new_zeros(d),
            f"blocks.{l}.ffn_in": fc1w, f"blocks.{l}.ffn_in_bias": fc1b, f"blocks.{l}.ffn_out": fc2w, f"blocks.{l}.ffn_out_bias": fc2b,
        })
        l += 1
    if not blocks:
        raise ZooFormatError(f"{path}: no encoder blocks; expected {_LAYOUT}")
    w1, b1, w2, b2 = (_take(state, f"classifier.{n}", path) for n in ("fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"))
    head = WeightSpaceSpec.mlp([w1.shape[1], w1.shape[0], w2.shape[0]], "relu")
    named.update({"head.W1": w1, "head.b1": b1, "head.W2": w2, "head.b2": b2})
    embedding = None
    kernels = [k for k, t in state.items() if k.startswith("embedding.") and t.dim() == 4]
    if kernels:
        w = state.pop(kernels[0])
        bias_keys = [k for k in state if k.startswith("embedding.") and state[k].shape == (w.shape[0],)]
        b = state.pop(bias_keys[0]) if bias_keys else None
        embedding = WeightSpaceSpec((LayerSpec("conv", w.shape[0], w.shape[1], tuple(w.shape[2:]), bias=b is not None,
                                               stride=tuple(w.shape[2:]), padding=(0, 0), dilation=(1, 1), name="embedding"),))
        named.update({"embedding.W1": w, "embedding.b1": b if b is not None else w.new_zeros(w.shape[0])})
    if state:
        raise ZooFormatError(f"{path}: unexpected keys {sorted(state)[:5]}; expected {_LAYOUT}")
    try:
        spec = TransformerSpec(tuple(blocks), embedding, head)
        return TransformerFeatures(spec, {k: t.to(torch.float32)[None, None] for k, t in named.items()}).check_finite(str(path))
    except ValueError as error:
        raise ZooFormatError(f"{path}: {error}") from None


def _rows_from_metadata(metadata: Path, root: Path) -> list[tuple[Path, str, str, float]]:
    if not metadata.is_file():
        raise ZooFormatError(f"{metadata} is missing")
    with metadata.open(newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        raise ZooFormatError(f"{metadata} has no rows")
    accuracy = next((c for c in ("test_top1_accuracy", "test_accuracy") if c in rows[0]), None)
    if accuracy is None or "ckpt_file" not in rows[0] or "ckpt_epoch" not in rows[0]:
        raise ZooFormatError(f"{metadata}: needs columns ckpt_file, ckpt_epoch and test_top1_accuracy or test_accuracy")
    by_name = {p.name: p for p in root.rglob("*.pt")}
    out, seen = [], set()
    for line, row in enumerate(rows, start=2):
        name = Path(row["ckpt_file"]).name
        if name in seen:  # the reference drops duplicated rows
            continue
        seen.add(name)
        if name not in by_name:
            raise ZooFormatError(f"{metadata}, line {line}: checkpoint {name} is not under {root}")
        run = parse_checkpoint_name(name)
        out.append((by_name[name], run[0] if run else name, row["ckpt_epoch"], float(row[accuracy])))
    return out


def load_small_transformer_zoo(
    root: str | Path,
    *,
    metadata: str | Path | None = None,
    epoch: str | None = "75",
    cut_off: float = 0.0,
    heads: int = 2,
    seed: int = 3,
) -> Zoo:
    """Read Small Transformer Zoo checkpoints under ``root`` as a :class:`~nfkit.data.zoo_format.Zoo` (kind ``"transformer"``).

    Args:
        root: the unzipped folder (searched recursively for ``*.pt``; a shared ``embedding.pt`` is skipped).
        metadata: the zoo's metadata CSV; without it, epochs and accuracies come from the file names.
        epoch: keep checkpoints of this epoch (``"75"`` in the NFN protocol; ``None`` keeps all).
        cut_off: keep accuracies ≥ this.
        heads: attention heads (not recoverable from the weights).
        seed: the split shuffle's seed (3 in the reference).

    Returns a zoo with columns ``net_id``, ``run``, ``epoch``, ``test_accuracy``; splits 70/15/15.
    """
    root = Path(root)
    if not root.is_dir():
        raise ZooFormatError(f"{root} is not a folder; expected the unzipped zoo with {_LAYOUT}")
    if metadata is not None:
        rows = _rows_from_metadata(Path(metadata), root)
    else:
        rows = []
        for path in sorted(root.rglob("*.pt")):
            parsed = parse_checkpoint_name(path.name)
            if parsed is None:
                if path.name != "embedding.pt":
                    raise ZooFormatError(f"{path}: not a checkpoint name; expected {_LAYOUT}")
                continue
            rows.append((path, *parsed))
    rows = [r for r in rows if (epoch is None or r[2] == epoch) and r[3] >= cut_off]
    if not rows:
        raise ZooFormatError(f"no checkpoints of epoch {epoch!r} with accuracy ≥ {cut_off} under {root}")
    items = [features_from_zoo_state_dict(read_state_dict(path), heads, path) for path, *_ in rows]
    first = items[0].spec
    for (path, *_), item in zip(rows, items):
        if item.spec.shape_key != first.shape_key:
            raise ZooFormatError(f"{path} has architecture {item.spec.describe()}, unlike {rows[0][0].name} ({first.describe()})")
    order = list(range(len(rows)))
    random.Random(seed).shuffle(order)
    a, b = int(0.7 * len(order)), int(0.85 * len(order))
    splits = {"train": np.array(order[:a]), "val": np.array(order[a:b]), "test": np.array(order[b:])}
    table = {
        "net_id": np.arange(len(rows), dtype=np.float64),
        "run": np.array([r[1] for r in rows], dtype=object),
        "epoch": np.array([r[2] for r in rows], dtype=object),
        "test_accuracy": np.array([r[3] for r in rows]),
    }
    return Zoo("transformer", first, stack(items), table, splits, {"source": str(root), "heads": heads, "cut_off": cut_off})
