"""ScaleGMN: a graph metanetwork equivariant to neuron permutations *and* the activation's scalings.

Kalogeropoulos, Bouritsas, Panagakis, "Scale Equivariant Graph Metanetworks" (NeurIPS 2024). The
network is a graph of neurons (biases are node features, weights are edge features; a conv kernel is
an edge's feature vector). Under an element of the monomial group a hidden neuron ``v`` gets a factor
``q_v`` (a sign for odd activations such as sine and tanh; a positive scale for ReLU), so that

    b_v → q_v b_v,        w_vu → q_v w_vu / q_u        (q ≡ 1 on input and output neurons).

Node states ``h_v ∈ ℝ^d`` are kept *equivariant*: ``h_v → q_v h_v`` (a whole vector times one scalar),
with three building blocks (Sec. 4 of the paper):

* bias-free linear maps of ``d`` channels (they commute with a scalar factor);
* forward messages ``m_v = Σ_u (A w_vu) ⊙ h_u``: the factors ``q_v / q_u · q_u = q_v`` (and, for sign
  groups only, backward messages ``Σ_v (A w_vu) ⊙ h_v`` to ``u``, ``q_v q_u q_v = q_u``; the
  bidirectional variant for positive scales would need reciprocal weights, not built here);
* gated updates ``z ⊙ φ(ρ(z))`` with ``ρ`` invariant to the factor: ``|z|`` for signs, ``z / ‖z‖``
  for positive scales.

Every neuron of a layer is treated alike (shared parameters, sums over neurons), so the maps also
commute with hidden-neuron permutations. Input neurons start from learned per-index states (they
are fixed; the paper sets them to 1). The input weights are not centred, which would break the
scaling symmetry (the paper's issue #4); per-tensor positive rescaling is fine.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import final

import torch
from torch import nn

from nfkit.groups.neurons import Factor, HiddenNeuronGroup
from nfkit.spaces.features import WeightSpaceFeatures
from nfkit.spaces.spec import WeightSpaceSpec

__all__ = ["ScaleGMNTrunk", "ScaleGMNReadout", "ScaleGMNDecoder", "invariant_of"]


def invariant_of(z: torch.Tensor, signs: bool) -> torch.Tensor:
    """ρ(z) over the last dim: ``|z|`` (sign flips) or ``z / ‖z‖`` (positive scales).

    Shapes: ``(…, d) → (…, d)``.
    """
    if signs:
        return z.abs()
    # no ε added to the norm: it would break exact invariance for small states; only a zero vector is clamped
    squared = z.square().sum(dim=-1, keepdim=True).clamp_min(torch.finfo(z.dtype).tiny)
    return z * torch.rsqrt(squared)


class _Gate(nn.Module):
    """``z ⊙ φ(ρ(z))``: equivariant to a scalar factor on z (Kalogeropoulos et al. 2024, Eq. 9)."""

    def __init__(self, width: int, signs: bool) -> None:
        super().__init__()
        self.signs = signs
        self.mlp = nn.Sequential(nn.Linear(width, width), nn.ReLU(), nn.Linear(width, width))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return z * self.mlp(invariant_of(z, self.signs))


class _Round(nn.Module):
    """One round of message passing: every node state updated from its own and its neighbours' states."""

    def __init__(self, spec: WeightSpaceSpec, in_channels: int, width: int, signs: bool) -> None:
        super().__init__()
        layers = spec.num_layers
        self.signs = signs
        self.edge_maps = nn.ModuleList(nn.Linear(in_channels * layer.kernel_numel, width, bias=False) for layer in spec.layers)
        self.self_maps = nn.ModuleList(nn.Linear(width, width, bias=False) for _ in range(layers + 1))
        self.forward_maps = nn.ModuleList(nn.Linear(width, width, bias=False) for _ in range(layers))
        self.backward_maps = nn.ModuleList(nn.Linear(width, width, bias=False) for _ in range(layers if signs else 0))
        self.gates = nn.ModuleList(_Gate(width, signs) for _ in range(layers + 1))

    def forward(self, states: list[torch.Tensor], edges: list[torch.Tensor]) -> list[torch.Tensor]:
        messages = [edge_map(e) for edge_map, e in zip(self.edge_maps, edges)]  # A w_vu: (B, n_out, n_in, d)
        updated = []
        for ell, (h, self_map, gate) in enumerate(zip(states, self.self_maps, self.gates)):
            z = self_map(h)
            if ell > 0:  # from the layer before: Σ_u (A w_vu) ⊙ h_u, a mean over the fan-in
                forward = torch.einsum("bvud,bud->bvd", messages[ell - 1], states[ell - 1]) / states[ell - 1].shape[1]
                z = z + self.forward_maps[ell - 1](forward)
            if self.signs and ell < len(states) - 1:  # from the layer after (sign groups only)
                backward = torch.einsum("bvud,bvd->bud", messages[ell], states[ell + 1]) / states[ell + 1].shape[1]
                z = z + self.backward_maps[ell](backward)
            updated.append(h + gate(z))
        return updated


