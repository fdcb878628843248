"""MAGEP-NFN polynomial layers: terms against an all-pairs reference, symmetry, and scale robustness."""

from unittest import mock

import pytest
import torch

from conftest import make_cnn
from nfkit.errors import SpecMismatchError, UnsupportedArchitectureError
from nfkit.groups import permutations, positive_scalings, sign_flips
from nfkit.layers.magep import MagepInvariant, MagepLinear, PolynomialTerms, invariant_scale
from nfkit.spaces import WeightSpaceFeatures, WeightSpaceSpec, spec_of
from nfkit.testing import assert_equivariant, assert_invariant, check_symmetry

SPEC = WeightSpaceSpec.mlp([3, 5, 4, 6, 2])


def _path(W, s, t):
    """W_(s,t) = W⁽ˢ⁾ ⋯ W⁽ᵗ⁺¹⁾ by the definition (1-based layers; W is a 0-based list)."""
    out = W[t]
    for i in range(t + 1, s):
        out = W[i] @ out
    return out


def _gl_act(x: WeightSpaceFeatures, mats: list[torch.Tensor]) -> WeightSpaceFeatures:
    """W⁽ⁱ⁾ ↦ G_i W⁽ⁱ⁾ G_{i-1}⁻¹, b⁽ⁱ⁾ ↦ G_i b⁽ⁱ⁾ with G_0 = G_L = I: a general invertible change of basis."""
    L = len(x.weights)
    G = [None, *mats, None]
    weights, biases = [], []
    for i, (w, b) in enumerate(zip(x.weights, x.biases), start=1):
        if G[i] is not None:
            w = torch.einsum("jk,bckl->bcjl", G[i], w)
            b = torch.einsum("jk,bck->bcj", G[i], b)
        if G[i - 1] is not None:
            w = torch.einsum("bcjk,kl->bcjl", w, torch.linalg.inv(G[i - 1]))
        weights.append(w)
        biases.append(b)
    assert len(weights) == L
    return x.with_tensors(weights, biases)


def _random_gl(n: int, condition: float, generator: torch.Generator) -> torch.Tensor:
    q1, _ = torch.linalg.qr(torch.randn(n, n, generator=generator, dtype=torch.float64))
    q2, _ = torch.linalg.qr(torch.randn(n, n, generator=generator, dtype=torch.float64))
    singular = torch.logspace(0, torch.log10(torch.tensor(condition)).item(), n, dtype=torch.float64)
    return q1 @ torch.diag(singular) @ q2


def test_terms_match_the_all_pairs_definitions():
    terms = PolynomialTerms(SPEC, 1).double()
    x = SPEC.randn(1, 1, dtype=torch.float64)
    W = [w[0, 0] for w in x.weights]
    b = [v[0, 0] for v in x.biases]
    L = len(W)
    s = invariant_scale(list(x.weights))[0, 0]
    # the invariant scale is ‖|W⁽ᴸ⁾|⋯|W⁽¹⁾|‖^{1/L}
    product = W[0].abs()
    for w in W[1:]:
        product = w.abs() @ product
    assert torch.allclose(s, product.norm() ** (1 / L))
    with torch.no_grad():
        inputs = terms.terms(x)
    # degree-1 homogenisation: a degree-m term T is reported as s·T(x / s) = s^{1-m} T(x)
    M = _path(W, L, 0)
    Psi = {k: v[0] for k, v in terms.Psi.items()}
    psi = {k: v[0] for k, v in terms.psi.items()}
    last = inputs[f"b{L}"]
    assert torch.allclose(last[1].view(2, 3), M * s ** (1 - L))
    assert torch.allclose(last[2].view(2, 3), M @ Psi[f"{L}_0"] @ M * s ** (1 - 2 * L))
    assert torch.allclose(last[3].view(2, 3), torch.outer(b[L - 1], psi[f"{L}_0"] @ M) * s ** (1 - L - 1))
    # v_L = Σ_t W_(L,t) b⁽ᵗ⁾ with each term of its own degree
    v = sum(_path(W, L, t) @ b[t - 1] * s ** (1 - (L - t + 1)) for t in range(1, L))
    assert torch.allclose(last[4].view(2), v)
    for k, s_ in enumerate(range(1, L)):
        tau = psi[f"{s_}_{s_}"] @ _path(W, L, s_) @ b[s_ - 1] * s ** (1 - (L - s_ + 1))
        assert torch.allclose(last[5 + k].view(()), tau)
    # the left-out trace τ_WW^(s) = tr(W_(s,0) Ψ W_(L,s)) is tr(Ψ W_(L,0)): linear in a term already present
    Psi_any = torch.randn(3, 2, dtype=torch.float64)
    assert torch.allclose(torch.trace(_path(W, 2, 0) @ Psi_any @ _path(W, L, 2)), torch.trace(Psi_any @ M))
    # a hidden weight's terms: [WW]^{(s,0)}_{(L,s-1)} and [bW]^{(s)}_{(L,s-1)}
    s_ = 2
    assert torch.allclose(
        inputs["W2"][1][0, 0], _path(W, s_, 0) @ Psi["2_1"] @ _path(W, L, s_ - 1) * s ** (1 - (s_ + L - s_ + 1))
    )
    assert torch.allclose(
        inputs["W2"][2][0, 0], torch.outer(b[1], psi["2_1"] @ _path(W, L, 1)) * s ** (1 - (1 + L - 1))
    )


