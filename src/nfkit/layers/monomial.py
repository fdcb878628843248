"""Monomial-NFN layers: equivariant to hidden permutations × diagonal scaling or sign flips.

Tran et al., "Equivariant Neural Functional Networks with Monomial Matrix Group
Symmetries" (NeurIPS 2024), Sec. 5 (equivariant layer) and Sec. 6 (invariant layer).

**Derivation.** Fold unpermuted indices into channels as for HNP
(:func:`~nfkit.layers.permutation_basis.fields_of` with the hidden layers permuted).
Under ``g_ℓ = D_ℓ P_ℓ`` a field then transforms by a *character*: each hidden axis ℓ of it
carries an exponent, +1 for a weight's row index and a bias, -1 for a weight's column
index (``W⁽ⁱ⁾ ↦ g_i W⁽ⁱ⁾ g_{i-1}⁻¹``). A sum over a scaled index is never equivariant, so no
pooling term survives; a linear map ``x_I ↦ y_O`` is equivariant exactly when ``I`` and ``O``
carry the same character, and it then mixes channels pointwise over the shared axes. A
constant is allowed only where no axis is scaled. This gives the paper's Eq. (5)-(7):

* hidden ``W⁽ⁱ⁾`` and ``b⁽ⁱ⁾``: pointwise channel mixing;
* ``W⁽¹⁾`` and ``b⁽¹⁾`` (both +1 on layer 1): one block, mixing along the fixed input index
  ``W'⁽¹⁾_{jk} = Σ_q A_{qk} W⁽¹⁾_{jq} + B_k b⁽¹⁾_j``, ``b'⁽¹⁾_j = Σ_q C_q W⁽¹⁾_{jq} + D b⁽¹⁾_j``;
* ``W⁽ᴸ⁾`` (-1 on layer L-1): mixing along the fixed output index;
* ``b⁽ᴸ⁾`` (no scaled axis): mixing along the output index plus a constant τ.

**Which group.** For positive scaling the character is the exponent vector; the layer is
then equivariant to every non-zero diagonal. For sign flips ``d = 1/d``, so only the *set*
of axes matters, which adds couplings such as ``b⁽ᴸ⁻¹⁾ ↔ W⁽ᴸ⁾`` (the paper's sign variant;
for L = 2 also ``W⁽¹⁾ ↔ W⁽²⁾``, which the reference code leaves out). The variant follows
from ``spec.symmetry_group()``: positive scaling when the network has it, else sign flips.
"""

from __future__ import annotations

import math
from typing import final

import torch
from torch import nn

from nfkit.errors import SpecMismatchError, UnsupportedArchitectureError
from nfkit.groups.neurons import Factor, HiddenNeuronGroup
from nfkit.layers.folded import (
    DEFAULT_FOLDED_RANK,
    POOLED_FOLDED_RANK,
    FoldedMixer,
    block_mixers,
    factorised_fields,
    summarise,
    summary_projections,
)
from nfkit.layers.mixing import mix_channels
from nfkit.layers.permutation_basis import Field, fields_of
from nfkit.spaces.features import WeightSpaceFeatures
from nfkit.spaces.spec import WeightSpaceSpec

__all__ = [
    "MonomialInvariantFront",
    "monomial_group",
    "equivariant_activation",
    "field_character",
    "MonomialLinear",
    "MonomialInvariantMap",
    "MonomialPool",
]


def monomial_group(spec: WeightSpaceSpec) -> HiddenNeuronGroup:
    """The monomial group a Monomial-NFN on ``spec`` respects.

    ``permutations × positive scaling`` when every hidden activation is positively homogeneous
    (ReLU-like), else ``permutations × sign flips`` when every one is odd (Tanh, Sine).
    Raises :class:`~nfkit.errors.UnsupportedArchitectureError` otherwise (GELU, Sigmoid, …: the
    network has no scaling symmetry, use ``np`` or ``hnp``).
    """
    group = spec.symmetry_group()
    monomial = group.monomial()
    if monomial is not None:
        return monomial
    raise UnsupportedArchitectureError(
        f"monomial layers need a network with scaling or sign symmetry, but {spec.describe()} only has "
        f"{group.name} (hidden activations: {', '.join(map(str, spec.hidden_activations))}); use 'np' or 'hnp'"
    )