@final
class ScaleGMNTrunk(nn.Module):
    """Message passing over the neuron graph, node states equivariant to the monomial ``group``.

    Args:
        spec: the weight space.
        in_channels: channels C of the input features.
        hidden_channels: one entry per round; the state width is ``hidden_channels[0]`` (residual
            updates need one width, as in the ``graph`` family).
        group: permutations × sign flips or × positive scaling (:func:`~nfkit.layers.monomial.monomial_group`).

    Shapes:
        features ``(B, C, …)`` → node states, one ``(B, n_ℓ, d)`` per neuron layer ℓ = 0..L.
    """

    def __init__(self, spec: WeightSpaceSpec, in_channels: int, hidden_channels: Sequence[int], group: HiddenNeuronGroup) -> None:
        super().__init__()
        if not hidden_channels:
            raise ValueError("ScaleGMN needs at least one round (hidden_channels)")
        width = int(hidden_channels[0])
        self.spec = spec
        self.width = width
        self.signs = Factor.SIGN_FLIP in group.factors
        self.input_states = nn.Parameter(torch.randn(spec.neuron_sizes[0], width) * 0.5 + 1.0)
        self.bias_in = nn.ModuleList(nn.Linear(in_channels, width, bias=False) for _ in spec.layers)
        self.rounds = nn.ModuleList(_Round(spec, in_channels, width, self.signs) for _ in hidden_channels)

    def forward(self, features: WeightSpaceFeatures) -> list[torch.Tensor]:
        edges = [_edge_view(w) for w in features.weights]
        states = [self.input_states.expand(features.batch_size, *self.input_states.shape).to(features.dtype)]
        states += [m(b.transpose(1, 2)) for m, b in zip(self.bias_in, features.biases)]
        for round_ in self.rounds:
            states = round_(states, edges)
        return states


def _edge_view(w: torch.Tensor) -> torch.Tensor:
    """``(B, C, n_out, n_in, *kernel) → (B, n_out, n_in, C·kernel)``."""
    w = w.movedim(1, 3)  # (B, n_out, n_in, C, *kernel)
    return w.flatten(3)


@final
class ScaleGMNReadout(nn.Module):
    """Invariant readout: the mean of ρ(h) over each hidden layer, the input neurons' mean, the output neurons' states.

    Shapes:
        node states → ``(B, num_outputs(d))``.
    """

    def __init__(self, spec: WeightSpaceSpec, group: HiddenNeuronGroup) -> None:
        super().__init__()
        self.spec = spec
        self.signs = Factor.SIGN_FLIP in group.factors

    def num_outputs(self, channels: int) -> int:
        return channels * (len(self.spec.hidden_sizes) + 1 + self.spec.neuron_sizes[-1])

    def forward(self, states: list[torch.Tensor]) -> torch.Tensor:
        hidden = [invariant_of(h, self.signs).mean(dim=1) for h in states[1:-1]]
        return torch.cat([*hidden, states[0].mean(dim=1), states[-1].flatten(1)], dim=1)


@final
class ScaleGMNDecoder(nn.Module):
    """Equivariant readout to features: ``Δw_vu = w_vu · G(ρ(h_v), ρ(h_u))`` and ``Δb_v = D h_v``.

    ``G`` is invariant, so each output transforms exactly as the weight or bias it belongs to.

    Shapes:
        node states and the input features (for the weights) → features with ``out_channels`` channels.
    """

    def __init__(self, spec: WeightSpaceSpec, in_channels: int, width: int, out_channels: int, group: HiddenNeuronGroup) -> None:
        super().__init__()
        self.spec = spec
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.signs = Factor.SIGN_FLIP in group.factors
        self.edge_gates = nn.ModuleList(
            nn.Sequential(nn.Linear(2 * width, width), nn.ReLU(), nn.Linear(width, in_channels * out_channels)) for _ in spec.layers
        )
        self.bias_out = nn.ModuleList(nn.Linear(width, out_channels, bias=False) for _ in spec.layers)

    def forward(self, states: list[torch.Tensor], features: WeightSpaceFeatures) -> WeightSpaceFeatures:
        invariants = [invariant_of(h, self.signs) for h in states]
        weights, biases = [], []
        for i, w in enumerate(features.weights):
            target, source = invariants[i + 1], invariants[i]
            pair = torch.cat([target[:, :, None].expand(-1, -1, source.shape[1], -1),
                              source[:, None].expand(-1, target.shape[1], -1, -1)], dim=-1)
            gate = self.edge_gates[i](pair).unflatten(-1, (self.in_channels, self.out_channels))  # (B, v, u, C, C')
            kernel = w.shape[4:]
            flat = w.flatten(4) if kernel else w.unsqueeze(-1)  # (B, C, v, u, K)
            out = torch.einsum("bcvuk,bvuco->bovuk", flat, gate)
            weights.append(out.reshape(*out.shape[:4], *kernel))
            biases.append(self.bias_out[i](states[i + 1]).transpose(1, 2))
        return features.with_tensors(weights, biases)