@pytest.mark.parametrize("sizes", [[3, 5, 2], [3, 5, 4, 2], [3, 5, 4, 6, 2], [300, 5, 4, 20]])
@pytest.mark.parametrize("folded", ["auto", "factorised"])
def test_equivariant_to_the_whole_monomial_group(sizes, folded):
    # [300, …]: wide enough that "auto" factorises (folded blocks, low-rank Ψ, projected readout)
    spec = WeightSpaceSpec.mlp(sizes)
    layer = MagepLinear(spec, 2, 3, folded=folded)
    assert bool(layer.factorised_fields) == (folded == "factorised" or sizes[0] > 256)
    hs = spec.hidden_sizes
    x = spec.randn(2, 2)
    for group in (layer.group, permutations(hs), positive_scalings(hs), sign_flips(hs)):
        assert_equivariant(layer, group, x)
    inv = MagepInvariant(spec, 2, 4, folded=folded)
    assert_invariant(inv, layer.group, x)


def test_wide_inputs_are_factorised_with_linear_parameter_growth():
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    small, large = (MagepLinear(WeightSpaceSpec.mlp([n, 64, 64, 10]), 20, 20) for n in (300, 3000))
    assert small.factorised_fields and 0 < count(large) - count(small) < 2700 * 500
    inv = MagepInvariant(WeightSpaceSpec.mlp([784, 64, 64, 10]), 20, 20)
    assert count(inv) < 200_000 and inv.projections
    # negative control: the factorised layer still tells input neurons apart (they are not in its group)
    spec = WeightSpaceSpec.mlp([300, 5, 4, 3])
    layer = MagepLinear(spec, 2, 3).double()
    x = spec.randn(2, 2, dtype=torch.float64)
    perm = torch.randperm(300, generator=torch.Generator().manual_seed(0))
    permuted = x.with_tensors([x.weights[0][..., perm], *x.weights[1:]], x.biases)
    with torch.no_grad():
        y, y_permuted = layer(x).weights[0][..., perm], layer(permuted).weights[0]
    assert (y - y_permuted).abs().max() > 1e-3 * y.abs().max()


