"""One group implementation: :class:`UniversalGroup` on named sets, with the dense and transformer groups
as views of it, each acting through its space's universal description."""

from __future__ import annotations

import pytest
import torch

from nfkit.errors import GroupMismatchError
from nfkit.groups import HiddenNeuronGroup, MonomialElement, UniversalElement, UniversalGroup, permutations, positive_scalings
from nfkit.groups.sets import NeuronSet
from nfkit.groups.transformer import TransformerFactor, TransformerGroup
from nfkit.groups.universal import trivial_on
from nfkit.spaces import AttentionBlockSpec, TransformerSpec, WeightSpaceSpec
from nfkit.spaces.universal_features import UniversalFeatures

SETS = (NeuronSet("a", 5, factors=frozenset({"scale"})), NeuronSet("b", 4), NeuronSet("r", 3, "gl"))
TRANSFORMER = TransformerSpec(
    (AttentionBlockSpec(6, 3, 2, 4, 8, residual=False, norm_affine=False), AttentionBlockSpec(6, 2, 3, 3, 5)),
    head=WeightSpaceSpec.mlp([6, 5, 2]),
)


def test_held_sets_keep_their_order_and_still_scale():
    group = UniversalGroup(SETS, still={"a"})
    g = group.sample(torch.Generator().manual_seed(0))
    src, d = g.permutations["a"]
    assert torch.equal(src, torch.arange(5)) and not torch.allclose(d, torch.ones(5, dtype=torch.float64))
    assert not torch.equal(g.permutations["b"][0], torch.arange(4))
    moving = UniversalGroup(SETS)
    assert moving.contains(group) and not group.contains(moving)
    assert group.negative_control() is not None and group.negative_control().contains(moving)  # type: ignore[union-attr]
    only_scales = UniversalGroup(SETS[:1], still={"a"})
    assert only_scales.name == "positive scaling" and moving.name == "permutations × positive scaling × GL"


def test_the_trivial_group_contains_only_itself_and_its_control_permutes():
    trivial = trivial_on(SETS)
    assert trivial.name == "trivial" and trivial.factor_subgroups() == [] and trivial.rescalings((0.5, 2.0)) is None
    g = trivial.sample(torch.Generator().manual_seed(1))
    assert g.allclose(trivial.identity())
    assert UniversalGroup(SETS).contains(trivial) and not trivial.contains(UniversalGroup(SETS))
    control = trivial.negative_control()
    assert control is not None and control.name == "permutations"


def test_bad_elements_are_refused_in_one_line():
    with pytest.raises(GroupMismatchError, match="'a'.*not a permutation"):
        UniversalElement({"a": (torch.tensor([0, 0]), torch.ones(2))})
    with pytest.raises(GroupMismatchError, match="non-zero"):
        UniversalElement({"a": (torch.tensor([1, 0]), torch.tensor([1.0, float("nan")]))})
    with pytest.raises(GroupMismatchError, match="square"):
        UniversalElement({}, {"r": torch.ones(2, 3)})
    with pytest.raises(GroupMismatchError, match="different neuron sets"):
        UniversalGroup(SETS).sample() @ UniversalGroup(SETS[:2]).sample()
    with pytest.raises(ValueError, match="condition"):
        UniversalGroup(SETS, condition=0.5)


def test_the_dense_group_is_the_universal_group_on_the_hidden_sets(generator):
    spec = WeightSpaceSpec.mlp([3, 5, 4, 2], "relu")
    group = spec.symmetry_group()
    assert isinstance(group, UniversalGroup) and [s.name for s in group.sets] == ["h1", "h2"]
    assert group.sets == spec.universal().sets
    g = group.sample(generator)
    assert isinstance(g, MonomialElement) and isinstance(g.inverse() @ g, MonomialElement)
    x = spec.randn(2, 3, generator=generator, dtype=torch.float64)
    through_universal = UniversalFeatures(spec.universal(), x.named_tensors()).transform(g)
    assert all(torch.equal(a, through_universal.named[k]) for k, a in g.act(x).named_tensors().items())
    # a plain universal element on the same sets acts the same way
    plain = UniversalElement(g.permutations)
    assert g.act(x).allclose(plain.act(x), rtol=0, atol=0)
    # held still without the permutation factor
    s = positive_scalings(spec.hidden_sizes).sample(generator)
    assert all(torch.equal(src, torch.arange(src.numel())) for src in s.sources)


def test_dense_features_need_an_element_on_every_hidden_layer(generator):
    spec = WeightSpaceSpec.mlp([3, 5, 4, 2])
    x = spec.randn(1, generator=generator)
    with pytest.raises(GroupMismatchError, match="hidden sizes"):
        permutations((5,)).sample(generator).act(x)
    with pytest.raises(GroupMismatchError, match="sizes"):
        UniversalElement({"h1": (torch.arange(5), torch.ones(5))}).act(x)
    with pytest.raises(GroupMismatchError, match="sizes"):
        TRANSFORMER.symmetry_group().sample(generator).act(x)
    assert HiddenNeuronGroup((5, 4)).identity().act(x).allclose(x, rtol=0, atol=0)


