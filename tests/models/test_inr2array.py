"""Inr2Array: an invariant latent array, pretraining by reconstruction, classification through run_task."""

import pytest
import torch

import nfkit.models as models
from nfkit.data.generators.inr_zoo import INRZooConfig, generate_inr_zoo
from nfkit.groups import permutations, sign_flips
from nfkit.tasks.runs import run_task
from nfkit.spaces import WeightSpaceSpec
from nfkit.testing import assert_not_equivariant
from nfkit.tasks.loop import TrainConfig
from nfkit.tasks.pretraining import pretrain


def test_the_latent_array_is_invariant_to_hidden_permutations():
    spec = WeightSpaceSpec.mlp([2, 8, 8, 1], "sine")
    model = models.invariant("inr2array", spec, 10, hidden_channels=[8], latents=4).double().eval()
    x = spec.randn(3, dtype=torch.float64)
    g = permutations(spec.hidden_sizes).sample(torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.allclose(model.latent(g.act(x)), model.latent(x), atol=1e-12)
    # the NFT encoder is not sign-equivariant, so neither is the latent: a negative control
    assert_not_equivariant(model, permutations(spec.hidden_sizes) * sign_flips(spec.hidden_sizes))


def test_pretraining_reduces_reconstruction_error_and_classification_runs(tmp_path):
    zoo = tmp_path / "inr"
    generate_inr_zoo(zoo, INRZooConfig(size=40, chunk=40, steps=60, shared_init=True), progress=False)
    options = {"hidden_channels": [8], "latents": 4, "pretrain_epochs": 6}
    metrics = run_task("inr-classification", zoo, "inr2array", tmp_path / "run", options=options,
                       train=TrainConfig(epochs=2, batch_size=8), progress=None)
    assert isinstance(metrics["pretrain_val_mse"], float) and metrics["pretrain_val_mse"] < 1.0
    assert 0.0 <= metrics["test_accuracy"] <= 1.0


def test_pretraining_is_skipped_visibly_on_weight_spaces_that_do_not_render():
    model = models.invariant("inr2array", WeightSpaceSpec.mlp([3, 4, 2]), hidden_channels=[8], latents=2)
    record = pretrain(model, None, None, TrainConfig())  # type: ignore[arg-type]
    assert record["pretraining"].startswith("skipped")


def test_it_has_no_equivariant_form():
    with pytest.raises(ValueError, match="no equivariant form"):
        models.equivariant("inr2array", WeightSpaceSpec.mlp([2, 4, 1]))
