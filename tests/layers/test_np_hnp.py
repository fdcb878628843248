"""NP and HNP against direct, loop-based implementations of the paper's equations."""

import functools
import itertools

import pytest
import torch
from torch import nn

from conftest import make_cnn
from nfkit.groups import permutations, positive_scalings
from nfkit.layers import HNPLinear, HNPPool, NPLinear, NPPool
from nfkit.spaces import WeightSpaceFeatures, WeightSpaceSpec, spec_of
from nfkit.testing import assert_equivariant, assert_invariant, assert_not_equivariant

C_IN, C_OUT = 2, 3


def _mean(values):
    values = list(values)
    return sum(values) / len(values)


def _np_reference(layer: NPLinear, x: WeightSpaceFeatures) -> WeightSpaceFeatures:
    """Zhou et al. 2023, Eq. 2 (weights) and App. B (biases), entry by entry, for an MLP."""
    L = x.spec.num_layers
    W = {i: x.weights[i - 1][0] for i in range(1, L + 1)}  # (C, n_i, n_{i-1})
    b = {i: x.biases[i - 1][0] for i in range(1, L + 1)}
    A = layer.coefficient

    def mix(out, inp, kept, vector):  # Σ_c A[c', c] v[c]
        return A(out, inp, kept) @ vector

    def global_terms(out):
        total = layer.constant(out).clone()
        for s in range(1, L + 1):
            total += mix(out, f"W{s}", (), W[s].mean(dim=(1, 2)))
            total += mix(out, f"b{s}", (), b[s].mean(dim=1))
        return total

    new_w, new_b = [], []
    for i in range(1, L + 1):
        n_i, n_prev = W[i].shape[1:]
        out = torch.zeros(C_OUT, n_i, n_prev, dtype=torch.float64)
        g = global_terms(f"W{i}")
        for j, k in itertools.product(range(n_i), range(n_prev)):
            v = g + mix(f"W{i}", f"W{i}", (i, i - 1), W[i][:, j, k])
            v = v + mix(f"W{i}", f"W{i}", (i - 1,), _mean(W[i][:, r, k] for r in range(n_i)))  # W_★k
            v = v + mix(f"W{i}", f"W{i}", (i,), _mean(W[i][:, j, s] for s in range(n_prev)))  # W_j★
            v = v + mix(f"W{i}", f"b{i}", (i,), b[i][:, j])
            if i > 1:
                v = v + mix(f"W{i}", f"W{i - 1}", (i - 1,), _mean(W[i - 1][:, k, s] for s in range(W[i - 1].shape[2])))
                v = v + mix(f"W{i}", f"b{i - 1}", (i - 1,), b[i - 1][:, k])
            if i < L:
                v = v + mix(f"W{i}", f"W{i + 1}", (i,), _mean(W[i + 1][:, r, j] for r in range(W[i + 1].shape[1])))
            out[:, j, k] = v
        new_w.append(out[None])
        out_b = torch.zeros(C_OUT, n_i, dtype=torch.float64)
        g = global_terms(f"b{i}")
        for j in range(n_i):
            v = g + mix(f"b{i}", f"b{i}", (i,), b[i][:, j])
            v = v + mix(f"b{i}", f"W{i}", (i,), _mean(W[i][:, j, s] for s in range(n_prev)))
            if i < L:
                v = v + mix(f"b{i}", f"W{i + 1}", (i,), _mean(W[i + 1][:, r, j] for r in range(W[i + 1].shape[1])))
            out_b[:, j] = v
        new_b.append(out_b[None])
    return x.with_tensors(new_w, new_b)


