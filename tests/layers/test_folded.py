"""FoldedMixer and FoldedProjection: the factorised maps over folded neuron indices."""

import pytest
import torch

from nfkit.layers.folded import FoldedMixer, FoldedProjection, folded_mode
from nfkit.errors import InvalidOptionError


def test_mixer_is_the_linear_map_its_dense_matrix_describes():
    torch.manual_seed(0)
    mixer = FoldedMixer([(2, 7), (3, 1), (2, 4)], [(4, 7), (1, 1), (2, 4)], self_pairs=[(0, 0), (2, 2)], rank=3).double()
    parts = [torch.randn(5, c * f, 6, dtype=torch.float64) for c, f in mixer.in_segments]
    dense = mixer.dense()
    assert dense.shape == (4 * 7 + 1 + 2 * 4, 2 * 7 + 3 + 2 * 4)
    expected = torch.einsum("rs,bsm->brm", dense, torch.cat(parts, dim=1))
    assert torch.cat(mixer(parts), dim=1).allclose(expected, rtol=1e-12, atol=1e-12)


def test_per_entry_mixer_keeps_entries_apart_and_summaries_see_every_entry():
    torch.manual_seed(0)
    mixer = FoldedMixer([(2, 5)], [(2, 5)], self_pairs=[(0, 0)], rank=2).double()
    with torch.no_grad():
        mixer.entry_gains[0].normal_()
    dense = mixer.dense().reshape(2, 5, 2, 5)  # (c', φ', c, φ), channel-major folding
    with torch.no_grad():
        mixer.mixers[0].zero_()
    diagonal_only = mixer.dense().reshape(2, 5, 2, 5)
    off = ~torch.eye(5, dtype=torch.bool)
    assert diagonal_only[:, off.nonzero()[:, 0], :, off.nonzero()[:, 1]].abs().max() == 0
    assert dense[:, off.nonzero()[:, 0], :, off.nonzero()[:, 1]].abs().min() > 0


def test_parameters_grow_linearly_in_the_folded_size():
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    small, large = (FoldedMixer([(32, n)], [(32, n)], self_pairs=[(0, 0)]) for n in (100, 1000))
    assert count(large) - count(small) == 900 * (4 + 4 + 32)  # summaries, spreads and per-entry gains


def test_mixer_rejects_mismatched_self_pairs():
    with pytest.raises(ValueError, match="self pair"):
        FoldedMixer([(2, 3)], [(2, 4)], self_pairs=[(0, 0)])


def test_projection_summarises_each_channel_alike():
    projection = FoldedProjection(entries=10, rank=3)
    x = torch.randn(4, 2 * 10)
    y = projection(x)
    assert y.shape == (4, 6)
    assert y[:, 3:].allclose(projection(x[:, 10:]))


def test_mode_resolution():
    assert folded_mode("auto", 784) and not folded_mode("auto", 64)
    assert folded_mode("factorised", 2) and not folded_mode("exact", 10_000)
    with pytest.raises(InvalidOptionError):
        folded_mode("yes", 5)
