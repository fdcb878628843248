"""Canonical representatives of a network's scaling and sign-flip orbits: a front that makes any
permutation-equivariant model invariant to them too.

A hidden neuron ``i`` of layer ℓ can be rescaled (ReLU-like activations, ``d > 0``) or sign-flipped
(odd activations, ``d = ±1``) without changing the network's function:
``W⁽ℓ⁾_{i,:} ↦ d W⁽ℓ⁾_{i,:}``, ``b⁽ℓ⁾_i ↦ d b⁽ℓ⁾_i``, ``W⁽ℓ⁺¹⁾_{:,i} ↦ W⁽ℓ⁺¹⁾_{:,i} / d``
(Kalogeropoulos et al. 2024, Sec. 3; Godfrey et al. 2022). Instead of building layers that
commute with these maps, this module picks one point of every orbit (a *canonicalisation*,
as the ScaleGMN paper discusses as the alternative to equivariance):

* **scale** (``Factor.POSITIVE_SCALING``), layers ℓ = 1 … L-1 in order: divide neuron i's incoming
  weights and bias by their norm ``ν_i = ‖(W⁽ℓ⁾_{i,:}, b⁽ℓ⁾_i)‖`` and multiply its outgoing column by
  ``ν_i``. Each incoming vector then has unit norm whatever ``d`` was; the next layer is
  normalised after it has received the scale, so the result is the same for every point of the
  orbit.
* **sign** (``Factor.SIGN_FLIP``), layers ℓ = L-1 … 1 in reverse order: flip neuron i when the sum
  of its outgoing weights ``Σ_k W⁽ℓ⁺¹⁾_{k,i}`` (kernel entries included) is negative. The sum
  flips with ``d_i``, and the next layer's rows are already canonical, so the flips of different
  layers do not interact. A sum of exactly zero keeps the neuron (a set of measure zero).

Both steps act on each neuron by itself, so they commute with permutations: a model
equivariant to permutations, applied after this front, is invariant (or equivariant, up to the
canonicalising element) to permutations × the canonicalised factors. Inputs with several
channels (the output of scale- or sign-equivariant layers, where every channel transforms like the
weights) are canonicalised by all channels together: the norm runs over channels too and the sum
adds them, so a channel that is zero for some neuron (a ReLU's) does not decide alone.

Shapes:
    features ``(B, C, …)`` → features of the same spec and shape.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from typing import final

import torch
from torch import nn

from nfkit.errors import UnsupportedArchitectureError
from nfkit.groups.base import Group
from nfkit.groups.neurons import Factor, HiddenNeuronGroup
from nfkit.groups.universal import UniversalGroup
from nfkit.layers.canonical_universal import UniversalCanonicalization
from nfkit.spaces.features import WeightSpaceFeatures
from nfkit.spaces.spec import WeightSpaceSpec
from nfkit.spaces.universal import UniversalSpec

__all__ = ["Canonicalization", "canonical_factors", "with_canonical_front"]


def canonical_factors(spec: WeightSpaceSpec) -> frozenset[Factor]:
    """The factors a :class:`Canonicalization` of ``spec`` removes: the network's scaling and sign symmetries.

    Raises:
        UnsupportedArchitectureError: a network with neither (GELU, Sigmoid): nothing to canonicalise.
    """
    factors = spec.symmetry_group().factors & {Factor.POSITIVE_SCALING, Factor.SIGN_FLIP}
    if not factors:
        raise UnsupportedArchitectureError(
            f"canonicalisation removes scaling or sign symmetries, but {spec.describe()} has neither "
            f"(hidden activations: {', '.join(map(str, spec.hidden_activations))})"
        )
    return frozenset(factors)


def _rows(w: torch.Tensor) -> torch.Tensor:  # (B, C, n, …) → (B, n, C·rest)
    return w.movedim(1, 2).reshape(w.shape[0], w.shape[2], -1)


@final
class Canonicalization(nn.Module):
    """Map weights to the canonical point of their scaling/sign orbit (see the module docstring).

    Args:
        spec: the weight space.
        factors: which symmetries to canonicalise (default: :func:`canonical_factors`).
        eps: norms below it count as ``eps`` (a dead neuron stays zero).

    Attributes:
        factors: the canonicalised factors.

    Example:
        >>> spec = WeightSpaceSpec.mlp([2, 8, 8, 1], "sine")
        >>> front = Canonicalization(spec)
        >>> sorted(f.value for f in front.factors), front(spec.randn(3)).weights[0].shape
        (['sign flips'], torch.Size([3, 1, 8, 2]))
    """

    def __init__(self, spec: WeightSpaceSpec, factors: Iterable[Factor] | None = None, eps: float = 1e-12) -> None:
        super().__init__()
        self.spec = spec
        self.factors = canonical_factors(spec) if factors is None else frozenset(factors)
        self.eps = eps

    def forward(self, features: WeightSpaceFeatures) -> WeightSpaceFeatures:
        self.spec.require_compatible(features.spec)
        weights, biases = list(features.weights), list(features.biases)
        L = self.spec.num_layers
        has_bias = [layer.bias for layer in self.spec.layers]

        def rescale(ell: int, d: torch.Tensor) -> None:
            # neuron i of hidden layer ℓ (weights[ℓ-1] rows) times d_i, its outgoing column divided by d_i
            shape_in = (d.shape[0], 1, -1) + (1,) * (weights[ell - 1].dim() - 3)
            weights[ell - 1] = weights[ell - 1] * d.view(shape_in)
            if has_bias[ell - 1]:
                biases[ell - 1] = biases[ell - 1] * d.view(d.shape[0], 1, -1)
            shape_out = (d.shape[0], 1, 1, -1) + (1,) * (weights[ell].dim() - 4)
            weights[ell] = weights[ell] / d.view(shape_out)

        if Factor.POSITIVE_SCALING in self.factors:
            for ell in range(1, L):
                incoming = _rows(weights[ell - 1])
                if has_bias[ell - 1]:
                    incoming = torch.cat([incoming, biases[ell - 1].movedim(1, 2)], dim=-1)
                norm = incoming.norm(dim=-1).clamp_min(self.eps)  # (B, n_ℓ)
                rescale(ell, 1.0 / norm)
        if Factor.SIGN_FLIP in self.factors:
            for ell in range(L - 1, 0, -1):
                total = _rows(weights[ell].movedim(3, 2)).sum(dim=-1)  # outgoing sums, (B, n_ℓ)
                rescale(ell, torch.where(total < 0, -1.0, 1.0).to(total.dtype))
        return WeightSpaceFeatures(self.spec, weights, biases)

    def extra_repr(self) -> str:
        return ", ".join(sorted(f.value for f in self.factors))


def with_canonical_front(spec: WeightSpaceSpec | UniversalSpec, group: Group, trunk: nn.Module) -> tuple[Group, nn.Sequential]:
    """``(group × the canonicalised factors, Canonicalization → trunk)`` for a permutation-equivariant ``trunk``.

    The invariant builders' ``canonical=True`` (``np``, ``hnp``, ``graph``, ``nft``, ``unf``, ``statnn``)
    go through here. A traced network (:class:`~nfkit.spaces.UniversalSpec`) gets a
    :class:`~nfkit.layers.canonical_universal.UniversalCanonicalization`, and ``group`` must be its
    permutations: the result is every set's permutations with the set's own scalings and signs.
    """
    if isinstance(spec, UniversalSpec):
        permutation_group = spec.permutation_group()
        if not (isinstance(group, UniversalGroup) and group.contains(permutation_group) and permutation_group.contains(group)):
            raise UnsupportedArchitectureError(f"canonicalisation needs the permutations of every set, got {group.name}")
        universal_front = UniversalCanonicalization(spec)
        sets = [replace(s, kind="permutation", factors=s.factors if s.kind == "permutation" else frozenset(), blocks="")
                for s in spec.sets]
        return UniversalGroup(sets), nn.Sequential(universal_front, trunk)
    if not isinstance(group, HiddenNeuronGroup):
        raise UnsupportedArchitectureError(f"canonicalisation needs a hidden-neuron group, got {group.name}")
    front = Canonicalization(spec)
    return group.restrict(group.factors | front.factors), nn.Sequential(front, trunk)