def _hnp_reference(layer: HNPLinear, x: WeightSpaceFeatures) -> WeightSpaceFeatures:
    """Zhou et al. 2023, Sec. 3.2, for a 3-layer MLP: input index q and output index p are channels."""
    W1, W2, W3 = (w[0] for w in x.weights)  # (C, n1, n0), (C, n2, n1), (C, n3, n2)
    b1, b2, b3 = (v[0] for v in x.biases)
    n0, n1, n2, n3 = W1.shape[2], W1.shape[1], W2.shape[1], W3.shape[1]
    A = layer.coefficient
    # fixed indices folded into channels, channel-major: index c·n + q
    row1 = lambda j: W1[:, j, :].reshape(-1)  # noqa: E731  W⁽¹⁾_{j,:}
    col3 = lambda k: W3[:, :, k].reshape(-1)  # noqa: E731  W⁽³⁾_{:,k}
    means = {
        "W1": W1.mean(dim=1).reshape(-1),  # W⁽¹⁾_★: (keeps the n0 inputs)
        "b1": b1.mean(dim=1),
        "W2": W2.mean(dim=(1, 2)),
        "b2": b2.mean(dim=1),
        "W3": W3.mean(dim=2).reshape(-1),  # W⁽³⁾_:★ (keeps the n3 outputs)
        "b3": b3.reshape(-1),
    }

    def glob(out):
        return layer.constant(out) + sum(A(out, name, ()) @ v for name, v in means.items())

    w1 = torch.zeros(C_OUT * n0, n1, dtype=torch.float64)
    for j in range(n1):
        w1[:, j] = (
            glob("W1")
            + A("W1", "W1", (1,)) @ row1(j)
            + A("W1", "b1", (1,)) @ b1[:, j]
            + A("W1", "W2", (1,)) @ W2[:, :, j].mean(dim=1)
        )
    bb1 = torch.stack(
        [
            glob("b1") + A("b1", "W1", (1,)) @ row1(j) + A("b1", "b1", (1,)) @ b1[:, j] + A("b1", "W2", (1,)) @ W2[:, :, j].mean(dim=1)
            for j in range(n1)
        ],
        dim=1,
    )
    w2 = torch.zeros(C_OUT, n2, n1, dtype=torch.float64)
    for j, k in itertools.product(range(n2), range(n1)):
        w2[:, j, k] = (
            glob("W2")
            + A("W2", "W2", (2, 1)) @ W2[:, j, k]
            + A("W2", "W1", (1,)) @ row1(k)
            + A("W2", "b1", (1,)) @ b1[:, k]
            + A("W2", "W2", (1,)) @ W2[:, :, k].mean(dim=1)
            + A("W2", "W2", (2,)) @ W2[:, j, :].mean(dim=1)
            + A("W2", "b2", (2,)) @ b2[:, j]
            + A("W2", "W3", (2,)) @ col3(j)
        )
    bb2 = torch.stack(
        [
            glob("b2") + A("b2", "W2", (2,)) @ W2[:, j, :].mean(dim=1) + A("b2", "b2", (2,)) @ b2[:, j] + A("b2", "W3", (2,)) @ col3(j)
            for j in range(n2)
        ],
        dim=1,
    )
    w3 = torch.zeros(C_OUT * n3, n2, dtype=torch.float64)
    for k in range(n2):
        w3[:, k] = (
            glob("W3")
            + A("W3", "W3", (2,)) @ col3(k)
            + A("W3", "b2", (2,)) @ b2[:, k]  # the term the reference code leaves out
            + A("W3", "W2", (2,)) @ W2[:, k, :].mean(dim=1)
        )
    bb3 = glob("b3")
    return x.with_tensors(
        [w1.reshape(C_OUT, n0, n1).permute(0, 2, 1)[None], w2[None], w3.reshape(C_OUT, n3, n2)[None]],
        [bb1[None], bb2[None], bb3.reshape(C_OUT, n3)[None]],
    )


