"""UNFLinear / UNFPool: equivariance on derived weight spaces, NP's and HNP's function spaces on MLPs and
CNNs, the partition count and independence of the basis, and negative controls."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from nfkit.bench.measure import same_function_space
from nfkit.groups.neurons import permutations
from nfkit.layers import HNPLinear, NPLinear
from nfkit.layers.unf import UNFLinear, UNFPool
from nfkit.nets.architectures import EncoderClassifier
from nfkit.nets import LoRALinear, RecurrentClassifier, SmallResNet, mlp, small_cnn_zoo
from nfkit.spaces import NeuronSet, TensorAxis, TensorSpec, UniversalSpec, WeightSpaceSpec, spec_of, universal_spec_of
from nfkit.testing import assert_equivariant, assert_invariant, assert_not_equivariant

NETWORKS = {
    "mlp": lambda: mlp((3, 5, 4, 2)),
    "cnn": lambda: small_cnn_zoo(nn.ReLU, padding=1),
    "resnet": lambda: SmallResNet(width=3),
    "gru": lambda: RecurrentClassifier(7, 4, 3, "gru", embedding=3),
    "lstm": lambda: RecurrentClassifier(3, 4, 2, "lstm", tokens=False),
    "lora": lambda: nn.Sequential(LoRALinear(4, 5, rank=2), nn.ReLU(), nn.Linear(5, 2)),
    "encoder": lambda: EncoderClassifier(3, 4, 2, 6, 2),
}


@pytest.mark.parametrize("name", list(NETWORKS))
def test_equivariant_to_the_permutations_of_the_derived_space(name: str) -> None:
    torch.manual_seed(0)
    layer = UNFLinear(universal_spec_of(NETWORKS[name]()), 2, 3)
    assert_equivariant(layer)
    # a linear map built from means is not sign- or scale-equivariant: the larger group breaks it
    control = layer.group.negative_control()
    assert control is not None
    assert_not_equivariant(layer, control)


@pytest.mark.parametrize("name", list(NETWORKS))
def test_pool_is_invariant(name: str) -> None:
    pool = UNFPool(universal_spec_of(NETWORKS[name]()))
    pool.in_channels = 2  # type: ignore[assignment]  # what the checker draws inputs with
    assert_invariant(pool)
    out = pool(pool.spec.randn(3, 2))
    assert out.shape == (3, pool.num_outputs(2))


def test_untied_residual_permutation_breaks_equivariance() -> None:
    spec = universal_spec_of(SmallResNet(width=3))
    layer = UNFLinear(spec, 1, 2).double()
    untied = spec.untied()
    from nfkit.spaces import UniversalFeatures

    def on_untied(features: UniversalFeatures) -> UniversalFeatures:
        out = layer(UniversalFeatures(spec, features.named))
        assert isinstance(out, UniversalFeatures)
        return UniversalFeatures(untied, out.named)

    assert_not_equivariant(on_untied, untied.permutation_group(), untied.randn(2, 1))


def _tiny_cnn() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 2, 2), nn.ReLU(), nn.Conv2d(2, 3, 2), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(3, 2)
    )


@pytest.mark.parametrize(
    "spec",
    [WeightSpaceSpec.mlp([3, 5, 4, 2]), spec_of(_tiny_cnn())],
    ids=["mlp", "cnn"],
)
def test_spans_np_and_hnp(spec: WeightSpaceSpec) -> None:
    torch.manual_seed(0)
    features = spec.randn(2, 2, dtype=torch.float64)
    unf_np, np_layer = UNFLinear(spec, 2, 3, permute_io=True), NPLinear(spec, 2, 3)
    assert same_function_space(unf_np, np_layer, features) < 1e-10
    assert same_function_space(np_layer, unf_np, features) < 1e-10
    unf_hnp, hnp_layer = UNFLinear(spec, 2, 3, permute_io=False), HNPLinear(spec, 2, 3, folded="exact")
    assert same_function_space(unf_hnp, hnp_layer, features) < 1e-10
    assert same_function_space(hnp_layer, unf_hnp, features) < 1e-10
    # and the fixed-io layer is strictly larger than NP's
    assert same_function_space(np_layer, unf_hnp, features) > 1e-3


def _matrix_space(n: int = 5) -> UniversalSpec:
    h = NeuronSet("h", n)
    return UniversalSpec(
        (
            TensorSpec("M", (n, n), (TensorAxis("h", "out"), TensorAxis("h", "in")), "M"),
            TensorSpec("v", (n,), (TensorAxis("h", "out"),), "v"),
        ),
        (h,),
    )


def test_partition_count_and_independence() -> None:
    """Same set on two axes (a GRU's hidden-to-hidden matrix): Bell(4) = 15 maps M→M, Bell(3) = 5 each way
    between M and v, Bell(2) = 2 for v→v; plus the invariant tensors 1, I of M and 1 of v as constants.
    Every parameter moves the output independently (the basis is linearly independent)."""
    spec = _matrix_space()
    layer = UNFLinear(spec, 1, 1).double()
    assert layer.num_terms == 15 + 5 + 5 + 2
    assert sum(p.numel() for p in layer.parameters()) == 27 + 3
    from torch.func import functional_call, jacrev

    params = {k: v.detach() for k, v in layer.named_parameters()}
    x = spec.randn(8, 1, dtype=torch.float64, generator=torch.Generator().manual_seed(0))  # more samples than scalar terms
    jac = jacrev(lambda p: torch.cat([t.reshape(-1) for t in functional_call(layer, p, (x,)).tensors()]))(params)
    matrix = torch.cat([j.reshape(j.shape[0], -1) for j in jac.values()], dim=1)
    assert torch.linalg.matrix_rank(matrix).item() == 30
    assert_equivariant(layer)


def test_dense_features_round_trip_and_mismatch() -> None:
    spec = WeightSpaceSpec.mlp([2, 4, 1])
    layer = UNFLinear(spec, 1, 2)
    out = layer(spec.randn(3, 1))
    assert out.weights[0].shape == (3, 2, 4, 2)
    assert layer.group == permutations(spec.hidden_sizes) or layer.group.name == "permutations"
    with pytest.raises(Exception, match="channels"):
        layer(spec.randn(3, 2))
    with pytest.raises(ValueError, match="positive"):
        UNFLinear(spec, 0, 2)


def test_np_and_hnp_read_traced_networks_with_distinct_labels_only() -> None:
    import nfkit.models
    from nfkit.errors import UnsupportedArchitectureError

    resnet = universal_spec_of(NETWORKS["resnet"]())
    for name in ("np", "hnp"):
        model = nfkit.models.invariant(name, resnet, 1, hidden_channels=[3])
        assert_invariant(model)
    gru = universal_spec_of(NETWORKS["gru"]())
    with pytest.raises(UnsupportedArchitectureError, match="unf"):
        nfkit.models.invariant("np", gru, 1)
    with pytest.raises(UnsupportedArchitectureError, match="neither"):
        nfkit.models.invariant("hnp", resnet, 1, canonical=True)
