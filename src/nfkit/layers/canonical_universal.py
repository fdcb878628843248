"""Canonical representatives of the scaling and sign-flip orbits of any traced network
(:class:`~nfkit.spaces.UniversalSpec`): :class:`UniversalCanonicalization`.

A permutation set ``S`` with factors acts on neuron ``i`` by a diagonal entry ``d_i`` (positive with
``"scale"``, ``±1`` with ``"sign"``): along an ``"out"`` axis of ``S`` an entry is multiplied by
``d_i``, along an ``"in"`` axis divided by it, and a ``"tied"`` axis (GRU/LSTM gate rows, norm
parameters) does not see it (:meth:`~nfkit.spaces.UniversalFeatures.transform`). This front picks one
point of every orbit, set after set, as :class:`~nfkit.layers.canonical.Canonicalization` does for
MLPs and CNNs (the alternative to equivariance that Kalogeropoulos et al. 2024, Sec. 3, discuss):

* A tensor *reads* set ``S`` when exactly one of its axes carries ``S`` with role ``"out"`` or ``"in"``
  and every other labelled axis carries ``S`` tied or a set that is already *resolved*: one without
  scalings or signs (GL sets count: past this front only their permutations are declared), or one
  this front has canonicalised before ``S``. Such a tensor's entries in neuron ``i``'s slice move by
  ``d_i`` (or ``1/d_i``) and by nothing else.
* **scale**: ``ν_i`` = the norm of neuron ``i``'s slices of the reading ``"out"`` tensors (or, when
  there are none, of the ``"in"`` ones), over all channels; the front applies ``d_i = 1/ν_i`` (or
  ``ν_i``), which leaves those slices with unit norm whatever the orbit point was.
* **sign**: ``σ_i`` = the sum of neuron ``i``'s slices of every reading tensor, over all channels; it
  flips with ``d_i`` (``1/d_i = d_i`` for signs), and the front applies ``d_i = sign(σ_i)``
  (``σ_i = 0``, a set of measure zero, keeps the neuron).

The order of the sets is fixed from the spec alone (the first unresolved set that some tensor
reads, repeatedly), so each set is decided from entries the earlier decisions have already made
canonical and the later sets cannot move. A set no tensor ever reads (every tensor that carries it
also carries it twice, like a recurrent matrix alone, or another unresolved set in a cycle) is
refused when the front is built. Every step acts on each neuron by itself, so the front commutes
with the permutations: a permutation-equivariant model after it is invariant to
permutations × every canonicalised factor.

On a GRU (sign flips of the hidden units) the reading tensors are the candidate gate's input rows and
biases (``"out"``), the reset and update gates' recurrent columns (``"in"``, their rows tied) and the
head's columns; the candidate gate's recurrent matrix carries the hidden set twice and is not read.

Shapes:
    features ``(B, C, *shape)`` per tensor → features of the same spec and shapes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import final

import torch
from torch import nn

from nfkit.errors import UnsupportedArchitectureError
from nfkit.spaces.universal import SCALE, SIGN, TensorSpec, UniversalSpec
from nfkit.spaces.universal_features import UniversalFeatures

__all__ = ["UniversalCanonicalization", "CanonicalStep", "canonicalisation_order"]


@dataclass(frozen=True)
class CanonicalStep:
    """Canonicalise set ``name`` (its ``factors``) from the slices of ``out`` and ``into``
    (tensor name, axis carrying the set)."""

    name: str
    factors: frozenset[str]
    out: tuple[tuple[str, int], ...]
    into: tuple[tuple[str, int], ...]


def _reads(t: TensorSpec, name: str, resolved: set[str]) -> tuple[int, str] | None:
    """The axis through which ``t`` reads set ``name`` (see the module docstring) and its role, or ``None``."""
    carrying = [(d, a.role) for d, a in t.symmetric_axes() if a.set == name and a.role != "tied"]
    if len(carrying) != 1:
        return None
    others = [a.set for d, a in t.symmetric_axes() if a.set != name]
    return carrying[0] if all(s in resolved for s in others) else None


def canonicalisation_order(spec: UniversalSpec) -> list[CanonicalStep]:
    """The sets with scalings or signs in the order the front decides them, with the tensors each is read from.

    Raises:
        UnsupportedArchitectureError: the space has no scalings or signs, or a set with them that no tensor reads.
    """
    pending = [s for s in spec.sets if s.kind == "permutation" and s.factors]
    if not pending:
        raise UnsupportedArchitectureError(f"canonicalisation removes scalings or sign flips, but {spec.describe()} has neither")
    resolved = {s.name for s in spec.sets if not (s.kind == "permutation" and s.factors)}
    steps = []
    while pending:
        for s in pending:
            reading = [(t.name, *axis) for t in spec.tensors if (axis := _reads(t, s.name, resolved)) is not None]
            if reading:
                break
        else:
            raise UnsupportedArchitectureError(
                f"cannot canonicalise the scalings/signs of {', '.join(s.name for s in pending)}: every tensor that "
                f"carries them carries one set twice or another such set"
            )
        steps.append(CanonicalStep(
            s.name, s.factors,
            tuple((name, d) for name, d, role in reading if role == "out"),
            tuple((name, d) for name, d, role in reading if role == "in"),
        ))
        resolved.add(s.name)
        pending.remove(s)
    return steps


def _slices(x: torch.Tensor, dim: int) -> torch.Tensor:  # (B, C, …, n at 2 + dim, …) → (B, n, rest)
    return x.movedim(2 + dim, 1).flatten(2)


@final
class UniversalCanonicalization(nn.Module):
    """Map the weights of a traced network to the canonical point of their scaling/sign orbit.

    Args:
        spec: the weight space (a :class:`~nfkit.spaces.UniversalSpec`).
        eps: norms below it count as ``eps`` (a dead neuron stays zero).

    Attributes:
        factors: the canonicalised factors (``"scale"``, ``"sign"``).
        steps: the sets in the order they are decided (:func:`canonicalisation_order`).

    Example:
        >>> from nfkit.nets import RecurrentClassifier
        >>> from nfkit.spaces import universal_spec_of
        >>> spec = universal_spec_of(RecurrentClassifier(5, 4, 3, "gru", tokens=False))
        >>> front = UniversalCanonicalization(spec)
        >>> sorted(front.factors), [s.name for s in front.steps]
        (['sign'], ['recurrent.hidden0'])
    """

    def __init__(self, spec: UniversalSpec, eps: float = 1e-12) -> None:
        super().__init__()
        self.spec = spec
        self.eps = eps
        self.steps = canonicalisation_order(spec)
        self.factors = frozenset().union(*(s.factors for s in self.steps))
        # where each set sits: tensor name → [(axis, role)]
        self._axes: dict[str, list[tuple[str, int, str]]] = {
            s.name: [(t.name, d, a.role) for t in spec.tensors for d, a in t.symmetric_axes() if a.set == s.name]
            for s in self.steps
        }

    def _rescale(self, named: dict[str, torch.Tensor], name: str, d: torch.Tensor) -> None:
        # d (B, n): "out" axes times d_i, "in" axes divided by d_i, tied axes untouched
        for tensor, dim, role in self._axes[name]:
            if role == "tied":
                continue
            x = named[tensor]
            shape = [x.shape[0]] + [1] * (x.dim() - 1)
            shape[2 + dim] = -1
            named[tensor] = x * d.view(shape) if role == "out" else x / d.view(shape)

    def forward(self, features: UniversalFeatures) -> UniversalFeatures:
        self.spec.require_compatible(features.spec)
        named = dict(features.named)
        for step in self.steps:
            if SCALE in step.factors:
                use, role = (step.out, "out") if step.out else (step.into, "in")
                squares = sum(_slices(named[t], d).square().sum(-1) for t, d in use)
                norm = torch.as_tensor(squares).sqrt().clamp_min(self.eps)  # (B, n)
                self._rescale(named, step.name, 1.0 / norm if role == "out" else norm)
            if SIGN in step.factors:
                total = sum(_slices(named[t], d).sum(-1) for t, d in step.out + step.into)
                total = torch.as_tensor(total)
                self._rescale(named, step.name, torch.where(total < 0, -1.0, 1.0).to(total.dtype))
        return UniversalFeatures(self.spec, named)

    def extra_repr(self) -> str:
        return ", ".join(sorted(self.factors))