def equivariant_activation(group: HiddenNeuronGroup) -> str:
    """The entrywise nonlinearity that commutes with a monomial group.

    ReLU for positive scaling (``σ(dx) = dσ(x)`` for d > 0); tanh for sign flips (odd).
    """
    return "relu" if Factor.POSITIVE_SCALING in group.factors else "tanh"


def field_character(field: Field, group: HiddenNeuronGroup) -> tuple[tuple[int, int], ...]:
    """How ``group`` scales a field: ``((hidden layer, exponent), …)``, exponents mod 2 for sign flips."""
    exponents = []
    for axis in field.axes:
        exponent = 1 if field.is_bias or axis == field.layer + 1 else -1
        exponents.append((axis, exponent % 2 if Factor.POSITIVE_SCALING not in group.factors else exponent))
    return tuple(sorted(exponents))


@final
class MonomialLinear(nn.Module):
    """Monomial-NFN equivariant linear layer (Tran et al. 2024, Sec. 5).

    Args:
        spec: the weight space (MLP or CNN whose hidden activations are all ReLU-like or all odd).
        in_channels, out_channels: feature channels C → C'.
        out_spec: the output's weight space, if not ``spec``: same neurons, other kernels
            (e.g. ``spec.without_kernels()``); kernel entries are channels, so they may change.
        folded, folded_rank: as for :class:`~nfkit.layers.HNPLinear`: ``"auto"`` factorises the
            blocks that mix along a folded input/output index
            (:class:`~nfkit.layers.folded.FoldedMixer`) when it holds more than
            :data:`~nfkit.layers.folded.FOLDED_AUTO_ENTRIES` entries per channel; a map of the
            folded entries alone commutes with every scaling and permutation of hidden neurons.

    Attributes:
        group: the monomial group it is equivariant to (:func:`monomial_group`).

    Shapes:
        weights ``(B, C, n_i, n_{i-1}, *kernel) → (B, C', n_i, n_{i-1}, *out_kernel)``,
        biases ``(B, C, n_i) → (B, C', n_i)``.

    Example:
        >>> from nfkit.spaces import WeightSpaceSpec
        >>> spec = WeightSpaceSpec.mlp([2, 16, 16, 1], "relu")
        >>> layer = MonomialLinear(spec, 1, 4)
        >>> layer.group.name, layer(spec.randn(3)).weights[1].shape
        ('permutations × positive scaling', torch.Size([3, 4, 16, 16]))
    """

    def __init__(
        self,
        spec: WeightSpaceSpec,
        in_channels: int,
        out_channels: int,
        *,
        out_spec: WeightSpaceSpec | None = None,
        folded: str = "auto",
        folded_rank: int = DEFAULT_FOLDED_RANK,
    ) -> None:
        super().__init__()
        out_spec = spec if out_spec is None else out_spec
        if out_spec.neuron_sizes != spec.neuron_sizes or [l.bias for l in out_spec.layers] != [l.bias for l in spec.layers]:
            raise SpecMismatchError(
                f"MonomialLinear maps between specs with the same neurons and biases; got {spec.describe()} "
                f"and {out_spec.describe()}"
            )
        self.spec = spec
        self.out_spec = out_spec
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.group = monomial_group(spec)
        self.fields = fields_of(spec, range(1, spec.num_layers))
        self.out_fields = fields_of(out_spec, range(1, spec.num_layers))
        blocks: dict[tuple[tuple[int, int], ...], list[int]] = {}
        for n, f in enumerate(self.fields):
            blocks.setdefault(field_character(f, self.group), []).append(n)
        self.characters = tuple(blocks)
        self.blocks: tuple[tuple[int, ...], ...] = tuple(tuple(m) for m in blocks.values())
        # as in HNP: blocks touching a folded input/output neuron axis may be factorised (folded.py);
        # an output spec without kernels folds fewer entries, never more, so the input fields decide
        self.factorised_blocks, self.mixers, self.folded_mixers = block_mixers(
            self.blocks, self.fields, self.out_fields, in_channels, out_channels,
            factorised_fields(self.fields, folded, folded_rank), folded_rank,
        )
        # a constant term only where no axis is scaled (b⁽ᴸ⁾, or everything when L = 1)
        constant_rows = sum(
            out_channels * self.out_fields[n].fixed for c, m in zip(self.characters, self.blocks) if not c for n in m
        )
        self.constant = nn.Parameter(torch.zeros(constant_rows))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Xavier-style ``U(±√(3/fan_in))``: each output keeps the scale of its inputs."""
        with torch.no_grad():
            for mixer in self.mixers:
                if mixer.numel():
                    bound = math.sqrt(3.0 / mixer.shape[1])
                    mixer.uniform_(-bound, bound)
            self.constant.zero_()
        for folded_mixer in self.folded_mixers.values():
            assert isinstance(folded_mixer, FoldedMixer)
            folded_mixer.reset_parameters()

    def forward(self, features: WeightSpaceFeatures) -> WeightSpaceFeatures:
        self.spec.require_compatible(features.spec)
        if features.channels != self.in_channels:
            raise SpecMismatchError(f"MonomialLinear expects {self.in_channels} channels, got {features.channels}")
        inputs = [f.to_field(t) for f, t in zip(self.fields, features.tensors())]
        outputs: list[torch.Tensor | None] = [None] * len(self.fields)
        batch = features.batch_size
        for b, (character, members, mixer) in enumerate(zip(self.characters, self.blocks, self.mixers)):
            sizes = inputs[members[0]].shape[2:]
            if b in self.factorised_blocks:
                y = torch.cat(self.folded_mixers[str(b)]([inputs[n].reshape(batch, inputs[n].shape[1], -1) for n in members]), dim=1)
            else:
                x = torch.cat([inputs[n] for n in members], dim=1)
                y = mix_channels(mixer, x.reshape(batch, x.shape[1], -1))
            if not character:
                y = y + self.constant.view(1, -1, 1)
            for n, chunk in zip(members, y.split([self.out_channels * self.out_fields[n].fixed for n in members], dim=1)):
                outputs[n] = chunk.reshape(batch, chunk.shape[1], *sizes)
        missing = [f.name for f, y in zip(self.out_fields, outputs) if y is None]
        if missing:
            raise RuntimeError(f"no block wrote the fields {missing}")  # a construction bug, never an input error
        tensors = [f.from_field(y, self.out_channels) for f, y in zip(self.out_fields, outputs) if y is not None]
        return WeightSpaceFeatures(self.out_spec, tensors[0::2], tensors[1::2])

    def extra_repr(self) -> str:
        return f"{self.in_channels}→{self.out_channels}, {self.group.name}, {len(self.blocks)} blocks"


@final
class MonomialInvariantMap(nn.Module):
    """Entrywise map that makes every field invariant to the monomial group (Tran et al. 2024, Sec. 6).

    At each hidden position, the vector of a field's channels (channels × folded fixed
    indices: for ``W⁽¹⁾`` the whole incoming weight vector of neuron j) is mapped by

    * positive scaling: ``x ↦ x / ‖x‖`` (positively homogeneous of degree 0);
    * sign flips: ``x ↦ |x|`` (even);

    then by a learned per-channel affine ``γ ⊙ x + β``. Fields on which no axis is scaled
    (``b⁽ᴸ⁾``) pass unchanged. Output: fields in the folded layout, ready for hidden-axis pooling.

    Shapes:
        features with C channels → one tensor per field, ``(B, C·fixed, *hidden axes)``.
    """

    def __init__(self, spec: WeightSpaceSpec, channels: int, group: HiddenNeuronGroup, eps: float = 1e-12) -> None:
        super().__init__()
        self.spec = spec
        self.fields = fields_of(spec, range(1, spec.num_layers))
        self.group = group
        self.eps = eps
        widths = [channels * f.fixed for f in self.fields]
        self.gamma = nn.Parameter(torch.ones(sum(widths)))
        self.beta = nn.Parameter(torch.zeros(sum(widths)))
        self.widths = widths

    def forward(self, features: WeightSpaceFeatures) -> list[torch.Tensor]:
        out = []
        gammas = self.gamma.split(self.widths)
        betas = self.beta.split(self.widths)
        for f, t, gamma, beta in zip(self.fields, features.tensors(), gammas, betas):
            x = f.to_field(t)
            if f.axes:
                if Factor.POSITIVE_SCALING in self.group.factors:
                    x = x / x.norm(dim=1, keepdim=True).clamp_min(self.eps)
                else:
                    x = x.abs()
                shape = (1, -1) + (1,) * len(f.axes)
                x = x * gamma.view(shape) + beta.view(shape)
            out.append(x)
        return out


@final
class MonomialInvariantFront(nn.Module):
    """:class:`MonomialInvariantMap` written back as features: every entry invariant to the network's
    scalings or sign flips, still equivariant to its hidden-neuron permutations.

    The front of Monomial-NFN's INR classifier (Tran et al. 2024, App. "InvariantNFN_HNPS": monomial
    layers, ``abs``, then a permutation-only HNP network): anything permutation-equivariant may follow
    it (Fourier features included) and the whole stays invariant to the monomial group.

    Shapes:
        features with C channels → features with C channels.
    """

    def __init__(self, spec: WeightSpaceSpec, channels: int, group: HiddenNeuronGroup) -> None:
        super().__init__()
        self.channels = channels
        self.invariant = MonomialInvariantMap(spec, channels, group)

    def forward(self, features: WeightSpaceFeatures) -> WeightSpaceFeatures:
        fields = self.invariant(features)
        tensors = [f.from_field(x, self.channels) for f, x in zip(self.invariant.fields, fields)]
        return features.with_tensors(tensors[0::2], tensors[1::2])


class MonomialPool(nn.Module):
    """Invariant readout: :class:`MonomialInvariantMap`, then the mean over each field's hidden axes.

    Input and output neurons stay apart (``W⁽¹⁾`` keeps its input index, ``W⁽ᴸ⁾`` its output
    index, ``b⁽ᴸ⁾`` is whole), as in HNP pooling.

    What it cannot see: for positive scaling, a field whose fixed part is one entry per channel
    (a hidden-to-hidden weight of an MLP, a hidden bias other than ``b⁽¹⁾``) reaches it through
    layers that are homogeneous of degree 1 in that entry alone, so ``x / ‖x‖`` leaves only the
    entry's sign. A model ending in this pool is invariant to rescaling each such entry on its own,
    much more than the network's symmetry. ``canonical=True`` with ``trunk_channels`` reads the
    magnitudes (``tests/models/test_monomial_pipeline.py``).

    Shapes:
        features with C channels → ``(B, num_outputs(C))``.
    """

    def __init__(self, spec: WeightSpaceSpec, channels: int, group: HiddenNeuronGroup, *, folded: str = "auto") -> None:
        super().__init__()
        self.channels = channels
        self.invariant = MonomialInvariantMap(spec, channels, group)
        # a folded input/output index is passed on as learned summaries (after the invariant map: still invariant)
        self.projections = summary_projections(self.invariant.fields, folded)

    def num_outputs(self, channels: int) -> int:
        """The readout width for inputs of ``channels`` channels (the number it was built for)."""
        if channels != self.channels:
            raise ValueError(f"this pool was built for {self.channels} channels, not {channels}")
        return sum(channels * POOLED_FOLDED_RANK if str(n) in self.projections else width
                   for n, width in enumerate(self.invariant.widths))

    def forward(self, features: WeightSpaceFeatures) -> torch.Tensor:
        fields = self.invariant(features)
        pooled = [x.mean(dim=tuple(range(2, x.dim()))) if x.dim() > 2 else x for x in fields]
        return torch.cat(summarise(pooled, self.projections), dim=1)
