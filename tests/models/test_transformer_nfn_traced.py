"""transformer-nfn on traced networks: invariant to every encoder layer's heads × GL(d) × feed-forward
permutations and the rest's own permutations, not to the stream's permutation or to scalings."""

from __future__ import annotations

import pytest
import torch

from conftest import EncoderWithMLPHead, ViTWithMLPHead
from nfkit.errors import UnknownOptionError, UnsupportedArchitectureError
from nfkit.models import equivariant, invariant
from nfkit.nets.architectures import EncoderClassifier
from nfkit.nets.transformer import SmallTransformer
from nfkit.spaces import universal_spec_of
from nfkit.testing import assert_invariant, assert_not_equivariant

NETS = {
    "encoder-classifier": lambda: universal_spec_of(EncoderClassifier(3, 4, 2, 6, 2, layers=2)),
    "mlp-head": lambda: universal_spec_of(EncoderWithMLPHead(), torch.randn(2, 5, 3)),
    "vit": lambda: universal_spec_of(ViTWithMLPHead(), torch.randn(2, 5, 3)),
    # nfkit's own attention (separate projections), no residuals: the feed-forward reads the attention's output
    "small-transformer": lambda: universal_spec_of(SmallTransformer(d_model=8, heads=2, d_ff=12, blocks=2, patch=7, image=14)),
}


@pytest.mark.parametrize("net", list(NETS))
@pytest.mark.parametrize("options", [{}, {"statistics": True, "rank": 2}])
def test_invariant_to_its_group_and_not_to_a_larger_one(net: str, options: dict[str, object]) -> None:
    spec = NETS[net]()
    model = invariant("transformer-nfn", spec, 3, hidden_channels=[3, 3], **options).double()
    x = spec.randn(2, dtype=torch.float64)
    assert model(x).shape == (2, 3)
    assert spec.symmetry_group().contains(model.group)
    assert_invariant(model, model.group, x)
    for subgroup in model.group.factor_subgroups():  # permutations, GL(d) per head (condition up to 1e3), each alone
        assert_invariant(model, subgroup, x)
    control = model.group.negative_control()  # positive scaling of the feed-forward (ReLU) neurons
    assert control is not None
    assert_not_equivariant(model, control, x)
    assert_not_equivariant(model, spec.permutation_group(), x)  # the residual stream's permutation is not removed


def test_refusals() -> None:
    spec = NETS["encoder-classifier"]()
    with pytest.raises(UnsupportedArchitectureError, match="equivariant form"):
        equivariant("transformer-nfn", spec)
    with pytest.raises(UnknownOptionError, match="skip"):
        invariant("transformer-nfn", spec, 1, skip=True)
    with pytest.raises(UnsupportedArchitectureError, match="has none"):
        invariant("transformer-nfn", universal_spec_of(torch.nn.Sequential(torch.nn.Linear(2, 3))), 1)
