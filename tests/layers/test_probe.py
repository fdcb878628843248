"""Probe features: the networks' own outputs, so invariant to every weight symmetry."""

import pytest
import torch

import nfkit.models
from conftest import make_cnn, make_mlp
from nfkit.groups import permutations, positive_scalings, sign_flips
from nfkit.layers.probe import ProbeFeatures
from nfkit.nets import siren
from nfkit.spaces import spec_of, weights_of
from nfkit.spaces.features import stack
from nfkit.spaces.functional import evaluate_networks
from nfkit.testing import assert_invariant, assert_not_equivariant


@pytest.mark.parametrize("make, inputs", [
    (lambda: make_mlp("relu"), lambda: torch.randn(5, 3, dtype=torch.float64)),
    (lambda: make_cnn("tanh", padding=1), lambda: torch.randn(4, 1, 9, 9, dtype=torch.float64)),
    (lambda: siren(2, 8, 1).double(), lambda: torch.rand(6, 2, dtype=torch.float64) * 2 - 1),
])
def test_evaluating_features_is_running_the_networks(make, inputs):
    nets = [make().eval() for _ in range(3)]  # eval: the CNN has dropout
    x = inputs()
    out = evaluate_networks(stack([weights_of(n) for n in nets]), x)
    assert torch.allclose(out, torch.stack([n(x) for n in nets]), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("activation", ["relu", "tanh", "sine"])
def test_probe_features_are_invariant_to_the_whole_group_and_not_more(activation):
    spec = spec_of(make_mlp(activation))
    readout = ProbeFeatures(spec, probes=16).double()
    x = spec.randn(3, dtype=torch.float64)
    group = spec.symmetry_group()
    for g in (group, *group.factor_subgroups()):
        assert_invariant(readout, g, x)
    control = group.negative_control()
    assert control is not None
    assert_not_equivariant(readout, control, x)


def test_siren_renders_are_invariant_to_sign_flips_and_the_model_passes_its_check():
    spec = spec_of(siren(2, 8, 1))
    model = nfkit.models.invariant("probe", spec, 10, hidden_channels=[16])
    assert model.readout.grid == 28 and model.readout.num_outputs(1) == 784
    assert_invariant(model)
    assert_invariant(model, permutations(spec.hidden_sizes) * sign_flips(spec.hidden_sizes))
    assert_not_equivariant(model, permutations(spec.hidden_sizes) * positive_scalings(spec.hidden_sizes))


def test_a_bad_head_or_grid_is_refused():
    spec = spec_of(make_mlp("relu"))
    with pytest.raises(ValueError, match="2-D coordinates"):
        ProbeFeatures(spec, grid=8)
    with pytest.raises(ValueError, match="head must be"):
        nfkit.models.invariant("probe", spec, head="transformer")


def test_tasks_feed_probe_models_the_raw_weights(tmp_path):
    """Normalising a tensor changes the function it computes, so a model that evaluates networks gets them raw."""
    from nfkit.data.generators.inr_zoo import INRZooConfig, generate_inr_zoo
    from nfkit.data.zoo_format import load_zoo
    from nfkit.tasks import TASKS

    generate_inr_zoo(tmp_path / "z", INRZooConfig(size=10, steps=5, chunk=10), progress=False)
    zoo = load_zoo(tmp_path / "z")
    net, data = TASKS["inr-classification"]().setup(zoo, "probe", {"hidden_channels": [8]})
    x, _ = data["train"][0]
    assert torch.equal(x.flatten(), zoo.features[int(zoo.splits["train"][0])].flatten())
    _, normalised = TASKS["inr-classification"]().setup(zoo, "statnn", {})
    assert not torch.equal(normalised["train"][0][0].flatten(), x.flatten())


def test_cnn_probes_are_large_enough_for_the_convolutions():
    from nfkit.layers.probe import ProbeFeatures, smallest_input_size
    from nfkit.nets.architectures import small_cnn_zoo

    spec = spec_of(small_cnn_zoo())  # three 3×3 stride-2 convolutions without padding: 15 → 7 → 3 → 1
    assert smallest_input_size(spec) == 15
    model = nfkit.models.invariant("probe", spec, 1)  # an 8×8 probe used to fail inside conv2d
    assert model(spec.randn(2)).shape == (2, 1)
    assert ProbeFeatures(spec).inputs.shape[-2:] == (15, 15)
    assert ProbeFeatures(spec_of(make_cnn("relu"))).inputs.shape[-1] == 8  # small nets keep 8×8
    with pytest.raises(ValueError, match="too small for this CNN: its convolutions need images of at least 15×15"):
        nfkit.models.invariant("probe", spec, 1, input_size=8)
