"""DWS and NFN INR loaders, on fixtures written in exactly those formats."""

import json
from pathlib import Path

import pytest
import torch
from torch import nn

from nfkit.nets.architectures import siren
from nfkit.data import load_dws_inrs, load_nfn_sirens
from nfkit.data.published.small_cnn_zoo import ZooFormatError
from nfkit.groups import Factor
from nfkit.spaces import load_into

COORDS = torch.stack(torch.meshgrid(torch.linspace(-1, 1, 8), torch.linspace(-1, 1, 8), indexing="ij"), -1).view(-1, 2)


def _state(net: nn.Sequential, names: tuple[str, ...]) -> dict[str, torch.Tensor]:
    linears = [m for m in net if isinstance(m, nn.Linear)]
    out = {}
    for name, layer in zip(names, linears):
        out[f"{name}.weight"] = layer.weight.detach().clone()
        out[f"{name}.bias"] = layer.bias.detach().clone()
    return out


@pytest.fixture
def sirens() -> list[nn.Sequential]:
    return [siren() for _ in range(6)]


def test_dws_round_trip_renders_the_same_images(tmp_path, sirens):
    (tmp_path / "inrs").mkdir()
    for k, net in enumerate(sirens):
        torch.save(_state(net, ("seq.0", "seq.1", "seq.2")), tmp_path / "inrs" / f"{k}.pth")
    table = {
        split: {"path": [f"inrs/{k}.pth" for k in ks], "label": [k % 3 for k in ks]}
        for split, ks in {"train": [0, 1, 2], "val": [3], "test": [4, 5]}.items()
    }
    (tmp_path / "splits.json").write_text(json.dumps(table))
    data = load_dws_inrs(tmp_path / "splits.json")
    assert len(data) == 6 and data.column("label").long().tolist() == [0, 1, 2, 0, 1, 2]
    assert data.splits["test"].tolist() == [4, 5]
    assert data.spec.symmetry_group().factors == {Factor.PERMUTATION, Factor.SIGN_FLIP}
    for k, net in enumerate(sirens):
        twin = load_into(siren(), data.features, index=k)
        assert torch.allclose(twin(COORDS), net(COORDS), atol=1e-6)


def test_nfn_folders_order_by_index_and_skip_augmented_copies(tmp_path, sirens):
    for k, net in enumerate(sirens):
        folder = tmp_path / f"randinit_smaller_{k % 2}s"
        folder.mkdir(exist_ok=True)
        torch.save(_state(net, ("net.0.linear", "net.1.linear", "net.2")), folder / f"net{5 - k}.pth")
    decoy = tmp_path / "randinit_smaller_aug1_0s"
    decoy.mkdir()
    torch.save(_state(sirens[0], ("net.0.linear", "net.1.linear", "net.2")), decoy / "net99.pth")
    data = load_nfn_sirens(tmp_path, split_points=(3, 5))
    assert len(data) == 6 and [Path(p).name for p in data.table["path"]] == [f"net{i}.pth" for i in range(6)]
    assert data.column("label").long().tolist() == [(5 - i) % 2 for i in range(6)]
    assert [len(data.splits[s]) for s in ("train", "val", "test")] == [3, 2, 1]
    twin = load_into(siren(), data.features, index=0)  # net0 is sirens[5]
    assert torch.allclose(twin(COORDS), sirens[5](COORDS), atol=1e-6)


def test_untrusted_and_broken_files_are_refused_by_name(tmp_path, sirens):
    folder = tmp_path / "randinit_smaller_1s"
    folder.mkdir()
    good = _state(sirens[0], ("net.0.linear", "net.1.linear", "net.2"))
    torch.save(good, folder / "net0.pth")
    torch.save(sirens[1], folder / "net1.pth")  # a pickled module, not a state dict
    with pytest.raises(ZooFormatError, match=r"net1.pth needs arbitrary unpickling"):
        load_nfn_sirens(tmp_path)
    raw = (folder / "net0.pth").read_bytes()
    (folder / "net1.pth").write_bytes(raw[: len(raw) // 3])
    with pytest.raises(ZooFormatError, match=r"net1.pth is not a readable PyTorch file"):
        load_nfn_sirens(tmp_path)
    torch.save({**good, "net.2.weight": torch.zeros(3, 32)}, folder / "net1.pth")
    with pytest.raises(ZooFormatError, match=r"net1.pth: 'net.2.weight' has shape \(3, 32\)"):
        load_nfn_sirens(tmp_path)
    with pytest.raises(ZooFormatError, match="no other_<label>s"):
        load_nfn_sirens(tmp_path, prefix="other")
    (tmp_path / "splits.json").write_text("{not json")
    with pytest.raises(ZooFormatError, match="not valid JSON"):
        load_dws_inrs(tmp_path / "splits.json")
    (tmp_path / "splits.json").write_text(json.dumps({"train": {"path": ["a.pth"], "label": []}}))
    with pytest.raises(ZooFormatError, match="equal lengths"):
        load_dws_inrs(tmp_path / "splits.json")
