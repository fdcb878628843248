"""Any zoo folder nfkit reads, detected and opened as one Zoo; nfkit train takes them directly."""

import json

import numpy as np
import pytest
import torch

from nfkit.cli import main
from nfkit.data.formats import detect_format, open_zoo
from nfkit.data.generators.cnn_zoo import CNNZooConfig, generate_cnn_zoo
from nfkit.errors import InvalidOptionError, ZooFormatError
from nfkit.groups import Factor
from nfkit.nets import siren, small_cnn_zoo

NFN_KEYS = ("net.0.linear", "net.1.linear", "net.2")


def _siren_state(names):
    net = siren()
    linears = [m for m in net if isinstance(m, torch.nn.Linear)]
    return {f"{n}.{k}": getattr(layer, k).detach().clone() for n, layer in zip(names, linears) for k in ("weight", "bias")}


@pytest.fixture
def nfn_folder(tmp_path):
    root = tmp_path / "siren_mnist_wts"
    for idx in range(30):
        folder = root / f"randinit_smaller_{idx % 3}s"
        folder.mkdir(parents=True, exist_ok=True)
        torch.save(_siren_state(NFN_KEYS), folder / f"net{idx}.pth")
    return root


def test_a_small_nfn_folder_gets_a_proportional_split_and_says_so(nfn_folder, capsys):
    assert detect_format(nfn_folder) == "nfn-sirens"
    zoo = open_zoo(nfn_folder)
    assert [len(zoo.splits[s]) for s in ("train", "val", "test")] == [21, 3, 6]  # not 30 train, 0, 0
    assert "proportional 70/10/20" in zoo.metadata["split"]
    assert main(["zoo", "info", str(nfn_folder)]) == 0
    out = capsys.readouterr().out
    assert "nfn-sirens format" in out and "proportional" in out


def test_nfkit_train_reads_an_nfn_folder_with_defaults(nfn_folder, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--task", "inr-classification", "--zoo", str(nfn_folder), "--model", "statnn",
                 "--out", str(out), "--epochs", "1"]) == 0
    printed = capsys.readouterr().out
    assert "proportional 70/10/20" in printed and "test_accuracy" in printed
    config = json.loads((out / "config.json").read_text())
    assert config["zoo_format"] == "nfn-sirens"
    assert main(["eval", "--run", str(out)]) == 0  # rebuilt from the recorded format


def test_a_small_cnn_zoo_folder_and_a_dws_file_are_detected(tmp_path):
    from test_small_cnn_zoo import write_zoo

    nets = [(small_cnn_zoo(), "relu", 86, 0.5 + 0.01 * k) for k in range(4)]
    write_zoo(tmp_path / "scz", nets)
    assert detect_format(tmp_path / "scz") == "small-cnn-zoo"
    zoo = open_zoo(tmp_path / "scz")
    assert zoo.metadata["format"] == "small-cnn-zoo" and len(zoo) == 4
    dws = tmp_path / "dws"
    (dws / "inrs").mkdir(parents=True)
    for k in range(3):
        torch.save(_siren_state(("seq.0", "seq.1", "seq.2")), dws / "inrs" / f"{k}.pth")
    table = {s: {"path": [f"inrs/{k}.pth"], "label": [k]} for k, s in enumerate(("train", "val", "test"))}
    (dws / "mnist_splits.json").write_text(json.dumps(table))
    assert detect_format(dws) == "dws" and detect_format(dws / "mnist_splits.json") == "dws"
    assert len(open_zoo(dws)) == 3


def test_detection_names_every_format_it_knows(tmp_path):
    (tmp_path / "random.txt").write_text("x")
    with pytest.raises(ZooFormatError, match="not a zoo nfkit reads"):
        detect_format(tmp_path)
    with pytest.raises(InvalidOptionError, match="unknown zoo format"):
        open_zoo(tmp_path, format="pickle")


def test_a_mixed_zoo_gives_its_relu_subset_with_the_relu_group(tmp_path, capsys):
    config = CNNZooConfig(size=12, chunk=6, epochs=1, checkpoints=(1,), activations=("relu", "tanh"), seed=2)
    generate_cnn_zoo(tmp_path / "mixed", config, progress=False)
    mixed = open_zoo(tmp_path / "mixed")
    assert mixed.spec.symmetry_group().factors == {Factor.PERMUTATION}
    relu = open_zoo(tmp_path / "mixed", activation="relu")
    assert set(relu.table["activation"]) == {"relu"} and 0 < len(relu) < len(mixed)
    assert Factor.POSITIVE_SCALING in relu.spec.symmetry_group().factors
    assert sorted(np.concatenate(list(relu.splits.values())).tolist()) == list(range(len(relu)))
    row = int(np.flatnonzero(mixed.table["activation"] == "relu")[0])
    assert torch.equal(relu.features[0].flatten(), mixed.features[row].flatten())
    # the README's case: monomial is refused on the mixed zoo and trains on its ReLU subset
    run = ["train", "--zoo", str(tmp_path / "mixed"), "--model", "monomial", "--epochs", "1"]
    assert main([*run, "--out", str(tmp_path / "r1")]) == 2
    assert "scaling or sign symmetry" in capsys.readouterr().err
    assert main([*run, "--out", str(tmp_path / "r2"), "--activation", "relu"]) == 0
    with pytest.raises(InvalidOptionError, match="no network"):
        open_zoo(tmp_path / "mixed", activation="gelu")