def test_invariant_terms_are_gl_invariant_and_the_equivariant_layer_is_not_gl_equivariant():
    generator = torch.Generator().manual_seed(3)
    x = SPEC.randn(2, 2, dtype=torch.float64, generator=generator)
    mats = [_random_gl(n, 100.0, generator) for n in SPEC.hidden_sizes]  # condition number 100
    inv = MagepInvariant(SPEC, 2, 4).double()

    def rel(a, b):
        return ((a - b).abs().max() / b.abs().max()).item()

    # the paper's claim: every invariant term telescopes, so with the scale held fixed they are GL-invariant
    with torch.no_grad(), mock.patch("nfkit.layers.magep_terms.invariant_scale", lambda w: torch.ones(w[0].shape[:2], dtype=w[0].dtype)):
        assert rel(inv(_gl_act(x, mats)), inv(x)) < 1e-9
    # the homogenising scale uses |W|, which telescopes under monomial matrices only: with it the
    # layer is monomial-invariant (tested above) but no longer GL-invariant
    with torch.no_grad():
        assert rel(inv(_gl_act(x, mats)), inv(x)) > 1e-3
    layer = MagepLinear(SPEC, 2, 3).double()
    with torch.no_grad():
        assert rel(layer(_gl_act(x, mats)).weights[1], _gl_act(layer(x), mats).weights[1]) > 1e-3


@pytest.mark.parametrize("scale", [1e-3, 1e3])
def test_terms_are_homogeneous_of_degree_one_in_float32(scale):
    layer = MagepLinear(SPEC, 2, 3)
    x = SPEC.randn(4, 2)
    with torch.no_grad():
        y, y_scaled = layer(x), layer(x * scale)
    for a, b in zip(y.tensors(), y_scaled.tensors()):
        assert torch.isfinite(b).all()
    # constants aside (zero at init), every term is degree 1: f(λx) = λ f(x)
    assert y_scaled.allclose(y * scale, rtol=1e-4, atol=1e-6 * scale)


def test_stacked_layers_stay_finite_and_moderate_for_scales_spanning_six_decades():
    generator = torch.Generator().manual_seed(0)
    group = permutations(SPEC.hidden_sizes) * positive_scalings(SPEC.hidden_sizes)
    layers = [MagepLinear(SPEC, 2, 2) for _ in range(4)]
    for scale in (1e-3, 1.0, 1e3):
        x = group.sample(generator).act(SPEC.randn(3, 2) * scale)
        with torch.no_grad():
            for layer in layers:
                x = layer(x)
        for t in x.tensors():
            assert torch.isfinite(t).all()
        # after 4 layers of degree-2L (=8) polynomials, un-homogenised terms would reach scale**(8**4)
        assert x.biases[-1].abs().max() < 1e6 * scale and x.biases[-1].abs().max() > 1e-6 * scale


def test_a_dead_channel_does_not_blow_up_the_others():
    x = SPEC.randn(2, 3)
    dead = x.weights[1].clone()
    dead[:, 1] = 0  # channel 1 of layer 2 entirely zero, as a ReLU can leave it
    x = x.with_tensors([x.weights[0], dead, *x.weights[2:]], x.biases)
    scale = invariant_scale(list(x.weights))
    # the dead channel takes the lower edge of the window: a tenth of the others' geometric mean
    assert torch.isfinite(scale).all()
    assert torch.allclose(scale[:, 1], torch.exp(scale[:, [0, 2]].log().mean(dim=1)) / 10, rtol=1e-5)
    with torch.no_grad():
        y = MagepLinear(SPEC, 3, 3)(x)
    assert max(t.abs().max() for t in y.tensors()) < 1e3
    # and gradients stay finite through the degenerate channel (no NaN from the unused log branch)
    x = x.map(lambda t: t.clone().requires_grad_())
    layer = MagepLinear(SPEC, 3, 3)
    sum(t.sum() for t in layer(x).tensors()).backward()
    assert all(torch.isfinite(t.grad).all() for t in x.tensors())
    assert all(torch.isfinite(p.grad).all() for p in layer.parameters())


def test_invariant_scale_is_invariant_and_homogeneous():
    generator = torch.Generator().manual_seed(1)
    x = SPEC.randn(2, 3, dtype=torch.float64)
    group = permutations(SPEC.hidden_sizes) * positive_scalings(SPEC.hidden_sizes) * sign_flips(SPEC.hidden_sizes)
    s = invariant_scale(list(x.weights))
    for _ in range(3):
        assert torch.allclose(invariant_scale(list(group.sample(generator).act(x).weights)), s, rtol=1e-12)
    assert torch.allclose(invariant_scale(list((x * 1e3).weights)), s * 1e3, rtol=1e-12)


