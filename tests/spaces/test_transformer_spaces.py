"""Transformer weight spaces: conversion, round trips, and that every group action preserves the function."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from nfkit.nets.architectures import torch_encoder
from nfkit.data.dataset import collate
from nfkit.errors import NonFiniteWeightsError, SpecMismatchError, UnsupportedModuleError
from nfkit.groups.transformer import FACTOR_ORDER, TransformerFactor, TransformerGroup
from nfkit.spaces import TransformerFeatures, TransformerSpec, load_into, spec_from_dict, spec_of, stack, weights_of
from nfkit.nets.transformer import SmallTransformer

F = TransformerFactor


def _modules() -> dict[str, nn.Module]:
    torch.manual_seed(0)
    modules = {
        "torch-layer": nn.TransformerEncoderLayer(8, 2, 12, dropout=0.0, batch_first=True),
        "torch-encoder-prenorm-gelu": torch_encoder(8, 2, 12, 2, norm_first=True),
        "zoo-vision": SmallTransformer(d_model=8, heads=2, d_ff=12, blocks=2, patch=4, image=8, classes=3),
        "zoo-text": SmallTransformer(d_model=8, heads=4, d_ff=12, blocks=1, vocab=20, max_len=6, classes=3),
        "zoo-residual": SmallTransformer(d_model=8, heads=2, d_ff=12, patch=4, image=8, residual=True),
        "zoo-affine": SmallTransformer(d_model=8, heads=2, d_ff=12, patch=4, image=8, norm_affine=True),
        "zoo-postnorm-bias": SmallTransformer(d_model=8, heads=2, d_ff=12, patch=4, image=8, norm_first=False, attention_bias=True),
    }
    with torch.no_grad():  # affine norms away from their (1, 0) initialisation, or they would act as plain ones
        for module in modules.values():
            for norm in module.modules():
                if isinstance(norm, nn.LayerNorm) and norm.weight is not None:
                    norm.weight.normal_(1.0, 0.5)
                    norm.bias.normal_()
    return modules


def _inputs(module: nn.Module) -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    if isinstance(module, SmallTransformer):
        if module.vocab is not None:
            return torch.randint(0, module.vocab, (3, 6), generator=g)
        return torch.randn(3, 1, 8, 8, generator=g, dtype=torch.float64)
    return torch.randn(3, 5, 8, generator=g, dtype=torch.float64)


def _function_change(module: nn.Module, group: TransformerGroup, samples: int = 3) -> float:
    """Largest relative change of the module's output when its weights are moved by elements of ``group``."""
    module = copy.deepcopy(module).double().eval()
    moved = copy.deepcopy(module)
    x = _inputs(module)
    weights = weights_of(module)
    with torch.no_grad():
        reference = module(x)
        worst = 0.0
        for k in range(samples):
            load_into(moved, group.sample(torch.Generator().manual_seed(k)).act(weights))
            worst = max(worst, ((moved(x) - reference).abs().max() / reference.abs().max()).item())
    return worst


@pytest.mark.parametrize("name", list(_modules()))
def test_every_factor_of_the_declared_group_preserves_the_function(name):
    module = _modules()[name]
    group = spec_of(module).symmetry_group()
    assert _function_change(module, group) < 1e-9
    for factor in group.factors:  # each factor alone: GL with condition 100 and scales 1e-3..1e3
        assert _function_change(module, group.restrict({factor})) < 1e-9, factor


def test_the_stream_permutation_is_detected_from_the_module_and_absent_otherwise():
    modules = _modules()
    stream = {n: spec_of(m).stream_permutable for n, m in modules.items()}
    assert stream == {n: n in ("zoo-vision", "zoo-text", "zoo-postnorm-bias") for n in modules}
    for name in ("torch-layer", "zoo-residual", "zoo-affine"):  # there it would change the function
        group = spec_of(modules[name]).symmetry_group()
        assert _function_change(modules[name], group.restrict({F.STREAM_PERMUTATION})) > 1e-3, name


@pytest.mark.parametrize("name", ["torch-layer", "zoo-vision"])
def test_negative_controls_change_the_function(name):
    module = _modules()[name]
    group = spec_of(module).symmetry_group()
    assert _function_change(module, group.restrict({F.INPUT_PERMUTATION})) > 1e-3
    # untied GL: a query-only change (keys left alone) is not a symmetry
    weights = weights_of(module.double())
    spec = weights.spec
    g = TransformerGroup(spec, {F.QUERY_KEY_GL}).sample(torch.Generator().manual_seed(0))
    moved = g.act(weights).named
    untied = dict(weights.named)
    untied.update({k: v for k, v in moved.items() if k.endswith(".query")})
    changed = load_into(copy.deepcopy(module), TransformerFeatures(spec, untied))
    x = _inputs(module)
    assert (changed(x) - module(x)).abs().max() > 1e-3


