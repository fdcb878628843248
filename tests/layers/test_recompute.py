"""``recompute=k``: trunk and readout run k networks at a time and again in backward; the outputs and
every gradient are those of the plain model, dropout masks included, and the symmetry is untouched."""

from __future__ import annotations

import copy

import pytest
import torch

import nfkit.models
from nfkit.layers.recompute import recomputed_in_chunks
from nfkit.nets import RecurrentClassifier
from nfkit.spaces import WeightSpaceSpec, stack, universal_spec_of
from nfkit.testing import assert_equivariant, assert_invariant


def _grads(model: torch.nn.Module, x, out) -> list[torch.Tensor]:  # type: ignore[no-untyped-def]
    tensors = out.tensors() if hasattr(out, "tensors") else [out]
    total = sum((t * torch.linspace(-1, 1, t.numel(), dtype=t.dtype).view(t.shape)).sum() for t in tensors)
    return list(torch.autograd.grad(total, [*model.parameters(), *x.tensors()], allow_unused=True))


CASES = [
    ("np", WeightSpaceSpec.mlp([3, 5, 4, 2], "relu"), {}),
    ("hnp", WeightSpaceSpec.mlp([3, 5, 4, 2], "relu"), {}),
    ("monomial", WeightSpaceSpec.mlp([3, 5, 4, 2], "tanh"), {}),
    ("unf", universal_spec_of(RecurrentClassifier(4, 3, 2, tokens=False)), {}),
    ("np", WeightSpaceSpec.mlp([3, 5, 4, 2], "relu"), {"statistics": True}),
]


@pytest.mark.parametrize("form", ["invariant", "equivariant"])
@pytest.mark.parametrize("name, spec, options", CASES, ids=[c[0] + ("+statistics" if c[2] else "") for c in CASES])
def test_same_outputs_and_gradients(name, spec, options, form):
    if form == "equivariant" and options:
        pytest.skip("statistics is an invariant readout")
    torch.manual_seed(0)
    build = getattr(nfkit.models, form)
    plain = build(name, spec, 2, hidden_channels=[4, 3], **options).double()
    chunked = build(name, spec, 2, hidden_channels=[4, 3], recompute=3, **options).double()
    chunked.load_state_dict(plain.state_dict())
    x = spec.randn(7, dtype=torch.float64).map(lambda t: t.requires_grad_())  # 3 + 3 + 1 networks
    y_plain, y_chunked = plain(x), chunked(x)
    for a, b in zip(y_plain.tensors() if form == "equivariant" else [y_plain],
                    y_chunked.tensors() if form == "equivariant" else [y_chunked]):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    for a, b in zip(_grads(plain, x, y_plain), _grads(chunked, x, y_chunked)):
        if a is None or b is None:
            assert a is None and b is None
            continue
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    (assert_equivariant if form == "equivariant" else assert_invariant)(chunked)


def test_dropout_masks_are_replayed_in_backward():
    spec = WeightSpaceSpec.mlp([3, 5, 4, 2], "relu")
    torch.manual_seed(0)
    model = nfkit.models.invariant("np", spec, 1, hidden_channels=[4, 4], dropout=0.5).double().train()
    x = spec.randn(5, dtype=torch.float64)

    def chunk_by_chunk() -> torch.Tensor:  # the same chunks and random draws, nothing recomputed
        return torch.cat([model._pooled(x[i : i + 2]) for i in range(0, 5, 2)])

    torch.manual_seed(1)
    expected = torch.autograd.grad(model.head(chunk_by_chunk()).sum(), list(model.parameters()), allow_unused=True)
    torch.manual_seed(1)
    pooled = recomputed_in_chunks(model._pooled, x, 2)
    got = torch.autograd.grad(model.head(pooled).sum(), list(model.parameters()), allow_unused=True)
    for a, b in zip(expected, got):
        if a is not None:
            torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def test_without_gradients_nothing_is_chunked():
    spec = WeightSpaceSpec.mlp([3, 5, 2], "relu")
    calls = []

    def fn(x):  # type: ignore[no-untyped-def]
        calls.append(len(x))
        return x

    with torch.no_grad():
        recomputed_in_chunks(fn, spec.randn(5), 2)
    assert calls == [5]
    out = recomputed_in_chunks(fn, spec.randn(5).map(lambda t: t.requires_grad_()), 2)
    assert len(out) == 5 and calls[1:] == [2, 2, 1]
    assert stack([out[:2], out[2:]]).allclose(out)


@pytest.mark.parametrize("bad", [-1, True, 1.5])
def test_a_bad_chunk_size_is_one_clear_error(bad):
    spec = WeightSpaceSpec.mlp([3, 5, 2], "relu")
    with pytest.raises(ValueError, match="recompute is a number of networks"):
        nfkit.models.invariant("np", spec, 1, recompute=bad)
    with pytest.raises(ValueError, match="recompute is a number of networks"):
        nfkit.models.equivariant("hnp", copy.deepcopy(spec), 1, recompute=bad)