def test_bad_specs_are_refused():
    with pytest.raises(SpecMismatchError, match="without_kernels"):
        MagepLinear(spec_of(make_cnn("relu")), 1, 1)
    with pytest.raises(UnsupportedArchitectureError, match="two layers"):
        MagepLinear(WeightSpaceSpec.mlp([3, 2]), 1, 1)


def test_contractions_are_learnable_by_default_and_can_be_frozen():
    assert all(p.requires_grad for p in MagepLinear(SPEC, 1, 1).terms.parameters())
    assert not any(p.requires_grad for p in MagepLinear(SPEC, 1, 1, learnable_contractions=False).terms.parameters())
    layer = MagepLinear(SPEC, 2, 2)
    sum(t.sum() for t in layer(SPEC.randn(2, 2)).tensors()).backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in layer.parameters())


def test_cost_is_linear_in_depth():
    # O(L) path products: parameters and terms grow linearly with the number of layers
    counts = [sum(p.numel() for p in MagepLinear(WeightSpaceSpec.mlp([3] + [4] * k + [2]), 2, 2).parameters()) for k in (2, 4, 8)]
    assert counts[2] - counts[1] == 2 * (counts[1] - counts[0])
    report = check_symmetry(MagepLinear(WeightSpaceSpec.mlp([3] + [4] * 8 + [2]), 1, 1).double(),
                            permutations([4] * 8) * positive_scalings([4] * 8),
                            WeightSpaceSpec.mlp([3] + [4] * 8 + [2]).randn(1, dtype=torch.float64))
    assert report.passed


def test_low_rank_terms_mix_as_their_dense_form() -> None:
    """MagepLinear mixes the hidden-to-hidden [bW] (and, with n_L = 1, [WW]) terms without forming them."""
    from nfkit.layers.magep_terms import LowRankTerm, PolynomialTerms, mix_low_rank

    torch.manual_seed(0)
    for sizes in ([2, 6, 5, 1], [3, 6, 5, 4, 2]):
        spec = WeightSpaceSpec.mlp(sizes, "relu")
        terms = PolynomialTerms(spec, 3).double()
        x = spec.randn(2, 3, dtype=torch.float64)
        dense, factored = terms.terms(x), terms.factored_terms(x)
        assert dense.keys() == factored.keys()
        found = 0
        for name in dense:
            for d, f in zip(dense[name], factored[name]):
                if isinstance(f, LowRankTerm):
                    found += 1
                    torch.testing.assert_close(f.dense(), d, rtol=1e-12, atol=1e-12)
                    mixer = torch.randn(4, 3, dtype=torch.float64)
                    expected = torch.matmul(mixer, d.flatten(2))
                    torch.testing.assert_close(mix_low_rank([mixer], [f]), expected, rtol=1e-12, atol=1e-12)
                else:
                    torch.testing.assert_close(f, d, rtol=0, atol=0)
        # 2-6-5-1: W2's [bW] and [WW] (n_L = 1); 3-6-5-4-2: the [bW] of W2 and W3, their [WW] formed (n_L = 2)
        assert found == 2
        layer = MagepLinear(spec, 3, 4).double()
        factored_terms = PolynomialTerms.factored_terms

        def formed(self, features):  # every term formed, as PolynomialTerms.terms gives them
            return {k: [t.dense() if isinstance(t, LowRankTerm) else t for t in v] for k, v in factored_terms(self, features).items()}

        with mock.patch.object(PolynomialTerms, "factored_terms", formed):
            reference = layer(x)
        assert layer(x).allclose(reference, rtol=1e-10, atol=1e-12)


def test_invariant_scale_gradient_is_exact_with_detached_maxima() -> None:
    """The per-layer maxima only keep the product in range; the scale's gradient ignores them exactly."""
    torch.manual_seed(1)
    spec = WeightSpaceSpec.mlp([3, 5, 4, 2], "relu")
    weights = [w.requires_grad_() for w in spec.randn(2, 2, dtype=torch.float64).weights]
    assert torch.autograd.gradcheck(lambda *ws: invariant_scale(list(ws)), weights)