@pytest.mark.parametrize("sizes", [(3, 4, 5, 2), (2, 3, 2), (4, 2)])
def test_np_equals_the_loop_reference(sizes):
    spec = WeightSpaceSpec.mlp(list(sizes))
    layer = NPLinear(spec, C_IN, C_OUT).double()
    x = spec.randn(1, C_IN, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert layer(x).allclose(_np_reference(layer, x), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("folded", ["exact", "factorised"])
def test_hnp_equals_the_loop_reference(folded):
    # factorised: the same equations with the blocks that touch a folded axis materialised from their factors
    spec = WeightSpaceSpec.mlp([3, 4, 5, 2])
    layer = HNPLinear(spec, C_IN, C_OUT, folded=folded).double()
    x = spec.randn(1, C_IN, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert layer(x).allclose(_hnp_reference(layer, x), rtol=1e-12, atol=1e-12)


def test_parameter_counts():
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    for c_in, c_out in [(1, 1), (4, 4), (32, 32), (3, 7)]:
        spec = WeightSpaceSpec.mlp([2, 32, 32, 1])
        # NP: (4L² + 10L − 4)·C·C' coefficients (L = 3: 62) and one constant per output tensor
        assert count(NPLinear(spec, c_in, c_out)) == 62 * c_in * c_out + 6 * c_out
    # the same count for any widths, and with kernels the channels grow by the kernel size
    cnn = spec_of(make_cnn("relu"))
    assert count(NPPool(cnn)) == 0 and NPPool(cnn).num_outputs(1) == 9 + 1 + 9 + 1 + 1 + 1
    assert HNPPool(cnn).num_outputs(1) == (1 * 9 + 1) + (9 + 1) + (3 * 1 + 3)


@pytest.mark.parametrize("layer_cls", [NPLinear, HNPLinear, functools.partial(HNPLinear, folded="factorised")])
@pytest.mark.parametrize("net", ["mlp", "cnn", "single-layer"])
def test_equivariance_and_negative_control(layer_cls, net):
    spec = {
        "mlp": WeightSpaceSpec.mlp([3, 4, 5, 2]),
        "cnn": spec_of(make_cnn("tanh")),
        "single-layer": WeightSpaceSpec.mlp([3, 2]),
    }[net]
    layer = layer_cls(spec, C_IN, C_OUT)
    group = permutations(spec.hidden_sizes)
    x = spec.randn(2, C_IN)
    assert_equivariant(layer, group, x)
    if spec.hidden_sizes:
        assert_not_equivariant(layer, group * positive_scalings(spec.hidden_sizes), x)


def _permute_inputs(x: WeightSpaceFeatures, perm: torch.Tensor) -> WeightSpaceFeatures:
    return x.with_tensors([x.weights[0][:, :, :, perm], *x.weights[1:]], x.biases)


def test_np_is_equivariant_to_input_permutations_and_hnp_is_not():
    spec = WeightSpaceSpec.mlp([5, 4, 3])
    x = spec.randn(2, C_IN, dtype=torch.float64)
    perm = torch.tensor([4, 2, 0, 1, 3])
    with torch.no_grad():
        np_layer = NPLinear(spec, C_IN, C_OUT).double()
        assert np_layer(_permute_inputs(x, perm)).allclose(_permute_inputs(np_layer(x), perm), rtol=1e-12)
        for folded in ("exact", "factorised"):
            hnp_layer = HNPLinear(spec, C_IN, C_OUT, folded=folded).double()
            assert not hnp_layer(_permute_inputs(x, perm)).allclose(_permute_inputs(hnp_layer(x), perm), rtol=1e-3)


def test_hnp_factorises_wide_inputs_by_default_and_keeps_its_group():
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    mnist = WeightSpaceSpec.mlp([784, 64, 64, 10])
    auto, exact_size = HNPLinear(mnist, 32, 32), 2 * (32 * 784) ** 2  # two W⁽¹⁾ ← W⁽¹⁾ blocks alone
    assert auto.factorised_groups and count(auto) < exact_size / 1000
    assert count(HNPLinear(mnist, 32, 32)) < 50 * count(NPLinear(mnist, 32, 32))
    assert not HNPLinear(WeightSpaceSpec.mlp([64, 32, 10]), 4, 4).factorised_groups  # 8×8 digits stay exact
    assert HNPPool(mnist).num_outputs(32) < 32 * 784
    # the factorised layer and pool keep the hidden-permutation group exactly, on a 300-input net
    wide = WeightSpaceSpec.mlp([300, 5, 4, 3])
    x = wide.randn(2, C_IN)
    layer, pool = HNPLinear(wide, C_IN, C_OUT), HNPPool(wide)
    assert layer.factorised_groups and list(pool.projections) == ["0"]  # W⁽¹⁾ only: 3 outputs stay whole
    group = permutations(wide.hidden_sizes)
    assert_equivariant(layer, group, x)
    pool.group = group
    assert_invariant(pool, inputs=x)


def test_folded_option_is_checked():
    from nfkit.errors import InvalidOptionError

    spec = WeightSpaceSpec.mlp([3, 4, 2])
    with pytest.raises(InvalidOptionError, match="folded must be one of"):
        HNPLinear(spec, 1, 1, folded="low-rank")
    with pytest.raises(InvalidOptionError, match="folded_rank"):
        HNPLinear(spec, 1, 1, folded="factorised", folded_rank=0)


@pytest.mark.parametrize("pool_cls", [NPPool, HNPPool, functools.partial(HNPPool, folded="factorised")])
def test_pools_are_invariant(pool_cls):
    spec = spec_of(make_cnn("relu"))
    pool = pool_cls(spec)
    pool.group = permutations(spec.hidden_sizes)
    assert_invariant(pool, inputs=spec.randn(3, 2))


def test_gradients_flow_and_shapes_hold_for_cnns():
    spec = spec_of(make_cnn("relu"))
    layer = HNPLinear(spec, 2, 3)
    out = layer(spec.randn(4, 2))
    assert [tuple(w.shape) for w in out.weights] == [(4, 3, 4, 1, 3, 3), (4, 3, 5, 4, 3, 3), (4, 3, 3, 5)]
    sum(t.sum() for t in out.tensors()).backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in layer.parameters())


def test_wrong_channels_or_spec_is_an_error():
    spec = WeightSpaceSpec.mlp([3, 4, 2])
    layer = NPLinear(spec, 2, 3)
    with pytest.raises(ValueError, match="expects 2 channels"):
        layer(spec.randn(1, 3))
    with pytest.raises(ValueError, match="do not match"):
        layer(WeightSpaceSpec.mlp([3, 5, 2]).randn(1, 2))


def test_layer_is_a_module_with_readable_repr():
    layer = NPLinear(WeightSpaceSpec.mlp([3, 4, 2]), 2, 3)
    assert isinstance(layer, nn.Module) and "2→3" in repr(layer)


def test_fused_pooling_backward_matches_autograd_means():
    from nfkit.layers.permutation_basis import _Means

    x = torch.randn(2, 3, 4, 5, dtype=torch.float64, requires_grad=True)
    dims = ((2,), (3,), (2, 3))
    assert torch.autograd.gradcheck(lambda t: _Means.apply(t, dims), (x,))
    expected = torch.autograd.grad(sum((x.mean(dim=d) ** 2).sum() for d in dims), x)[0]
    got = torch.autograd.grad(sum((m**2).sum() for m in _Means.apply(x, dims)), x)[0]
    torch.testing.assert_close(got, expected)
