"""Probe features: a network's outputs at probe inputs (ProbeGen, Kahana et al., ICLR 2025; the NG-64
probing of Kofinas et al., ICLR 2024).

A network's function does not change under any symmetry of its weights, so its values at fixed
inputs are invariant to the whole group, exactly (they are what the weights mean). For an INR the
natural probes are a coordinate grid, and the probe features are the rendered image; otherwise the
probes are learned inputs.
"""

from __future__ import annotations

from typing import final

import torch
from torch import nn

from nfkit.spaces.features import WeightSpaceFeatures
from nfkit.spaces.functional import evaluate_networks
from nfkit.spaces.render import coordinate_grid
from nfkit.spaces.spec import WeightSpaceSpec

__all__ = ["ProbeFeatures", "smallest_input_size"]


def smallest_input_size(spec: WeightSpaceSpec) -> int:
    """The side of the smallest square image a CNN's convolutions can process (1 for an MLP).

    Walks the conv layers backwards from a 1×1 output: a layer with kernel ``k``, stride ``s``,
    padding ``p`` and dilation ``d`` needs ``(out - 1)·s + d·(k - 1) + 1 - 2p`` input pixels per side
    (``"same"`` padding keeps the size, ``"valid"`` pads nothing).

    Example:
        >>> from nfkit.spaces import LayerSpec, WeightSpaceSpec
        >>> def conv(n_in): return LayerSpec("conv", 16, n_in, (3, 3), stride=(2, 2), padding=(0, 0), dilation=(1, 1))
        >>> spec = WeightSpaceSpec((conv(1), conv(16), conv(16), LayerSpec("dense", 10, 16)))
        >>> smallest_input_size(spec)  # 15 → 7 → 3 → 1
        15
    """
    need = 1
    for layer in reversed([l for l in spec.layers if l.kind == "conv"]):
        sides = []
        for axis, kernel in enumerate(layer.kernel):
            stride = layer.stride[axis] if layer.stride else 1
            dilation = layer.dilation[axis] if layer.dilation else 1
            if layer.padding == "same":
                sides.append(need)
                continue
            padding = 0 if isinstance(layer.padding, str) or not layer.padding else layer.padding[axis]  # "valid": none
            sides.append((need - 1) * stride + dilation * (kernel - 1) + 1 - 2 * padding)
        need = max(1, *sides)
    return need


@final
class ProbeFeatures(nn.Module):
    """Every network's outputs at ``N`` probe inputs, flattened.

    Args:
        spec: the networks' weight space.
        grid: for networks on 2-D coordinates (INRs): probe a fixed ``grid × grid`` coordinate grid
            over ``[-1, 1]²`` (the render). 0: use learned probes.
        probes: how many learned probe inputs (initialised standard normal).
        input_size: the side of a CNN's square probe images (a spec does not record the data's);
            default: the smallest its convolutions accept (:func:`smallest_input_size`), at least 8.

    Shapes:
        features ``(B, C, …)`` (channel 0 is the network) → ``(B, N · n_L)``.
    """

    def __init__(self, spec: WeightSpaceSpec, *, grid: int = 0, probes: int = 64, input_size: int | None = None) -> None:
        super().__init__()
        first = spec.layers[0]
        if grid > 0:
            if first.kind != "dense" or first.n_in != 2:
                raise ValueError(f"grid probes are for networks on 2-D coordinates; this one takes {first.n_in} inputs")
            self.register_buffer("inputs", coordinate_grid(grid, grid))
        else:
            smallest = smallest_input_size(spec)
            if input_size is None:
                input_size = max(8, smallest)
            if input_size < smallest:
                raise ValueError(f"input_size {input_size} is too small for this CNN: its convolutions need images of "
                                 f"at least {smallest}×{smallest}")
            shape = (first.n_in,) if first.kind == "dense" else (first.n_in, input_size, input_size)
            self.inputs = nn.Parameter(torch.randn(probes, *shape))
        self.outputs = spec.layers[-1].n_out
        self.grid = grid

    def num_outputs(self, channels: int) -> int:
        """``N · n_L`` (probe values of the network in channel 0)."""
        return int(self.inputs.shape[0]) * self.outputs

    def forward(self, features: WeightSpaceFeatures) -> torch.Tensor:
        return evaluate_networks(features, self.inputs).flatten(1)
