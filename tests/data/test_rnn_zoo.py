"""GRU zoo generation: the batched GRU is nn.GRU, stored nets reproduce their accuracies, the universal
spec round-trips through the zoo format, determinism, and generalization prediction runs on it."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from nfkit.cli import main
from nfkit.data.generators.rnn_zoo import RNNZooConfig, _init, generate_rnn_zoo, gru_logits, rnn_zoo_network
from nfkit.data.generators.sources import load_digits
from nfkit.data.zoo_format import load_zoo
from nfkit.errors import InvalidOptionError
from nfkit.spaces import UniversalSpec, universal_load_into

SMALL = RNNZooConfig(size=12, chunk=6, epochs=2, checkpoints=(1, 2), dataset="digits", hidden=5, seed=1)


@pytest.fixture(scope="module")
def zoo_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("zoos") / "rnn"
    assert generate_rnn_zoo(out, SMALL, progress=False) == out
    return out


def test_batched_gru_is_nn_gru() -> None:
    params = _init(3, 8, 5, torch.full((3,), 2.0), torch.Generator().manual_seed(0))
    x = torch.randn(3, 4, 8, 8)
    logits = gru_logits(params, x)
    for k in range(3):
        net = rnn_zoo_network(SMALL)
        with torch.no_grad():
            net.recurrent.weight_ih_l0.copy_(params[0][k])
            net.recurrent.weight_hh_l0.copy_(params[1][k])
            net.recurrent.bias_ih_l0.copy_(params[2][k])
            net.recurrent.bias_hh_l0.copy_(params[3][k])
            net.readout.weight.copy_(params[4][k])
            net.readout.bias.copy_(params[5][k])
            assert torch.allclose(net(x[k]), logits[k], atol=1e-5)


def test_format_spec_and_recorded_accuracies(zoo_dir) -> None:
    manifest = json.loads((zoo_dir / "manifest.json").read_text())
    assert manifest["kind"] == "rnn" and manifest["rows"] == 24 and manifest["spec"]["type"] == "universal"
    zoo = load_zoo(zoo_dir)
    assert isinstance(zoo.spec, UniversalSpec)
    assert zoo.spec.neuron_set("recurrent.hidden0").factors == frozenset({"sign"})
    data = load_digits()
    for row in range(len(zoo)):
        net = universal_load_into(rnn_zoo_network(SMALL), zoo.features, index=row)
        with torch.no_grad():
            accuracy = (net(data.test_images[:, 0]).argmax(dim=1) == data.test_labels).double().mean().item()
        assert abs(accuracy - zoo.table["test_accuracy"][row]) <= 1.5 / len(data.test_labels)


def test_same_seed_same_zoo(tmp_path, zoo_dir) -> None:
    assert generate_rnn_zoo(tmp_path / "again", SMALL, progress=False, workers=1) == tmp_path / "again"
    a, b = load_zoo(zoo_dir), load_zoo(tmp_path / "again")
    assert np.array_equal(a.features.flatten().numpy(), b.features.flatten().numpy())


def test_generalization_prediction_runs_on_it(tmp_path, zoo_dir, capsys) -> None:
    for model in ("unf", "statnn"):
        out = tmp_path / model
        assert main(["train", "--zoo", str(zoo_dir), "--model", model, "--out", str(out), "--epochs", "1",
                     "--hidden-channels", "4", "4"]) == 0
        metrics = json.loads((out / "metrics.json").read_text())
        assert "test_kendall_tau" in metrics


def test_bad_settings_are_refused() -> None:
    with pytest.raises(InvalidOptionError):
        RNNZooConfig(size=0)
    with pytest.raises(InvalidOptionError):
        RNNZooConfig(dataset="topics")
