"""Universal weight spaces derived by tracing: round trips, derived groups checked on the real modules
(float64, random elements, scales 1e-3..1e3 and signs separately), and negative controls."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from nfkit.errors import SpecMismatchError, UnsupportedModuleError
from nfkit.groups.universal import UniversalElement, UniversalGroup
from nfkit.nets import mlp, siren, small_cnn_zoo
from nfkit.nets.lora import LoRALinear
from nfkit.nets.recurrent import RecurrentClassifier
from nfkit.nets.resnet import SmallResNet
from nfkit.nets.transformer import SmallTransformer
from nfkit.spaces import spec_of
from nfkit.spaces.trace import universal_load_into, universal_spec_of, universal_weights_of
from nfkit.spaces.universal import SCALE, SIGN, UniversalSpec, universal_spec


class _Vit(nn.Module):
    """A pre-norm MLP block on a token stream: ``x + fc₂(gelu(fc₁(LN x)))`` twice, then a head."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Linear(4, 6)
        self.norm1, self.fc1, self.fc2 = nn.LayerNorm(6), nn.Linear(6, 8), nn.Linear(8, 6)
        self.head = nn.Linear(6, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.embed(x)
        h = h + self.fc2(torch.nn.functional.gelu(self.fc1(self.norm1(h))))
        return self.head(h[:, 0])


class _AttentionBlock(nn.Module):
    """A pre-norm ViT block with attention: ``x + attn(LN x)``, ``x + fc₂(gelu(fc₁(LN x)))``, then a head on the mean token."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Linear(4, 6)
        self.norm1, self.attn = nn.LayerNorm(6), nn.MultiheadAttention(6, 2, batch_first=True)
        self.norm2, self.fc1, self.fc2 = nn.LayerNorm(6), nn.Linear(6, 8), nn.Linear(8, 6)
        self.head = nn.Linear(6, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.embed(x)
        n = self.norm1(h)
        h = h + self.attn(n, n, n, need_weights=False)[0]
        h = h + self.fc2(torch.relu(self.fc1(self.norm2(h))))
        return self.head(h.mean(dim=1))


class _Encoder(nn.Module):
    def __init__(self, norm_first: bool) -> None:
        super().__init__()
        self.embed = nn.Linear(4, 6)
        self.layer = nn.TransformerEncoderLayer(6, 2, 10, dropout=0.0, batch_first=True, norm_first=norm_first)
        self.head = nn.Linear(6, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.layer(self.embed(x)).mean(dim=1))


def _lora_mlp() -> nn.Module:
    return nn.Sequential(LoRALinear(5, 6, rank=2), nn.ReLU(), LoRALinear(6, 6, rank=3), nn.Tanh(), nn.Linear(6, 2))


CASES = {
    "mlp-relu": (lambda: mlp((5, 7, 6, 3)), lambda: torch.randn(4, 5)),
    "siren": (lambda: siren(2, 8, 1, w0=3.0), lambda: torch.randn(4, 2)),
    "cnn": (lambda: small_cnn_zoo(nn.Tanh, padding=1), lambda: torch.randn(3, 1, 8, 8)),
    "resnet": (lambda: SmallResNet(width=4), lambda: torch.randn(3, 1, 8, 8)),
    "gru": (lambda: RecurrentClassifier(11, 6, 4, "gru"), lambda: torch.randint(0, 11, (3, 5))),
    "lstm": (lambda: RecurrentClassifier(5, 6, 4, "lstm", tokens=False), lambda: torch.randn(3, 5, 5)),
    "lora": (_lora_mlp, lambda: torch.randn(4, 5)),
    "prenorm-block": (_Vit, lambda: torch.randn(3, 2, 4)),
    "vit-block": (_AttentionBlock, lambda: torch.randn(3, 5, 4)),
    "encoder-prenorm": (lambda: _Encoder(True), lambda: torch.randn(3, 5, 4)),
    "encoder-postnorm": (lambda: _Encoder(False), lambda: torch.randn(3, 5, 4)),
    # the Small Transformer Zoo's layout: nfkit's own attention, patch embedding, fixed positions, no residuals
    "small-transformer": (lambda: SmallTransformer(d_model=8, heads=2, d_ff=12, blocks=2, patch=7, image=14),
                          lambda: torch.randn(3, 1, 14, 14)),
    "small-transformer-text": (lambda: SmallTransformer(d_model=8, heads=4, d_ff=12, vocab=20, max_len=6, classes=3,
                                                        attention_bias=True), lambda: torch.randint(0, 20, (3, 5))),
}


def _build(name: str) -> tuple[nn.Module, torch.Tensor]:
    torch.manual_seed(0)
    make, inputs = CASES[name]
    module = make().double().eval()
    with torch.no_grad():  # non-trivial adapters, norm affines and statistics
        for key, p in list(module.named_parameters()) + list(module.named_buffers()):
            if p.is_floating_point():
                p.copy_(torch.rand_like(p) + 0.5 if "running_var" in key else torch.randn_like(p) * 0.5)
    return module, inputs().double() if inputs().is_floating_point() else inputs()


def _spec(module: nn.Module) -> UniversalSpec:
    example = CASES["prenorm-block"][1]().double() if isinstance(module, _Vit) else None
    return universal_spec_of(module, example)


def _moved(module: nn.Module, g: UniversalElement) -> nn.Module:
    spec = _spec(module)
    return universal_load_into(copy.deepcopy(module), g.act(universal_weights_of(module, spec)))


def _error(module: nn.Module, x: torch.Tensor, g: UniversalElement) -> float:
    with torch.no_grad():
        expected = module(x)
        return float((_moved(module, g)(x) - expected).abs().max() / expected.abs().max())


@pytest.mark.parametrize("name", list(CASES))
def test_round_trip_is_exact(name: str) -> None:
    module, _ = _build(name)
    features = universal_weights_of(module, _spec(module))
    target = copy.deepcopy(module)
    with torch.no_grad():
        for p in target.parameters():
            p.zero_()
    universal_load_into(target, features)
    for (key, a), b in zip(module.state_dict().items(), target.state_dict().values()):
        assert torch.equal(a, b), key


@pytest.mark.parametrize("name", list(CASES))
def test_derived_group_preserves_the_function(name: str) -> None:
    module, x = _build(name)
    group = _spec(module).symmetry_group()
    generator = torch.Generator().manual_seed(1)
    for subgroup in [group, *group.factor_subgroups()]:
        for _ in range(3):
            assert _error(module, x, subgroup.sample(generator)) < 1e-9, subgroup.name


@pytest.mark.parametrize("name", [n for n in CASES if n != "siren"])
def test_negative_control_breaks_the_function(name: str) -> None:
    module, x = _build(name)
    control = _spec(module).symmetry_group().negative_control()
    assert control is not None
    generator = torch.Generator().manual_seed(2)
    assert max(_error(module, x, control.sample(generator)) for _ in range(3)) > 1e-3


def test_siren_negative_control_is_scaling() -> None:
    module, x = _build("siren")
    control = _spec(module).symmetry_group().negative_control()
    assert control is not None and "positive scaling" in control.name
    assert _error(module, x, control.sample(torch.Generator().manual_seed(0))) > 1e-3


def test_residual_additions_tie_sets_and_untying_breaks_the_function() -> None:
    module, x = _build("resnet")
    spec = universal_spec_of(module)
    names = {s.name for s in spec.sets}
    # the stem's channels run through block1's sum; block2's conv2 is tied to its projection shortcut
    assert names == {"stem", "block1.conv1", "block2.conv1", "block2.conv2"}
    assert all(not s.factors for s in spec.sets)  # batch norms stop scaling and signs
    untied = UniversalGroup(spec.untied().sets)
    assert len(untied.sets) == 6  # stem, block1.conv1, block1.conv2, block2.conv1, block2.conv2, block2.shortcut.0
    generator = torch.Generator().manual_seed(3)
    # apply the untied group to the untied labels of the same tensors
    features = universal_weights_of(module, spec)
    from nfkit.spaces.universal_features import UniversalFeatures

    loose = UniversalFeatures(spec.untied(), features.named)
    with torch.no_grad():
        moved = universal_load_into(copy.deepcopy(module), UniversalFeatures(spec, untied.sample(generator).act(loose).named))
        assert (moved(x) - module(x)).abs().max() > 1e-3


def test_groups_match_the_dense_specs() -> None:
    for module in (mlp((3, 6, 5, 2)), siren(2, 6, 1), small_cnn_zoo(nn.ReLU, padding=1), mlp((3, 4, 2), nn.GELU)):
        derived = universal_spec_of(module)
        dense = universal_spec(spec_of(module))  # type: ignore[arg-type]
        assert [(s.size, s.factors) for s in derived.sets] == [(s.size, s.factors) for s in dense.sets]
        assert [t.shape for t in derived.tensors] == [t.shape for t in dense.tensors]


def test_recurrent_gates() -> None:
    spec = universal_spec_of(RecurrentClassifier(7, 5, 3, "gru"))
    hidden = spec.neuron_set("recurrent.hidden0")
    assert hidden.factors == frozenset({SIGN})
    assert spec.neuron_set("embedding").factors == frozenset({SCALE, SIGN})
    roles = {t.name: t.axes[0].role for t in spec.tensors if t.name.startswith("recurrent.weight_hh")}  # type: ignore[union-attr]
    assert roles == {"recurrent.weight_hh_l0[r]": "tied", "recurrent.weight_hh_l0[z]": "tied", "recurrent.weight_hh_l0[n]": "out"}
    assert spec.tensor("recurrent.weight_hh_l0[n]").axes[1].set == "recurrent.hidden0"  # type: ignore[union-attr]


def test_lora_rank_is_gl() -> None:
    spec = universal_spec_of(_lora_mlp())
    assert spec.neuron_set("0.rank").kind == "gl" and spec.neuron_set("2.rank").size == 3
    assert "GL" in spec.symmetry_group().name


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: nn.Sequential(nn.Conv2d(2, 4, 3, groups=2)), "grouped"),
        (lambda: nn.Sequential(nn.RNN(3, 4)), "RNN"),
        (lambda: nn.Sequential(nn.GRU(3, 4, bidirectional=True)), "bidirectional"),
        (lambda: nn.Sequential(nn.GRU(3, 4, num_layers=2)), "mix several neuron sets"),
        (lambda: nn.Sequential(nn.Linear(3, 4), nn.Softmax(dim=-1)), "Softmax"),
    ],
)
def test_unsupported_operations_are_named(make, message: str) -> None:
    with pytest.raises(UnsupportedModuleError, match=message):
        universal_spec_of(make())


def test_bare_leaf_modules_keep_their_names() -> None:
    torch.manual_seed(0)
    encoder = nn.TransformerEncoder(nn.TransformerEncoderLayer(6, 2, 8, dropout=0.0, batch_first=True), 2,
                                    enable_nested_tensor=False).double().eval()
    spec = universal_spec_of(encoder)
    assert {t.parameter for t in spec.tensors} == set(encoder.state_dict())
    assert spec.neuron_set("layers.1.self_attn.heads").size == 2
    x = torch.randn(3, 4, 6, dtype=torch.float64)
    # the stream is the encoder's input and output: fixed; heads, GL blocks and FFN units still act
    g = spec.symmetry_group().sample(torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert (_moved(encoder, g)(x) - encoder(x)).abs().max() < 1e-9
    gru = nn.GRU(3, 4, batch_first=True)
    assert {t.parameter for t in universal_spec_of(gru).tensors} == set(gru.state_dict())


def test_non_finite_weights_are_refused() -> None:
    from nfkit.errors import NonFiniteWeightsError

    net = RecurrentClassifier(5, 4, 3, tokens=False)
    with torch.no_grad():
        net.recurrent.weight_hh_l0[2, 1] = float("nan")
    with pytest.raises(NonFiniteWeightsError, match="weight_hh_l0"):
        universal_weights_of(net)


def test_mismatched_module_is_refused() -> None:
    features = universal_weights_of(mlp((3, 4, 2)))
    with pytest.raises(SpecMismatchError):
        universal_load_into(mlp((3, 5, 2)), features)
ATTENTION = ["vit-block", "encoder-prenorm", "encoder-postnorm"]


@pytest.mark.parametrize("name", ATTENTION)
def test_attention_groups(name: str) -> None:
    module, x = _build(name)
    spec = universal_spec_of(module)
    kinds = {s.name: (s.kind, s.blocks) for s in spec.sets}
    heads = [k for k in kinds if k.endswith(".heads")]
    assert len(heads) == 1 and kinds[heads[0]] == ("permutation", "")
    assert sum(1 for kind, blocks in kinds.values() if kind == "gl" and blocks == heads[0]) == 2
    # the stream (embedding's set) carries permutations only: layer norms stop scaling and signs
    assert spec.neuron_set("embed").factors == frozenset()
    group = spec.symmetry_group()
    generator = torch.Generator().manual_seed(4)
    for subgroup in [group, *group.factor_subgroups()]:
        for _ in range(2):
            assert _error(module, x, subgroup.sample(generator)) < 1e-9, subgroup.name
    element = group.sample(generator)
    assert (element @ element.inverse()).allclose(group.identity())


def test_small_transformer_carries_the_transformer_views_group_and_more() -> None:
    """Traced, the zoo's network has every factor of its transformer view (heads, GL(d_k), GL(d_v), FFN, the
    attention-output permutation), plus what that view leaves out: the FFN's positive scaling and the
    permutation between one block's output and the next block's input. The stream the fixed position table
    is added to is fixed."""
    net = SmallTransformer(d_model=8, heads=2, d_ff=12, blocks=2, patch=7, image=14)
    view = spec_of(net)
    sets = {s.name: s for s in universal_spec_of(net).sets}
    for l, block in enumerate(view.blocks):  # type: ignore[union-attr]
        p = f"encoder.{l}"
        assert (sets[f"{p}.attention.heads"].size, sets[f"{p}.attention.query_key"].size) == (block.heads, block.d_k)
        assert sets[f"{p}.attention.value_output"].kind == "gl" and sets[f"{p}.attention"].size == block.d_model
        assert sets[f"{p}.fc1"].factors == frozenset({SCALE}) and f"{p}.fc2" in sets
    assert "embedding" not in sets


def test_a_residual_small_transformer_has_a_fixed_stream() -> None:
    torch.manual_seed(0)
    net = SmallTransformer(d_model=8, heads=2, d_ff=12, blocks=2, patch=7, image=14, residual=True, norm_affine=True)
    net = net.double().eval()
    spec = universal_spec_of(net)
    assert not any(s.name in ("embedding", "encoder.0.attention", "encoder.0.fc2") for s in spec.sets)
    x = torch.randn(2, 1, 14, 14, dtype=torch.float64)
    group = spec.symmetry_group()
    generator = torch.Generator().manual_seed(5)
    for subgroup in [group, *group.factor_subgroups()]:
        assert _error(net, x, subgroup.sample(generator)) < 1e-9, subgroup.name
    with pytest.raises(ValueError, match="exceed max_len"):
        SmallTransformer(d_model=8, heads=2, d_ff=12, vocab=20, max_len=6)(torch.zeros(1, 7, dtype=torch.long))
