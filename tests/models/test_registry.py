"""Every registered model declares its group and is checked; families added later are covered automatically."""

import pytest
import torch

import nfkit.models as models
from nfkit.cli.check import ARCHITECTURES, run_checks
from nfkit.errors import NonFiniteWeightsError, SpecMismatchError, UnsupportedArchitectureError
from nfkit.groups import HiddenNeuronGroup
from nfkit.groups.transformer import TransformerGroup
from nfkit.spaces import AttentionBlockSpec, TransformerSpec, WeightSpaceSpec, spec_of


@pytest.mark.parametrize("name", models.available())
def test_every_registered_model_passes_the_symmetry_check(name):
    rows = run_checks([name], samples=2)
    applicable = [r for r in rows if r.applicable]
    assert len(applicable) >= 4, f"{name} was checked on too few architectures"
    failed = [f"{r.form} on {r.architecture}: {r.problem}" for r in rows if not r.passed]
    assert not failed, "\n".join(failed)
    assert all(r.control_error is not None for r in applicable), "every model needs a negative control"


@pytest.mark.parametrize("name", models.available())
def test_every_family_accepts_hidden_channels_and_in_channels(name):
    fam = models.family(name)
    spec = spec_of(ARCHITECTURES["mlp-relu" if "dense" in fam.spaces else "transformer-zoo"]())
    for form in fam.forms():
        build = models.invariant if form == "invariant" else models.equivariant
        model = build(name, spec, 3, hidden_channels=[5, 6], in_channels=2)
        assert isinstance(model.group, HiddenNeuronGroup if "dense" in fam.spaces else TransformerGroup)
        out = model(spec.randn(4, 2))
        if form == "invariant":
            assert out.shape == (4, 3)
        else:
            assert out.channels == 3 and out.batch_size == 4
        (out if form == "invariant" else out.flatten()).sum().backward()


@pytest.mark.parametrize("name", models.available("equivariant"))
def test_equivariant_outputs_stay_in_the_weight_space(name):
    if "dense" not in models.family(name).spaces:
        spec = TransformerSpec((AttentionBlockSpec(4, 2, 2, 2, 6, attention_bias=False, ffn_bias=False),))
        out = models.equivariant(name, spec, hidden_channels=[4])(spec.randn(2))
        assert all(bool((out.named[k] == 0).all()) for k in spec.zero_tensors()) and spec.zero_tensors()
        return
    spec = WeightSpaceSpec.mlp([3, 4, 2], bias=False)
    out = models.equivariant(name, spec, hidden_channels=[4])(spec.randn(2))
    assert all(bool((b == 0).all()) for b in out.biases)


def test_registry_errors_are_clear():
    spec = WeightSpaceSpec.mlp([3, 4, 2])
    with pytest.raises(KeyError, match="no model family .nope.; available: .*hnp"):
        models.invariant("nope", spec)
    with pytest.raises(TypeError, match="does not accept widths; accepted: in_channels, hidden_channels"):
        models.invariant("np", spec, widths=[3])
    with pytest.raises(TypeError, match="does not accept variant"):
        models.invariant("np", spec, variant="hnp")
    with pytest.raises(ValueError, match="no equivariant form"):
        models.equivariant("statnn", spec)
    with pytest.raises(TypeError, match="WeightSpaceSpec"):
        models.invariant("np", "mlp")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="already registered"):
        models.register(models.family("np"))


@pytest.mark.parametrize("name", models.available())
def test_bad_inputs_give_clear_errors(name):
    if "dense" not in models.family(name).spaces:
        return _bad_transformer_inputs(name)
    spec = WeightSpaceSpec.mlp([3, 4, 2])
    model = models.invariant(name, spec, hidden_channels=[4]) if "invariant" in models.family(name).forms() else None
    assert model is not None
    with pytest.raises(SpecMismatchError, match="do not match"):
        model(WeightSpaceSpec.mlp([3, 5, 2]).randn(1))
    with pytest.raises(SpecMismatchError, match="input channels"):
        model(spec.randn(1, 2))
    x = spec.randn(2)
    with pytest.raises(NonFiniteWeightsError, match="layer 1 weight"):
        model(x.with_tensors([x.weights[0] * float("nan"), x.weights[1]], x.biases))
    with pytest.raises(TypeError, match="WeightSpaceFeatures"):
        model(torch.zeros(2, 3))


def _bad_transformer_inputs(name):
    spec = TransformerSpec((AttentionBlockSpec(4, 2, 2, 2, 6),))
    model = models.invariant(name, spec, hidden_channels=[3])
    with pytest.raises(SpecMismatchError, match="do not match"):
        model(TransformerSpec((AttentionBlockSpec(4, 2, 2, 2, 5),)).randn(1))
    with pytest.raises(SpecMismatchError, match="input channels"):
        model(spec.randn(1, 2))
    x = spec.randn(2)
    with pytest.raises(NonFiniteWeightsError, match="blocks.0.key contains NaN"):
        model(x.with_tensors([t * float("nan") if k == "blocks.0.key" else t for k, t in x.named.items()]))
    with pytest.raises(TypeError, match="TransformerFeatures"):
        model(torch.zeros(2, 3))
    with pytest.raises(UnsupportedArchitectureError, match="reads transformer and universal weight spaces"):
        models.invariant(name, WeightSpaceSpec.mlp([3, 4, 2]))


def test_negative_control_group_adds_the_first_missing_factor():
    perms = HiddenNeuronGroup((3,), [])
    assert perms.negative_control().name == "permutations"
    full = perms.negative_control().negative_control().negative_control()
    assert full.name == "permutations × positive scaling × sign flips"
    assert full.negative_control() is None
