"""NFT attention against a loop-based implementation of the paper's definition; symmetry."""

import math

import pytest
import torch

from conftest import make_cnn
from nfkit.groups import permutations, positive_scalings
from nfkit.layers.nft import NFTAttention, NFTBlock
from nfkit.spaces import WeightSpaceSpec, spec_of
from nfkit.testing import assert_equivariant, assert_not_equivariant


def _softmax_attention(q, k, v):
    """q, k, v: lists of token vectors → list of outputs (plain loops)."""
    out = []
    for qi in q:
        scores = torch.stack([qi @ kj for kj in k]) / math.sqrt(qi.numel())
        weights = torch.softmax(scores, dim=0)
        out.append(sum(w * vj for w, vj in zip(weights, v)))
    return out


def test_attention_equals_the_loop_reference():
    spec = WeightSpaceSpec.mlp([2, 3, 2])
    c = 4
    layer = NFTAttention(spec, c, heads=1).double()
    x = spec.randn(1, c, dtype=torch.float64)
    W = [w[0] for w in x.weights]  # (c, n_i, n_{i-1})
    b = [v[0] for v in x.biases]
    L = 2
    qkv_w = [layer.project_weight[i](W[i].permute(1, 2, 0)) for i in range(L)]  # (n, m, 3c)
    qkv_b = [layer.project_bias[i](b[i].t()) for i in range(L)]  # (n, 3c)
    part = lambda t, s: t[..., s * c : (s + 1) * c]  # noqa: E731  0: q, 1: k, 2: v
    out_w = [torch.zeros(W[i].shape[1], W[i].shape[2], c, dtype=torch.float64) for i in range(L)]
    out_b = [torch.zeros(b[i].shape[1], c, dtype=torch.float64) for i in range(L)]
    with torch.no_grad():
        # global: tokens are the means of every tensor
        summary = [[part(t, s).mean(dim=tuple(range(t.dim() - 1))) for t in qkv_w + qkv_b] for s in range(3)]
        g = _softmax_attention(*summary)
        for i in range(L):
            out_w[i] += g[i]
            out_b[i] += g[L + i]
        # cross, neuron layer ℓ: columns of W⁽ℓ⁾, b⁽ℓ⁾, rows of W⁽ℓ⁺¹⁾, as vectors over layer ℓ
        for ell in range(L + 1):
            tokens = []  # (where, index, getter of the (n_ℓ, c) block for q/k/v)
            if ell >= 1:
                i = ell - 1
                tokens += [("col", i, k) for k in range(W[i].shape[2])] + [("bias", i, None)]
            if ell <= L - 1:
                tokens += [("row", ell, p) for p in range(W[ell].shape[1])]

            def vec(token, s):
                kind, i, j = token
                if kind == "col":
                    block = part(qkv_w[i], s)[:, j]  # (n_ℓ, c)
                elif kind == "bias":
                    block = part(qkv_b[i], s)
                else:
                    block = part(qkv_w[i], s)[j]
                return block.t().reshape(-1)  # features then neurons: (c · n_ℓ)

            outs = _softmax_attention(*[[vec(t, s) for t in tokens] for s in range(3)])
            for (kind, i, j), o in zip(tokens, outs):
                o = o.view(c, -1).t()  # (n_ℓ, c)
                if kind == "col":
                    out_w[i][:, j] += o
                elif kind == "bias":
                    out_b[i] += o
                else:
                    out_w[i][j] += o
        expected_w = [layer.unproject_weight[i](out_w[i]).permute(2, 0, 1) for i in range(L)]
        expected_b = [layer.unproject_bias[i](out_b[i]).t() for i in range(L)]
        y = layer(x)
    for i in range(L):
        assert torch.allclose(y.weights[i][0], expected_w[i], atol=1e-12)
        assert torch.allclose(y.biases[i][0], expected_b[i], atol=1e-12)


@pytest.mark.parametrize("kind", ["mlp", "cnn"])
def test_block_equivariance_and_negative_control(kind):
    spec = WeightSpaceSpec.mlp([3, 5, 4, 2]) if kind == "mlp" else spec_of(make_cnn("tanh"))
    block = NFTBlock(spec, 8, heads=2)
    group = permutations(spec.hidden_sizes)
    x = spec.randn(2, 8)
    assert_equivariant(block, group, x)
    assert_not_equivariant(block, group * positive_scalings(spec.hidden_sizes), x)


def test_heads_must_divide_channels():
    with pytest.raises(ValueError, match="divisible"):
        NFTAttention(WeightSpaceSpec.mlp([2, 3, 1]), 6, heads=4)


@pytest.mark.parametrize("recompute", [1, 3, 8])
def test_recomputed_block_has_the_plain_blocks_outputs_and_gradients(recompute):
    """Per-chunk activation checkpointing changes memory, never values: chunks of 1, 3 (uneven:
    7 = 3 + 3 + 1) and 8 (one chunk) against the plain block, in float64."""
    spec = spec_of(make_cnn("tanh"))
    torch.manual_seed(0)
    plain = NFTBlock(spec, 8, heads=2, recompute=0).double()
    chunked = NFTBlock(spec, 8, heads=2, recompute=recompute).double()
    chunked.load_state_dict(plain.state_dict())
    x = spec.randn(7, 8).to(torch.float64)
    grads, outputs = [], []
    for block in (plain, chunked):
        inputs = x.map(lambda t: t.clone().requires_grad_())
        y = block(inputs)
        loss = sum((t.square() * (1 + k)).sum() for k, t in enumerate(y.tensors()))
        loss.backward()
        grads.append([t.grad for t in inputs.tensors()] + [p.grad for p in block.parameters()])
        outputs.append(y.detach())
    assert outputs[0].allclose(outputs[1], rtol=1e-12, atol=1e-12)
    for a, b in zip(*grads):
        assert torch.allclose(a, b, rtol=1e-10, atol=1e-12)


def test_recompute_must_not_be_negative():
    with pytest.raises(ValueError, match="recompute"):
        NFTBlock(WeightSpaceSpec.mlp([2, 3, 1]), 4, heads=2, recompute=-1)
