import copy

import pytest
import torch
from torch import nn

from conftest import make_cnn, make_mlp
from nfkit.errors import NonFiniteWeightsError, SpecMismatchError, UnsupportedModuleError
from nfkit.spaces import (
    Sine,
    UniversalFeatures,
    UniversalSpec,
    from_state_dict,
    layer_parameters,
    load_into,
    spec_of,
    to_state_dict,
    universal_weights_of,
    weights_of,
)


def test_spec_of_a_cnn():
    net = nn.Sequential(
        nn.Conv2d(1, 16, 3, stride=2),
        nn.ReLU(),
        nn.Dropout(0.2),
        nn.Sequential(nn.Conv2d(16, 16, (3, 5), stride=2, padding=1, bias=False), nn.LeakyReLU(0.2)),
        nn.AdaptiveAvgPool2d((1, 1)),
        nn.Flatten(),
        nn.Linear(16, 10),
    )
    spec = spec_of(net)
    assert spec.describe() == "conv 1→16 3×3 +bias relu | conv 16→16 3×5 no-bias leaky_relu(0.2) | dense 16→10 +bias"
    assert spec.layers[1].name == "3.0" and spec.layers[1].padding == (1, 1) and spec.layers[1].stride == (2, 2)
    assert spec.layers[2].input_reduction == "global_avg_pool"


def test_spec_of_an_mlp_with_input_flatten_and_output_activation():
    net = nn.Sequential(nn.Flatten(), nn.Linear(784, 64), nn.ReLU(), nn.Linear(64, 10), nn.Sigmoid())
    spec = spec_of(net)
    assert spec.neuron_sizes == (784, 64, 10)
    assert str(spec.layers[-1].activation) == "sigmoid"


# outside the dense view: plain chains only, named with what the dense view supports
OUTSIDE_THE_DENSE_VIEW = [
    (nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 2)), "BatchNorm1d"),
    (nn.Sequential(nn.Conv2d(1, 4, 3), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(4, 2)), "MaxPool2d"),
    (nn.Sequential(nn.Conv1d(1, 4, 3)), "Conv1d"),
    (nn.Sequential(nn.Conv2d(4, 4, 3, groups=2), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2)), "grouped"),
    (nn.Sequential(nn.Conv2d(1, 4, 3), nn.Linear(4, 2)), "directly after a conv"),
    (nn.Sequential(nn.ReLU(), nn.Linear(4, 2)), "before the first layer"),
    (nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Tanh(), nn.Linear(4, 2)), "in a row"),
    (nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2), nn.Softmax(dim=-1)), "Softmax"),
    (nn.Sequential(nn.Conv2d(1, 4, 3), nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(16, 2)), "global average"),
    (nn.Sequential(nn.Conv2d(1, 4, 3)), "end in a Linear"),
    (nn.Linear(3, 4), "nn.Sequential"),
    (nn.Sequential(), "no Linear or Conv2d"),
]


@pytest.mark.parametrize("net, message", OUTSIDE_THE_DENSE_VIEW)
def test_what_the_dense_view_refuses_is_named(net, message):
    # layer_parameters (and so LearnedOptimizer) needs the dense view
    with pytest.raises(UnsupportedModuleError, match=message) as info:
        layer_parameters(net)
    assert "Supported:" in str(info.value)


@pytest.mark.parametrize("net, example", [
    (nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.ReLU(), nn.Linear(4, 2)), torch.randn(5, 3)),
    (nn.Sequential(nn.Conv2d(1, 4, 3), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(4, 2)), None),
    (nn.Sequential(nn.Conv1d(1, 4, 3), nn.ReLU(), nn.Conv1d(4, 2, 3)), None),
    (nn.Sequential(nn.ReLU(), nn.Linear(4, 2)), None),
    (nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Tanh(), nn.Linear(4, 2)), None),
    (nn.Sequential(nn.Conv2d(1, 4, 3), nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(16, 2)), None),
    (nn.Linear(3, 4), None),
    (nn.GRU(3, 5, batch_first=True), None),
], ids=["batchnorm", "maxpool", "conv1d", "activation-first", "two-activations", "pool-2x2", "one-linear", "gru"])
def test_other_networks_get_the_universal_view_and_round_trip(net, example):
    spec = spec_of(net, example)
    assert isinstance(spec, UniversalSpec)
    src = copy.deepcopy(net)
    for p in src.parameters():
        nn.init.normal_(p)
    f = weights_of(src, example)
    assert isinstance(f, UniversalFeatures) and f.spec == spec
    loaded = load_into(copy.deepcopy(net), f)
    for a, b in zip(src.state_dict().values(), loaded.state_dict().values()):
        assert torch.equal(a, b)
    with pytest.raises(SpecMismatchError, match="no parameter|entries"):
        load_into(make_mlp("relu"), f)
    with pytest.raises(SpecMismatchError, match="not an MLP/CNN chain"):
        load_into(net, weights_of(make_mlp("relu")))
    with pytest.raises(NonFiniteWeightsError):
        load_into(net, f.map(lambda t: t * float("nan")))


