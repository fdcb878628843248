"""The transformer group as a library object: sample, identity, compose, invert, act."""

from __future__ import annotations

import torch

from nfkit.groups.transformer import TransformerFactor, TransformerGroup, random_gl
from nfkit.spaces import AttentionBlockSpec, TransformerSpec, WeightSpaceSpec

SPEC = TransformerSpec(
    (AttentionBlockSpec(6, 3, 2, 4, 8, residual=False, norm_affine=False), AttentionBlockSpec(6, 3, 2, 4, 8, residual=False, norm_affine=False)),
    head=WeightSpaceSpec.mlp([6, 5, 2]),
)


def _group() -> TransformerGroup:
    return SPEC.symmetry_group()


def test_composition_acts_as_sequential_actions_and_inverse_undoes():
    gen = torch.Generator().manual_seed(0)
    g, h = _group().sample(gen), _group().sample(gen)
    x = SPEC.randn(2, 3, dtype=torch.float64, generator=gen)
    assert (g @ h).act(x).allclose(g.act(h.act(x)), rtol=1e-9, atol=1e-9)
    assert (g @ g.inverse()).allclose(_group().identity(), rtol=1e-9, atol=1e-9)
    assert (g.inverse() @ g).allclose(_group().identity(), rtol=1e-9, atol=1e-9)
    assert _group().identity().act(x).allclose(x, rtol=0, atol=0)
    assert not g.allclose(h)


def test_action_is_a_real_change_and_keeps_the_invariants():
    x = SPEC.randn(1, dtype=torch.float64)
    g = _group().sample(torch.Generator().manual_seed(3))
    y = g.act(x)
    assert not y.allclose(x, rtol=1e-3)
    for bx, by in zip(x.blocks, y.blocks):  # Σ_heads W_Q W_Kᵀ is invariant
        qk = lambda b: torch.einsum("bchpk,bchqk->bcpq", b["query"], b["key"])  # noqa: E731
        assert torch.allclose(qk(bx), qk(by), rtol=1e-9, atol=1e-9)


def test_gl_elements_respect_the_condition_bound_and_the_scale_range():
    m = random_gl(200, 4, condition=100.0, scale_range=(1e-3, 1e3), generator=torch.Generator().manual_seed(0))
    cond = torch.linalg.cond(m)
    assert cond.max() <= 100.0 + 1e-6 and cond.max() > 10.0
    norms = torch.linalg.matrix_norm(m, ord=2)
    assert norms.min() < 1e-1 and norms.max() > 1e1


def test_subgroups_and_names():
    full = _group()
    heads = full.restrict({TransformerFactor.HEAD_PERMUTATION})
    assert full.contains(heads) and not heads.contains(full)
    assert heads.name == "heads" and TransformerGroup(SPEC).name == "trivial"
    assert "stream perms" in full.name and "classifier perms" in full.name
    assert not full.contains(TransformerSpec(SPEC.blocks[:1]).symmetry_group())
