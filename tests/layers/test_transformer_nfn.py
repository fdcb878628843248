"""Transformer-NFN layers: equivariance per factor (GL of condition 100, scales 1e-3..1e3), negative controls, sizes."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from nfkit.groups.transformer import TransformerFactor
from nfkit.layers.transformer_nfn import AttentionBlockLinear
from nfkit.layers.transformer_network import GLSafeActivation, TransformerLinear, TransformerReadout
from nfkit.spaces import AttentionBlockSpec, TransformerFeatures, TransformerSpec, WeightSpaceSpec
from nfkit.testing import assert_equivariant, assert_invariant, assert_not_equivariant

PERMUTABLE = AttentionBlockSpec(6, 2, 3, 2, 8, residual=False, norm_affine=False)
RESIDUAL = AttentionBlockSpec(6, 3, 2, 2, 8, attention_bias=False)


def _spec(block: AttentionBlockSpec) -> TransformerSpec:
    return TransformerSpec((block, block), embedding=WeightSpaceSpec.mlp([4, 6]), head=WeightSpaceSpec.mlp([6, 5, 3]))


class _Wrapped(nn.Module):
    def __init__(self, module: nn.Module, spec: TransformerSpec, channels: int) -> None:
        super().__init__()
        self.module, self.spec, self.group, self.in_channels = module, spec, spec.symmetry_group(), channels

    def forward(self, x: TransformerFeatures):
        return self.module(x)


@pytest.mark.parametrize("block", [PERMUTABLE, RESIDUAL], ids=["stream-permutable", "residual"])
@pytest.mark.parametrize("rank", [None, 3])
def test_linear_layer_is_equivariant_to_each_factor_and_not_to_more(block, rank):
    spec = _spec(block)
    torch.manual_seed(0)
    layer = _Wrapped(nn.Sequential(TransformerLinear(spec, 2, 3, rank=rank), GLSafeActivation()), spec, 2)
    for group in [layer.group, *layer.group.factor_subgroups()]:
        assert_equivariant(layer, group)
    assert_not_equivariant(layer, layer.group.negative_control())


@pytest.mark.parametrize("block", [PERMUTABLE, RESIDUAL], ids=["stream-permutable", "residual"])
def test_readout_is_invariant(block):
    spec = _spec(block)
    torch.manual_seed(0)
    readout = _Wrapped(TransformerReadout(spec, 2, 5), spec, 2)
    for group in [readout.group, *readout.group.factor_subgroups()]:
        assert_invariant(readout, group)
    assert_not_equivariant(readout, readout.group.negative_control())


def test_relu_on_the_gl_tensors_would_break_equivariance():
    spec = _spec(PERMUTABLE)
    everywhere = _Wrapped(nn.Sequential(TransformerLinear(spec, 1, 2), _ReluEverywhere()), spec, 1)
    assert_not_equivariant(everywhere, spec.symmetry_group().restrict({TransformerFactor.QUERY_KEY_GL}))


class _ReluEverywhere(nn.Module):
    def forward(self, x: TransformerFeatures) -> TransformerFeatures:
        return x.map(torch.relu)


def test_the_factorised_form_is_much_smaller_and_the_full_form_matches_the_d_cubed_count():
    block = AttentionBlockSpec(32, 2, 16, 16, 64, residual=False, norm_affine=False)
    full = AttentionBlockLinear(block, 10, 10)
    assert full.fixed_quadratic.numel() == 2 * 10 * 10 * 32 * 33**2 == 6_969_600
    small = AttentionBlockLinear(block, 10, 10, rank=8)
    factorised = small.fixed_left.numel() + small.fixed_right.numel() + small.fixed_core.numel()
    assert factorised == 2 * 10 * 33 * 8 + 2 * 10 * 10 * 32 * 64 == 414_880
    total = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert total(small) < 0.25 * total(full)


def test_layers_handle_any_number_of_blocks():
    spec = TransformerSpec((RESIDUAL,) * 3)
    out = TransformerReadout(spec, 1, 4)(spec.randn(2))
    assert out.shape == (2, 12)
    with_statistics = TransformerReadout(spec, 1, 4, statistics=True)
    assert with_statistics(spec.randn(2)).shape == (2, with_statistics.out_features)


def test_the_flat_embedding_branch_can_be_left_out():
    spec = _spec(PERMUTABLE)
    full, without = TransformerReadout(spec, 3, 4), TransformerReadout(spec, 3, 4, flat_embedding=False)
    assert full.out_features - without.out_features == 3 * spec.embedding.num_parameters == 3 * 30
    x = spec.randn(2, 3)
    assert without(x).shape == (2, without.out_features)
    changed = x.with_tensors([t + 1 if k.startswith("embedding.") else t for k, t in x.named.items()])
    assert torch.equal(without(changed), without(x))  # the embedding is not read at all without statistics


def test_invariant_width_zero_leaves_out_the_block_invariant_layer():
    spec = _spec(PERMUTABLE)
    readout = TransformerReadout(spec, 2, 0, statistics=True, flat_embedding=False)
    assert len(readout.blocks) == 0
    assert readout.out_features == readout.statistics.out_features + 2 * readout.head_pool.num_outputs(2)
    assert readout(spec.randn(3, 2)).shape == (3, readout.out_features)
    with pytest.raises(ValueError, match=">= 0"):
        TransformerReadout(spec, 2, -1)


@pytest.mark.parametrize("block", [PERMUTABLE, RESIDUAL], ids=["stream-permutable", "residual"])
@pytest.mark.parametrize(
    "options",
    [
        dict(statistics=True, skip=True),
        dict(statistics=True, skip=True, flat_embedding=False, invariant_width=0),
        # no trunk: statistics, head pooling and the per-block invariant layer (README's table)
        dict(hidden_channels=[], statistics=True, flat_embedding=False, head_hidden=[16]),
    ],
    ids=["with-invariant-layer", "pooled-only", "no-trunk"],
)
def test_the_invariant_statistics_and_skip_options_keep_the_whole_group(block, options):
    import nfkit.models
    from nfkit.layers.transformer_network import InvariantStatistics

    spec = _spec(block)
    torch.manual_seed(0)
    model = nfkit.models.invariant("transformer-nfn", spec, **options).double()
    for group in [model.group, *model.group.factor_subgroups()]:
        assert_invariant(model, group)
    assert_not_equivariant(model, model.group.negative_control())
    statistics = _Wrapped(InvariantStatistics(spec, 1), spec, 1)
    assert_invariant(statistics, statistics.group)
    x = spec.randn(2, 1, dtype=torch.float64).map(lambda t: t.requires_grad_())
    model(x).sum().backward()  # singular values repeat (products have rank d_k < D+1): gradients stay finite
    assert all(t.grad is not None and torch.isfinite(t.grad).all() for t in x.named.values())


@pytest.mark.parametrize("block", [PERMUTABLE, RESIDUAL], ids=["stream-permutable", "residual"])
def test_the_statistics_readout_alone_forgets_how_fields_align(block):
    """Without trunk and invariant layer every field enters as a bag of entries: the model keeps the
    whole group but is blind to the larger one (it cannot tell an aligned network from one whose
    fields were permuted apart), which is why the README lists it apart."""
    import nfkit.models

    spec = _spec(block)
    torch.manual_seed(0)
    options = dict(hidden_channels=[], statistics=True, flat_embedding=False, invariant_width=0, head_hidden=[16])
    model = nfkit.models.invariant("transformer-nfn", spec, **options).double()
    assert_invariant(model, model.group)
    assert_invariant(model, model.group.negative_control())