@pytest.mark.parametrize("name", list(_modules()))
def test_round_trip_is_exact_and_counts_every_parameter(name):
    module = _modules()[name]
    spec = spec_of(module)
    assert spec.num_parameters == sum(p.numel() for p in module.parameters())
    weights = weights_of(module)
    fresh = copy.deepcopy(module)
    for p in fresh.parameters():
        nn.init.zeros_(p)
    load_into(fresh, weights)
    assert weights_of(fresh).allclose(weights, rtol=0, atol=0)
    assert spec_from_dict(spec.to_dict()) == spec
    flat = weights.flatten()
    assert flat.shape == (1, 1, sum(t[0, 0].numel() for t in weights.tensors()))
    assert spec.unflatten(flat).allclose(weights, rtol=0, atol=0)


def test_packed_in_projection_is_split_per_head():
    layer = _modules()["torch-layer"]
    w = weights_of(layer).blocks[0]
    d, dk = 8, 4
    # head 1's query matrix is rows dk..2dk of the packed in_proj (nn.Linear layout), transposed
    assert torch.equal(w["query"][0, 0, 1], layer.self_attn.in_proj_weight[dk : 2 * dk].t())
    assert torch.equal(w["value_bias"][0, 0, 0], layer.self_attn.in_proj_bias[2 * d : 2 * d + dk])
    assert torch.equal(w["output"][0, 0, 1], layer.self_attn.out_proj.weight[:, dk:].t())


def test_batches_stack_and_collate():
    spec = spec_of(_modules()["zoo-vision"])
    a, b = spec.randn(2), spec.randn(3)
    both = stack([a, b])
    assert isinstance(both, TransformerFeatures) and len(both) == 5 and both[2:].allclose(b)
    features, labels = collate([(a[0], torch.tensor(1.0)), (b[1], torch.tensor(2.0))])
    assert len(features) == 2 and labels.tolist() == [1.0, 2.0]


def test_bad_inputs_give_clear_errors():
    modules = _modules()
    with pytest.raises(UnsupportedModuleError, match="final norm"):
        spec_of(nn.TransformerEncoder(nn.TransformerEncoderLayer(8, 2, 12, batch_first=True), 1, norm=nn.LayerNorm(8), enable_nested_tensor=False))
    odd = nn.TransformerEncoderLayer(8, 2, 12, batch_first=True)
    odd.self_attn = nn.MultiheadAttention(8, 2, add_bias_kv=True, batch_first=True)
    with pytest.raises(UnsupportedModuleError, match="add_bias_kv"):
        spec_of(odd)
    zoo = modules["zoo-vision"]
    with pytest.raises(SpecMismatchError, match="do not match"):
        load_into(zoo, weights_of(modules["zoo-residual"]))
    with pytest.raises(SpecMismatchError, match="needs TransformerFeatures|do not match"):
        load_into(zoo, spec_of(nn.Sequential(nn.Linear(2, 3))).randn(1))  # type: ignore[arg-type]
    w = weights_of(zoo)
    bias = {k: (torch.ones_like(v) if k == "blocks.0.query_bias" else v) for k, v in w.named.items()}
    with pytest.raises(SpecMismatchError, match="blocks.0.query_bias: the module has no such bias"):
        load_into(zoo, TransformerFeatures(w.spec, bias))
    nan = {k: (v * float("nan") if k == "blocks.1.ffn_out" else v) for k, v in w.named.items()}
    with pytest.raises(NonFiniteWeightsError, match="blocks.1.ffn_out contains NaN"):
        load_into(zoo, TransformerFeatures(w.spec, nan))
    with pytest.raises(SpecMismatchError, match="pass index="):
        load_into(zoo, stack([w, w]))
    with pytest.raises(SpecMismatchError, match=r"blocks.0.key has shape"):
        TransformerFeatures(w.spec, {k: (v[..., :1] if k == "blocks.0.key" else v) for k, v in w.named.items()})
    with pytest.raises(SpecMismatchError, match="missing tensors"):
        TransformerFeatures(w.spec, {k: v for k, v in w.named.items() if k != "head.W1"})
    with pytest.raises(SpecMismatchError, match="d_model"):
        TransformerSpec((spec_of(zoo).blocks[0], spec_of(modules["zoo-text"]).blocks[0].__class__(9, 3, 3, 3, 4)))


def test_factor_order_lists_every_factor_once():
    assert set(FACTOR_ORDER) == set(TransformerFactor) and FACTOR_ORDER[-1] is F.INPUT_PERMUTATION