@pytest.mark.parametrize("net, message", [
    (nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 2)), "BatchNorm1d.*pass example="),
    (nn.Sequential(nn.Conv2d(4, 4, 3, groups=2), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2)), "Conv2d.*grouped"),
    (nn.Sequential(nn.Conv2d(1, 4, 3), nn.Linear(4, 2)), "Linear.*conv feature map"),
    (nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2), nn.Softmax(dim=-1)), "Softmax"),
    (nn.Sequential(), "no weights"),
])
def test_what_no_view_reads_is_refused_naming_the_layer(net, message):
    with pytest.raises(UnsupportedModuleError, match=message):
        spec_of(net)
    with pytest.raises(UnsupportedModuleError, match=message):
        weights_of(net)


def test_consecutive_layers_must_fit():
    with pytest.raises(SpecMismatchError, match="takes 5 inputs"):
        spec_of(nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(5, 2)))


@pytest.mark.parametrize("make", [lambda: make_mlp("tanh"), lambda: make_cnn("relu", bias=False), lambda: make_mlp("sine")])
def test_round_trip_is_exact(make):
    src, dst = make(), make()
    loaded = load_into(dst, weights_of(src))
    for a, b in zip(src.state_dict().values(), loaded.state_dict().values()):
        assert torch.equal(a, b)
    assert weights_of(loaded).allclose(weights_of(src), rtol=0, atol=0)


def test_load_into_picks_one_network_of_a_batch():
    net = make_mlp("relu")
    batch = weights_of(net).spec.randn(4, dtype=torch.float64)
    load_into(net, batch, index=2)
    assert weights_of(net).allclose(batch[2], rtol=0, atol=0)
    with pytest.raises(SpecMismatchError, match="pass index="):
        load_into(net, batch)


def test_load_into_rejects_mismatches():
    net = make_mlp("relu")
    spec = spec_of(net)
    with pytest.raises(SpecMismatchError, match="expected"):
        load_into(net, spec_of(make_mlp("relu", sizes=(3, 7, 5, 2))).randn(1, dtype=torch.float64))
    with pytest.raises(SpecMismatchError, match="one channel"):
        load_into(net, spec.randn(1, 2, dtype=torch.float64))
    bias_free = make_mlp("relu", bias=False)
    with pytest.raises(SpecMismatchError, match="no bias"):
        load_into(bias_free, spec_of(bias_free).randn(1, dtype=torch.float64) + 1.0)


def test_load_into_rejects_non_finite_weights_and_leaves_the_module_alone():
    net = make_mlp("relu")
    before = copy.deepcopy(net.state_dict())
    f = weights_of(net)
    bad = f.with_tensors([f.weights[0], f.weights[1] * float("nan"), f.weights[2]], f.biases)
    with pytest.raises(NonFiniteWeightsError, match="layer 2"):
        load_into(net, bad)
    for k, v in before.items():
        assert torch.equal(net.state_dict()[k], v)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
def test_weights_of_rejects_non_finite_parameters(value):
    net = make_mlp("relu")
    with torch.no_grad():
        net[2].bias[1] = value
    with pytest.raises(NonFiniteWeightsError, match=r"layer 2 \(2\) bias"):
        weights_of(net)


def test_state_dict_round_trip_with_custom_names():
    net = nn.Sequential(nn.Linear(2, 8), Sine(30.0), nn.Linear(8, 1, bias=False)).double()
    f = weights_of(net)
    sd = to_state_dict(f)
    assert set(sd) == {"0.weight", "0.bias", "2.weight"}
    renamed = {k.replace("0.", "net.0.linear.").replace("2.", "net.1."): v for k, v in sd.items()}
    g = from_state_dict(renamed, f.spec, names=["net.0.linear", "net.1"])
    assert g.allclose(f, rtol=0, atol=0)
    assert from_state_dict(net.state_dict(), f.spec).allclose(f, rtol=0, atol=0)


def test_from_state_dict_errors_name_the_key():
    net = make_mlp("relu")
    spec = spec_of(net)
    sd = net.state_dict()
    with pytest.raises(SpecMismatchError, match="'2.weight' has shape"):
        from_state_dict({**sd, "2.weight": torch.zeros(3, 3)}, spec)
    with pytest.raises(SpecMismatchError, match="no '4.bias'"):
        from_state_dict({k: v for k, v in sd.items() if k != "4.bias"}, spec)
    with pytest.raises(SpecMismatchError, match="2 '.weight' entries"):
        from_state_dict({k: v for k, v in sd.items() if not k.startswith("4")}, spec)
    with pytest.raises(NonFiniteWeightsError):
        from_state_dict({**sd, "0.bias": torch.full_like(sd["0.bias"], float("nan"))}, spec)
    with pytest.raises(SpecMismatchError, match="batch 1"):
        to_state_dict(spec.randn(2))


def test_universal_features_load_into_any_module_they_fit():
    src, dst = make_mlp("tanh"), make_mlp("tanh")
    loaded = load_into(dst, universal_weights_of(src))  # the traced description of a dense network
    assert weights_of(loaded).allclose(weights_of(src), rtol=0, atol=0)


def test_reading_a_network_with_an_example_leaves_it_untouched():
    net = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.ReLU(), nn.Linear(4, 2))
    before = copy.deepcopy(net.state_dict())
    spec_of(net, torch.randn(5, 3))
    weights_of(net, torch.randn(5, 3))
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
