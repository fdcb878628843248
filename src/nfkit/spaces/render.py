"""Evaluating SIREN weight spaces as functions: the rendering an INR's weights stand for.

A SIREN (Sitzmann et al. 2020) with weights ``W⁽ⁱ⁾, b⁽ⁱ⁾`` maps a coordinate ``x`` to
``W⁽ᴸ⁾ sin(ω₀(… sin(ω₀(W⁽¹⁾x + b⁽¹⁾)) …)) + b⁽ᴸ⁾``. Rendering a batch of them on a grid is what
INR tasks compare against, and what a model that decodes SIREN weights is trained through.
"""

from __future__ import annotations

import torch

from nfkit.errors import SpecMismatchError
from nfkit.spaces.features import WeightSpaceFeatures

__all__ = ["W0", "coordinate_grid", "render_sirens", "is_siren"]

#: The SIREN frequency ω₀ of the published INR sets and of nfkit's INR zoos.
W0 = 30.0


def coordinate_grid(height: int, width: int) -> torch.Tensor:
    """Pixel centres' coordinates over ``[-1, 1]²``, row-major: ``(H·W, 2)``.

    Example:
        >>> coordinate_grid(2, 2).tolist()
        [[-1.0, -1.0], [-1.0, 1.0], [1.0, -1.0], [1.0, 1.0]]
    """
    ys, xs = torch.linspace(-1, 1, height), torch.linspace(-1, 1, width)
    return torch.stack(torch.meshgrid(ys, xs, indexing="ij"), dim=-1).reshape(-1, 2)


def is_siren(features_spec: object) -> bool:
    """Whether a weight-space spec is a dense network on 2-D coordinates with sine activations."""
    spec = features_spec
    return (
        getattr(spec, "neuron_sizes", (0,))[0] == 2
        and all(layer.kind == "dense" for layer in getattr(spec, "layers", ()))
        and all(a.name == "sine" for a in getattr(spec, "hidden_activations", ()))
    )


def render_sirens(features: object, coords: torch.Tensor, w0: float = W0) -> torch.Tensor:
    """Evaluate a batch of SIRENs (one channel) at ``coords``.

    Shapes:
        features of batch B, one channel; ``coords (P, 2)`` → ``(B, P, out)``.
    """
    if not isinstance(features, WeightSpaceFeatures):
        raise SpecMismatchError(f"only MLP weight spaces render as SIRENs, got {type(features).__name__}")
    w = [t[:, 0] for t in features.weights]
    b = [t[:, 0] for t in features.biases]
    h = coords.to(w[0]).expand(len(features), *coords.shape)
    for i in range(len(w)):
        h = torch.baddbmm(b[i].unsqueeze(1), h, w[i].transpose(1, 2))
        if i < len(w) - 1:
            h = torch.sin(w0 * h)
    return h
