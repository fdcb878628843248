"""Transformer zoo generation: labels, round trip into real modules, determinism, resuming, the task on it."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from nfkit.cli import main
from nfkit.data.generators.runner import generate_zoo
from nfkit.data.generators.sources import load_digits, topic_mixture_text
from nfkit.data.generators.transformer_zoo import TransformerRecipe, TransformerZooConfig, generate_transformer_zoo, zoo_network
from nfkit.data.zoo_format import load_zoo
from nfkit.groups.transformer import TransformerFactor
from nfkit.tasks.runs import run_task
from nfkit.spaces import TransformerSpec, spec_of, weights_of
from nfkit.tasks.loop import TrainConfig

SMALL = TransformerZooConfig(size=10, chunk=5, epochs=2, checkpoints=(1, 2), seed=1)


@pytest.fixture(scope="module")
def zoo_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("transformers") / "zoo"
    generate_transformer_zoo(out, SMALL, progress=False)
    return out


def test_format_labels_and_symmetry(zoo_dir):
    zoo = load_zoo(zoo_dir)
    assert zoo.kind == "transformer" and len(zoo) == 20 and isinstance(zoo.spec, TransformerSpec)
    assert zoo.spec.stream_permutable  # like the published zoo: no residuals, plain norms
    assert TransformerFactor.STREAM_PERMUTATION in zoo.spec.symmetry_group().factors
    assert set(zoo.table["optimizer"]) <= {"adamw", "sgd"} and set(zoo.table["epoch"]) == {1.0, 2.0}
    assert ((zoo.table["test_accuracy"] >= 0) & (zoo.table["test_accuracy"] <= 1)).all()
    nets = {s: set(zoo.table["net_id"][idx]) for s, idx in zoo.splits.items()}
    assert not (nets["train"] & nets["test"]) and sum(len(v) for v in zoo.splits.values()) == 20


def test_every_stored_net_reproduces_its_recorded_test_accuracy(zoo_dir):
    zoo = load_zoo(zoo_dir)
    data = load_digits()
    for row in range(len(zoo)):
        net = zoo_network(zoo, row)
        assert weights_of(net).allclose(zoo.features[row], rtol=0, atol=0)
        with torch.no_grad():
            accuracy = (net(data.test_images).argmax(-1) == data.test_labels).double().mean().item()
        assert accuracy == pytest.approx(zoo.table["test_accuracy"][row], abs=1.5 / len(data.test_labels))


def test_same_seed_same_zoo_and_shards_merge_to_it(tmp_path, zoo_dir):
    first = load_zoo(zoo_dir)
    out = tmp_path / "sharded"
    assert generate_zoo(out, TransformerRecipe(SMALL), shard=(1, 2), progress=False) is None  # killed after one shard
    assert generate_zoo(out, TransformerRecipe(SMALL), shard=(0, 2), progress=False) == out  # resumed: merges
    again = load_zoo(out)
    assert again.features.allclose(first.features, rtol=0, atol=0)
    assert np.array_equal(again.table["test_accuracy"], first.table["test_accuracy"])


def test_text_transformers_on_the_synthetic_corpus(tmp_path):
    corpus = topic_mixture_text()
    assert corpus.train_tokens.shape[1] == 16 and int(corpus.train_tokens.max()) < corpus.vocab
    config = TransformerZooConfig(size=3, chunk=3, epochs=1, checkpoints=(1,), dataset="topics")
    zoo = load_zoo(generate_transformer_zoo(tmp_path / "text", config, progress=False))
    assert zoo.spec.embedding.layers[0].n_in == 64 and not zoo.spec.embedding.layers[0].bias
    assert spec_of(zoo_network(zoo, 0)).shape_key == zoo.spec.shape_key


def test_generalization_task_runs_on_a_transformer_zoo(zoo_dir, tmp_path):
    for model in ("transformer-nfn", "mlp", "statnn"):
        metrics = run_task("generalization", zoo_dir, model, tmp_path / model, options={"hidden_channels": [4]},
                           train=TrainConfig(epochs=1, batch_size=4))
        assert np.isfinite(metrics["test_kendall_tau"])
        assert "rescaled_test_kendall_tau" in metrics  # the test nets moved by GL(d_k) × GL(d_v)
        if model == "transformer-nfn":  # it respects GL: the moved nets get the same predictions
            assert metrics["rescaled_test_mse"] == pytest.approx(metrics["test_mse"], rel=1e-4)


def test_cli_train_passes_model_options(zoo_dir, tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["train", "--zoo", str(zoo_dir), "--model", "transformer-nfn", "--out", str(out), "--epochs", "1",
            "--option", "statistics=true", "--option", "head_hidden=[8]", "--option", "flat_embedding=false"]
    assert main(argv) == 0
    options = json.loads((out / "config.json").read_text())["options"]
    assert options == {"statistics": True, "head_hidden": [8], "flat_embedding": False}
    assert main(["train", "--zoo", str(zoo_dir), "--model", "statnn", "--out", str(tmp_path / "bad"), "--option", "x"]) == 2
    assert "KEY=VALUE" in capsys.readouterr().err
    assert main(["train", "--zoo", str(zoo_dir), "--model", "statnn", "--out", str(tmp_path / "bad"), "--option", "nope=1"]) == 2
    assert "nope" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()  # a model that cannot be built leaves no run folder behind
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    assert main(argv[:-6] + ["--option", "nope=1", "--overwrite"]) == 2  # nor replaces an earlier run
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before
    both = ["--hidden-channels", "4", "--option", "hidden_channels=[8]"]
    assert main(["train", "--zoo", str(zoo_dir), "--model", "transformer-nfn", "--out", str(tmp_path / "b"), *both]) == 2
    assert "given twice" in capsys.readouterr().err


def test_cli_generate(tmp_path, capsys):
    out = tmp_path / "cli"
    assert main(["zoo", "generate", "transformer", "--out", str(out), "--size", "2", "--epochs", "1", "--workers", "1"]) == 0
    assert load_zoo(out).kind == "transformer"
    assert main(["zoo", "generate", "transformer", "--out", str(out), "--size", "2"]) == 2
    assert "exists" in capsys.readouterr().err
