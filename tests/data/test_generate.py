"""CNN zoo generation: format, round trip, determinism, resuming, sharding, overwrite protection."""

import json
import shutil

import numpy as np
import pytest
import torch

from nfkit.cli import main
from nfkit.data.generators.cnn_zoo import CNNZooConfig, generate_cnn_zoo
from nfkit.data.generators.sources import load_digits
from nfkit.data.zoo_format import ZooFormatError, load_zoo
from nfkit.spaces import load_into, module_from_spec, spec_of

SMALL = CNNZooConfig(size=12, chunk=5, epochs=2, checkpoints=(1, 2), seed=3)


@pytest.fixture(scope="module")
def zoo_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("zoos") / "cnn"
    assert generate_cnn_zoo(out, SMALL, progress=False) == out
    return out


def test_format_and_labels(zoo_dir):
    manifest = json.loads((zoo_dir / "manifest.json").read_text())
    assert manifest["format"] == "nfkit-zoo" and manifest["version"] == 1 and manifest["rows"] == 24
    zoo = load_zoo(zoo_dir)
    assert len(zoo) == 24 and zoo.spec.num_parameters == 4970
    assert sorted(set(zoo.table["epoch"])) == [1.0, 2.0]
    for column in ("activation", "optimizer", "learning_rate", "init_scale", "dropout", "weight_decay",
                   "train_fraction", "test_accuracy", "test_loss", "train_accuracy", "train_loss"):
        assert column in zoo.table
    nets_in = {s: set(zoo.table["net_id"][idx].astype(int)) for s, idx in zoo.splits.items()}
    assert not (nets_in["train"] & nets_in["test"]) and not (nets_in["train"] & nets_in["val"])
    assert sum(len(v) for v in zoo.splits.values()) == 24
    assert len(manifest["metadata"]["normalization"]["scales"]) == 8


def test_every_stored_net_reproduces_its_recorded_test_accuracy(zoo_dir):
    zoo = load_zoo(zoo_dir)
    data = load_digits()
    for row in range(len(zoo)):
        net = module_from_spec(spec_of(_cnn(zoo.table["activation"][row])))  # a fresh module of that net's kind
        load_into(net, zoo.features, index=row)
        with torch.no_grad():
            accuracy = (net(data.test_images).argmax(dim=1) == data.test_labels).double().mean().item()
        assert abs(accuracy - zoo.table["test_accuracy"][row]) <= 1.5 / len(data.test_labels)


def _cnn(activation):
    from torch import nn

    from nfkit.nets.architectures import small_cnn_zoo

    return small_cnn_zoo(nn.ReLU if activation == "relu" else nn.Tanh, padding=1)


def test_same_seed_same_zoo_and_sharding_gives_the_same_zoo(tmp_path, zoo_dir):
    assert generate_cnn_zoo(tmp_path / "a", SMALL, shard=(0, 2), progress=False) is None
    assert not (tmp_path / "a").exists()
    assert generate_cnn_zoo(tmp_path / "a", SMALL, shard=(1, 2), progress=False) == tmp_path / "a"
    a, b = load_zoo(tmp_path / "a"), load_zoo(zoo_dir)
    assert a.features.allclose(b.features, rtol=0, atol=0)
    assert np.array_equal(a.table["test_accuracy"], b.table["test_accuracy"])


def test_worker_processes_give_the_same_zoo(tmp_path, zoo_dir):
    assert generate_cnn_zoo(tmp_path / "w", SMALL, workers=2, progress=False) == tmp_path / "w"
    assert load_zoo(tmp_path / "w").features.allclose(load_zoo(zoo_dir).features, rtol=0, atol=0)


def test_a_killed_run_resumes_and_recomputes_broken_chunks(tmp_path, zoo_dir):
    out = tmp_path / "z"
    generate_cnn_zoo(out, SMALL, shard=(0, 3), progress=False)  # chunk 0 only, as if killed afterwards
    work = tmp_path / "z.chunks"
    assert (work / "chunk_00000.npz").exists() and not out.exists()
    (work / "chunk_00001.npz").write_bytes(b"half a file")  # a chunk interrupted mid-write
    assert generate_cnn_zoo(out, SMALL, progress=False) == out
    assert not work.exists()
    assert load_zoo(out).features.allclose(load_zoo(zoo_dir).features, rtol=0, atol=0)


def test_other_settings_do_not_mix_with_leftover_chunks(tmp_path):
    generate_cnn_zoo(tmp_path / "z", SMALL, shard=(0, 3), progress=False)
    with pytest.raises(ValueError, match="other settings"):
        generate_cnn_zoo(tmp_path / "z", CNNZooConfig(size=12, chunk=5, epochs=2, checkpoints=(1, 2), seed=4), progress=False)


def test_existing_zoos_are_never_overwritten_silently(tmp_path, zoo_dir):
    out = tmp_path / "z"
    shutil.copytree(zoo_dir, out)
    with pytest.raises(FileExistsError, match="overwrite"):
        generate_cnn_zoo(out, SMALL, progress=False)
    assert main(["zoo", "generate", "cnn", "--out", str(out), "--size", "4"]) == 2
    assert load_zoo(out).features.allclose(load_zoo(zoo_dir).features, rtol=0, atol=0)


def test_corrupt_zoos_are_detected(tmp_path, zoo_dir):
    out = tmp_path / "z"
    shutil.copytree(zoo_dir, out)
    raw = bytearray((out / "weights.npy").read_bytes())
    raw[-5] ^= 0xFF
    (out / "weights.npy").write_bytes(bytes(raw))
    with pytest.raises(ZooFormatError, match="checksum"):
        load_zoo(out)
    (out / "manifest.json").unlink()
    with pytest.raises(ZooFormatError, match="manifest.json is missing"):
        load_zoo(out)


def test_cli_generate_and_info(tmp_path, capsys):
    out = tmp_path / "z"
    assert main(["zoo", "generate", "cnn", "--out", str(out), "--size", "6", "--chunk", "6", "--epochs", "1",
                 "--activations", "relu"]) == 0
    assert main(["zoo", "info", str(out)]) == 0
    text = capsys.readouterr().out
    assert "cnn zoo (nfkit format), 6 rows" in text and "relu" in text and "test_accuracy" in text


def test_a_zoo_schedule_is_checked():
    from nfkit.data.generators.runner import checked_schedule

    assert checked_schedule(4, 2, 3, (3, 1, 3)) == (1, 3)
    with pytest.raises(ValueError, match="must be a positive integer"):
        checked_schedule(0, 2, 3, (1,))
    with pytest.raises(ValueError, match=r"must be epochs in 1\.\.3"):
        checked_schedule(4, 2, 3, (1, 4))
    with pytest.raises(ValueError, match="must be epochs"):
        checked_schedule(4, 2, 3, ())
