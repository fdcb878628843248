"""Evaluating a batch of networks from their weight-space features, all at once.

The function a network computes is invariant to every symmetry of its weights by definition, so
anything read off its outputs (probe features, renders) respects the whole group exactly.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from nfkit.errors import SpecMismatchError
from nfkit.spaces.features import WeightSpaceFeatures

__all__ = ["evaluate_networks"]


def evaluate_networks(features: WeightSpaceFeatures, inputs: torch.Tensor, channel: int = 0) -> torch.Tensor:
    """Run every network of ``features`` (its ``channel``) on ``inputs``.

    Dense layers are one batched matmul for all networks; conv layers one grouped convolution
    (network k's channels form group k), with each layer's stride, padding and dilation; the
    recorded reduction (global average pooling or flatten) sits between conv and dense layers.

    Shapes:
        features of batch B; ``inputs (N, n_0)`` for an MLP or ``(N, c_0, H, W)`` for a CNN, shared
        by every network → outputs ``(B, N, n_L)``.
    """
    spec = features.spec
    b = features.batch_size
    n = inputs.shape[0]
    layers = spec.layers
    h: torch.Tensor = inputs.to(features.dtype)
    conv = layers[0].kind == "conv"
    if conv:
        if inputs.dim() != 4 or inputs.shape[1] != layers[0].n_in:
            raise SpecMismatchError(f"a CNN with {layers[0].n_in} input channels needs inputs (N, {layers[0].n_in}, H, W), "
                                    f"got {tuple(inputs.shape)}")
        h = h.repeat(1, b, 1, 1)  # (N, B·c_0, H, W): every network sees every input
    else:
        if inputs.dim() != 2 or inputs.shape[1] != layers[0].n_in:
            raise SpecMismatchError(f"an MLP with {layers[0].n_in} inputs needs inputs (N, {layers[0].n_in}), got {tuple(inputs.shape)}")
        h = h.unsqueeze(0).expand(b, n, -1)
    for i, layer in enumerate(layers):
        w, bias = features.weights[i][:, channel], features.biases[i][:, channel]
        if layer.kind == "conv":
            padding = layer.padding if isinstance(layer.padding, str) else tuple(layer.padding)
            h = F.conv2d(h, w.reshape(-1, *w.shape[2:]), bias.reshape(-1), stride=layer.stride, padding=padding,
                         dilation=layer.dilation, groups=b)
        else:
            if conv and h.dim() == 4:  # the conv → dense transition: (N, B·c, H, W) → (B, N, c[·H·W])
                grid = h.reshape(n, b, -1, *h.shape[2:])
                h = grid.mean(dim=(3, 4)) if layer.input_reduction == "global_avg_pool" else grid.flatten(2)
                h = h.transpose(0, 1)
            h = torch.baddbmm(bias.unsqueeze(1), h, w.transpose(1, 2))
        if layer.activation is not None:
            h = layer.activation.module()(h)
    if h.dim() == 4:
        raise SpecMismatchError("the network ends in a conv layer; evaluate_networks expects a dense output layer")
    return h