def _paper_action(g: UniversalElement, x: TransformerSpec, block: dict[str, torch.Tensor], l: int) -> dict[str, torch.Tensor]:
    """Tran et al. (ICLR 2025), Sec. 3, in the row-vector convention, written out with the paper's
    ``A_i = Gᵀ`` of the head moved to position ``i``: ``W_Q ↦ W_Q^{(τ(i))} A_i``, ``W_K ↦ W_K^{(τ(i))} A_i^{-⊤}``,
    ``W_V ↦ W_V^{(τ(i))} N_i``, ``W_O ↦ N_i⁻¹ W_O^{(τ(i))} P_O``, ``W_A ↦ P_Oᵀ W_A P_A``, ``W_B ↦ P_Aᵀ W_B``."""
    tau = g.permutations[f"blocks.{l}.heads"][0]
    a = g.matrices[f"blocks.{l}.query_key"][tau].transpose(-1, -2)
    n = g.matrices[f"blocks.{l}.value_output"][tau].transpose(-1, -2)
    stream = g.permutations[f"blocks.{l}.stream"][0]
    ffn = g.permutations[f"blocks.{l}.ffn"][0]
    inputs = g.permutations[f"blocks.{l}.inputs"][0]

    def rows(t: torch.Tensor) -> torch.Tensor:
        return t[:, :, tau][:, :, :, inputs]

    out = dict(block)
    out["query"] = torch.einsum("bchpk,hkl->bchpl", rows(block["query"]), a)
    out["key"] = torch.einsum("bchpk,hkl->bchpl", rows(block["key"]), torch.linalg.inv(a).transpose(-1, -2))
    out["value"] = torch.einsum("bchpk,hkl->bchpl", rows(block["value"]), n)
    out["query_bias"] = torch.einsum("bchk,hkl->bchl", block["query_bias"][:, :, tau], a)
    out["key_bias"] = torch.einsum("bchk,hkl->bchl", block["key_bias"][:, :, tau], torch.linalg.inv(a).transpose(-1, -2))
    out["value_bias"] = torch.einsum("bchk,hkl->bchl", block["value_bias"][:, :, tau], n)
    out["output"] = torch.einsum("hlk,bchkq->bchlq", torch.linalg.inv(n), block["output"][:, :, tau])[..., stream]
    out["output_bias"] = block["output_bias"][..., stream]
    out["ffn_in"] = block["ffn_in"][:, :, ffn][..., stream]
    out["ffn_in_bias"] = block["ffn_in_bias"][..., ffn]
    out["ffn_out"] = block["ffn_out"][..., ffn]
    return out


def test_the_transformer_action_is_the_papers_formula(generator):
    group = TransformerGroup(TRANSFORMER, set(TransformerFactor))
    g = group.sample(generator)
    x = TRANSFORMER.randn(2, 3, generator=generator, dtype=torch.float64)
    y = g.act(x)
    for l, (bx, by) in enumerate(zip(x.blocks, y.blocks)):
        expected = _paper_action(g, TRANSFORMER, bx, l)
        for name, t in expected.items():
            torch.testing.assert_close(by[name], t, rtol=1e-10, atol=1e-10, msg=f"block {l} {name}")
    head = g.permutations["head.h1"][0]
    torch.testing.assert_close(y.head.weights[0], x.head.weights[0][:, :, head])  # type: ignore[union-attr]
    torch.testing.assert_close(y.head.weights[1], x.head.weights[1][..., head])  # type: ignore[union-attr]
    assert torch.equal(y.named["blocks.1.norm1_weight"], x.named["blocks.1.norm1_weight"])


def test_a_gl_factor_alone_leaves_the_heads_in_place(generator):
    group = TRANSFORMER.symmetry_group().restrict({TransformerFactor.QUERY_KEY_GL})
    g = group.sample(generator)
    assert set(g.matrices) == {"blocks.0.query_key", "blocks.1.query_key"}
    assert all(torch.equal(g.permutations[f"blocks.{l}.heads"][0], torch.arange(b.heads)) for l, b in enumerate(TRANSFORMER.blocks))
    x = TRANSFORMER.randn(1, dtype=torch.float64, generator=generator)
    y = g.act(x)
    assert torch.equal(y.named["blocks.0.value"], x.named["blocks.0.value"])
    assert not torch.allclose(y.named["blocks.0.query"], x.named["blocks.0.query"])


def _specs():
    from nfkit.nets import RecurrentClassifier
    from nfkit.spaces import universal_spec_of

    return {
        "dense": WeightSpaceSpec.mlp([3, 5, 4, 2], "tanh"),
        "transformer": TRANSFORMER,
        "traced": universal_spec_of(RecurrentClassifier(5, 4, 3, tokens=False)),
    }


@pytest.mark.parametrize("kind", ["dense", "transformer", "traced"])
def test_every_spec_offers_one_interface(kind, generator):
    from nfkit.spaces import NamedFeatures

    spec = _specs()[kind]
    full, perms, trivial = spec.symmetry_group(), spec.permutation_group(), spec.trivial_group()
    assert full.contains(perms) and perms.contains(trivial) and not trivial.contains(perms)
    assert isinstance(full, UniversalGroup) and perms.name.startswith("heads" if kind == "transformer" else "permutations")
    x = spec.randn(2, 3, generator=generator, dtype=torch.float64)
    assert isinstance(x, NamedFeatures) and list(x.named) == list(spec.tensor_shapes())
    assert spec.unflatten(x.flatten()).allclose(x, rtol=0, atol=0)
    g = full.sample(generator)
    moved = g.act(x)
    # the container's action is the universal description's, tensor by tensor
    through_universal = UniversalFeatures(spec.universal(), x.named).transform(g)
    assert all(torch.equal(moved.named[k], t) for k, t in through_universal.named.items())
    assert g.inverse().act(moved).allclose(x, rtol=1e-9, atol=1e-9)
    assert not moved.allclose(x, rtol=1e-3)
    assert (x * 2 - x).allclose(x) and type(x + x) is type(x) and len(x[1:]) == 1
