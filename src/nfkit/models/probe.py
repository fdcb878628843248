"""The ``"probe"`` family: classify or regress from a network's outputs at probe inputs.

ProbeGen (Kahana et al., ICLR 2025) and the probing of Kofinas et al. (ICLR 2024): the function
values are invariant to every weight symmetry by construction, so the declared group is the
network's whole group (:meth:`~nfkit.spaces.WeightSpaceSpec.symmetry_group`). For INRs (networks
on 2-D coordinates) the probes are a fixed ``grid × grid`` render and the head a small CNN on it;
otherwise ``probes`` learned inputs and an MLP head.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from nfkit.layers.probe import ProbeFeatures
from nfkit.models.base import StackedInvariantModel, mlp_head
from nfkit.models.registry import ModelFamily, register
from nfkit.spaces.spec import WeightSpaceSpec

__all__ = ["probe_invariant", "RenderCNN"]


class RenderCNN(nn.Module):
    """A small CNN on ``grid × grid`` renders: 2 × (conv 3×3 → ReLU → max-pool 2), then an MLP.

    Shapes:
        ``(B, grid²)`` → ``(B, out_features)``.
    """

    def __init__(self, grid: int, out_features: int, width: int = 32, hidden: Sequence[int] = (256,), dropout: float = 0.0) -> None:
        super().__init__()
        self.grid = grid
        self.conv = nn.Sequential(
            nn.Conv2d(1, width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        )
        side = grid // 4
        self.mlp = mlp_head(2 * width * side * side, hidden, out_features, dropout)

    def forward(self, renders: torch.Tensor) -> torch.Tensor:
        return self.mlp(self.conv(renders.view(-1, 1, self.grid, self.grid)).flatten(1))


def probe_invariant(
    spec: WeightSpaceSpec,
    out_features: int = 1,
    *,
    in_channels: int = 1,
    grid: int | None = None,
    probes: int = 64,
    input_size: int | None = None,
    head: str | None = None,
    hidden_channels: Sequence[int] = (256, 256),
    dropout: float = 0.0,
) -> StackedInvariantModel:
    """Probe features, then a head: features → ``(B, out_features)``.

    ``grid`` (default 28 for networks on 2-D coordinates, else 0) probes a fixed coordinate grid;
    otherwise ``probes`` learned inputs (CNN inputs of side ``input_size``; default: the smallest the
    network's convolutions accept, at least 8). ``head``: ``"cnn"``
    (default for grid probes) or ``"mlp"``; ``hidden_channels`` are the head's hidden widths.
    """
    first = spec.layers[0]
    if grid is None:
        grid = 28 if first.kind == "dense" and first.n_in == 2 and spec.layers[-1].n_out == 1 else 0
    readout = ProbeFeatures(spec, grid=grid, probes=probes, input_size=input_size)
    head = head or ("cnn" if grid > 0 else "mlp")
    if head == "cnn":
        if grid < 4 or spec.layers[-1].n_out != 1:
            raise ValueError("the CNN head reads one-channel renders of a grid of side ≥ 4; use head='mlp'")
        model_head: nn.Module = RenderCNN(grid, out_features, hidden=hidden_channels[-1:], dropout=dropout)
    elif head == "mlp":
        model_head = mlp_head(readout.num_outputs(in_channels), hidden_channels, out_features, dropout)
    else:
        raise ValueError(f"head must be 'cnn' or 'mlp', got {head!r}")
    model = StackedInvariantModel(spec, spec.symmetry_group(), in_channels, out_features, trunk=nn.Identity(),
                                  readout=readout, head=model_head)
    model.reads_raw_weights = True  # normalising a tensor would change the function the probes read
    return model


register(
    ModelFamily(
        "probe",
        "probe features: the network's outputs at a coordinate grid or learned inputs, invariant to every weight "
        "symmetry (ProbeGen, Kahana et al. 2025)",
        invariant=probe_invariant,
    )
)
