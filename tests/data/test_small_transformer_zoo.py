"""The Small Transformer Zoo loader, on fixtures written in exactly the published layout."""

from __future__ import annotations

import csv
import pickle

import pytest
import torch

from nfkit.data.published.small_cnn_zoo import ZooFormatError
from nfkit.data.published.small_transformer_zoo import load_small_transformer_zoo, parse_checkpoint_name
from nfkit.spaces import weights_of
from nfkit.nets.transformer import SmallTransformer


def _net(seed: int, d_model: int = 8) -> SmallTransformer:
    torch.manual_seed(seed)
    return SmallTransformer(d_model=d_model, heads=2, d_ff=16, blocks=2, patch=4, image=8)


def _write_zoo(root, runs: int = 8, text: bool = False):
    folder = root / "MNIST-Transformers" / "mnist"
    folder.mkdir(parents=True)
    rows, nets = [], {}
    for r in range(runs):
        for epoch in ("1", "75"):
            net = _net(100 * r + int(epoch))
            accuracy = round(0.1 + 0.1 * r + (0.05 if epoch == "75" else 0.0), 4)
            name = f"run{r}x_{epoch}_{int(accuracy * 10000)}.pt"
            state = net.state_dict()
            if text:  # AG-News checkpoints omit the (shared, frozen) embedding
                state = {k: v for k, v in state.items() if not k.startswith("embedding.")}
            torch.save(state, folder / name)
            nets[name] = net
            rows.append({"lr": 0.001, "ckpt_epoch": epoch, "ckpt_file": name, "test_top1_accuracy": accuracy})
    meta = root / "metadata" / "mnist.csv"
    meta.parent.mkdir()
    with meta.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows + rows[:1])  # a duplicated row, as in the real metadata
    return folder, meta, nets


def test_checkpoint_names():
    assert parse_checkpoint_name("ab_cd_75_9312.pt") == ("ab_cd", "75", 0.9312)
    assert parse_checkpoint_name("x1_best1_8000.pt") == ("x1", "best1", 0.8)
    assert parse_checkpoint_name("embedding.pt") is None


def test_loads_the_published_layout_with_the_nfn_protocol(tmp_path):
    folder, meta, nets = _write_zoo(tmp_path)
    for kwargs in ({"metadata": meta}, {}):
        zoo = load_small_transformer_zoo(tmp_path, **kwargs)
        assert len(zoo) == 8 and set(zoo.table["epoch"]) == {"75"}
        assert sorted(len(v) for v in zoo.splits.values()) == [1, 2, 5]
        assert zoo.spec.stream_permutable and zoo.spec.embedding is not None
        for i in range(len(zoo)):  # exactly the module's weights, in nfkit's layout
            name = f"{zoo.table['run'][i]}_75_{int(round(zoo.table['test_accuracy'][i] * 10000))}.pt"
            assert zoo.features[i].allclose(weights_of(nets[name]), rtol=0, atol=0)
    cut = load_small_transformer_zoo(tmp_path, metadata=meta, cut_off=0.5)
    assert (cut.table["test_accuracy"] >= 0.5).all() and len(cut) == 4
    assert len(load_small_transformer_zoo(tmp_path, epoch=None)) == 16


def test_text_checkpoints_without_embedding(tmp_path):
    _write_zoo(tmp_path, runs=3, text=True)
    zoo = load_small_transformer_zoo(tmp_path)
    assert zoo.spec.embedding is None and zoo.spec.head is not None


def test_bad_files_give_clear_errors(tmp_path):
    folder, meta, _ = _write_zoo(tmp_path, runs=3)
    victim = folder / "run1x_75_2500.pt"
    victim.write_bytes(victim.read_bytes()[:200])
    with pytest.raises(ZooFormatError, match="run1x_75_2500.pt is not a readable PyTorch file"):
        load_small_transformer_zoo(tmp_path)
    torch.save({"config": pickle.PickleError("not a tensor")}, victim)  # needs arbitrary unpickling
    with pytest.raises(ZooFormatError, match="run1x_75_2500.pt needs arbitrary unpickling"):
        load_small_transformer_zoo(tmp_path)
    torch.save(_net(0, d_model=12).state_dict(), victim)
    with pytest.raises(ZooFormatError, match="run1x_75_2500.pt has architecture"):
        load_small_transformer_zoo(tmp_path)
    state = _net(0).state_dict()
    state["encoder.0.norm1.weight"] = torch.ones(8)
    torch.save(state, victim)
    with pytest.raises(ZooFormatError, match="unexpected keys"):
        load_small_transformer_zoo(tmp_path)
    del state["encoder.0.norm1.weight"], state["encoder.1.fc2.bias"]
    torch.save(state, victim)
    with pytest.raises(ZooFormatError, match="no 'encoder.1.fc2.bias'"):
        load_small_transformer_zoo(tmp_path)
    victim.unlink()
    with pytest.raises(ZooFormatError, match="checkpoint run1x_75_2500.pt is not under"):
        load_small_transformer_zoo(tmp_path, metadata=meta)
    with pytest.raises(ZooFormatError, match="no checkpoints of epoch '50'"):
        load_small_transformer_zoo(tmp_path, epoch="50")
    (folder / "notes.pt").write_bytes(b"")
    with pytest.raises(ZooFormatError, match="notes.pt: not a checkpoint name"):
        load_small_transformer_zoo(tmp_path)
