import pytest
import torch
from torch.utils.data import DataLoader

from nfkit.data import Normalization, SymmetryAugmentation, WeightDataset, collate
from nfkit.errors import SpecMismatchError
from nfkit.groups import permutations, positive_scalings, sign_flips
from nfkit.spaces import WeightSpaceSpec
from nfkit.testing import assert_equivariant

SPEC = WeightSpaceSpec.mlp([3, 5, 4, 2])


def test_loader_batches_features_and_labels():
    data = WeightDataset(SPEC.randn(10), torch.arange(10.0))
    x, y = next(iter(DataLoader(data, batch_size=4, collate_fn=collate)))
    assert len(x) == 4 and x.spec == SPEC and y.tolist() == [0.0, 1.0, 2.0, 3.0]
    assert len(data.subset([1, 5])) == 2
    with pytest.raises(SpecMismatchError, match="10 networks but 9 labels"):
        WeightDataset(SPEC.randn(10), torch.arange(9.0))


def test_augmentation_applies_group_elements():
    group = permutations(SPEC.hidden_sizes) * positive_scalings(SPEC.hidden_sizes)
    features = SPEC.randn(1, dtype=torch.float64)
    data = WeightDataset(features, torch.zeros(1), SymmetryAugmentation(group, torch.Generator().manual_seed(0)))
    a, _ = data[0]
    b, _ = data[0]
    assert not a.allclose(features) and not a.allclose(b)
    # the output layer is never acted on, so its bias is unchanged
    assert torch.equal(a.biases[-1], features.biases[-1])


@pytest.mark.parametrize(
    "group",
    [
        permutations(SPEC.hidden_sizes),
        permutations(SPEC.hidden_sizes) * positive_scalings(SPEC.hidden_sizes),
        permutations(SPEC.hidden_sizes) * sign_flips(SPEC.hidden_sizes),
    ],
    ids=["perm", "perm×scale", "perm×sign"],
)
def test_normalization_commutes_with_its_group(group):
    train = SPEC.randn(20, dtype=torch.float64) * 3 + 1
    norm = Normalization.fit(train, group)
    assert_equivariant(norm, group, SPEC.randn(3, dtype=torch.float64))
    if group != permutations(SPEC.hidden_sizes):
        assert set(norm.shifts) == {0.0}
    normalized = norm(train)
    assert all(abs(t.square().mean().item() - 1) < 0.5 for t in normalized.tensors())


def test_centering_would_break_scaling():
    norm = Normalization.fit(SPEC.randn(20, dtype=torch.float64) + 1, permutations(SPEC.hidden_sizes))
    with pytest.raises(AssertionError):
        assert_equivariant(norm, positive_scalings(SPEC.hidden_sizes), SPEC.randn(3, dtype=torch.float64))


def test_augmentation_draws_from_the_networks_group_not_the_models():
    """An invariant model is exactly invariant to its own group; augmenting with it would change nothing."""
    import nfkit.models
    from nfkit.data.dataset import AUGMENT_SCALE_RANGE, network_augmentation
    from nfkit.groups import Factor
    from nfkit.spaces import WeightSpaceSpec

    siren = WeightSpaceSpec.mlp([2, 6, 6, 1], "sine")
    augmentation = network_augmentation(siren, seed=0)
    assert augmentation.group.factors == {Factor.PERMUTATION, Factor.SIGN_FLIP}
    relu = WeightSpaceSpec.mlp([2, 6, 6, 1], "relu")
    assert network_augmentation(relu).group.scale_range == AUGMENT_SCALE_RANGE
    # statnn declares permutations only: the sign flips the augmentation adds change what it sees
    model = nfkit.models.invariant("statnn", siren).double().eval()
    x = siren.randn(1, dtype=torch.float64)
    with torch.no_grad():
        outputs = {round(float(model(network_augmentation(siren, seed=s)(x)).sum()), 9) for s in range(4)}
    assert len(outputs) > 1
