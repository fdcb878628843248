"""mix_channels equals ``mixer @ x`` in value and gradient, on both of its paths."""

import pytest
import torch

from nfkit.layers.mixing import mix_channels


@pytest.mark.parametrize("rows, positions", [(3, 7), (9, 4)], ids=["bmm-path", "matmul-path"])
def test_values_and_gradients_equal_matmul(rows, positions):
    generator = torch.Generator().manual_seed(0)
    mixer = torch.randn(rows, 5, dtype=torch.float64, generator=generator)
    x = torch.randn(4, 5, positions, dtype=torch.float64, generator=generator)
    weights = torch.randn(4, rows, positions, dtype=torch.float64, generator=generator)
    results = []
    for f in (mix_channels, torch.matmul):
        m, y = mixer.clone().requires_grad_(), x.clone().requires_grad_()
        out = f(m, y)
        (out * weights).sum().backward()
        results.append((out.detach(), m.grad, y.grad))
    for a, b in zip(*results):
        assert torch.allclose(a, b, rtol=1e-12, atol=1e-12)


def test_a_row_slice_of_a_mixer_is_mixed_as_itself():
    mixer, x = torch.randn(6, 3), torch.randn(2, 3, 10)
    assert torch.allclose(mix_channels(mixer[2:4], x), mixer[2:4] @ x, atol=1e-6)
