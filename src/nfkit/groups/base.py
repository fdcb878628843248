"""Abstract groups and group elements.

A :class:`Group` is a library object: it can draw random elements, give its
identity, say whether it contains another group (the subgroup relation that
negative controls rely on), split itself into its factors, and name the larger group a
negative control uses. A :class:`GroupElement` composes and inverts.

Groups speak sizes and elements only. How an element moves a weight space's tensors belongs
to the space (the escnn way: a feature type owns its ``transform``), so ``g.act(x)`` is
``x.transform(g)`` and this package imports nothing above it.
"""

from __future__ import annotations

import abc
from typing import Protocol, TypeVar

import torch

__all__ = ["Group", "GroupElement", "Transformable"]


class Transformable(Protocol):
    """Anything a group element can act on: it owns the action (``WeightSpaceFeatures``, ``TransformerFeatures``)."""

    def transform(self: _T, element: GroupElement) -> _T:
        """The features moved by ``element``; shapes unchanged."""
        ...


_T = TypeVar("_T", bound=Transformable)


class GroupElement(abc.ABC):
    """One element ``g`` of a group acting on a weight space."""

    @abc.abstractmethod
    def compose(self, other: GroupElement) -> GroupElement:
        """The product ``self ∘ other``: acting with it equals acting with ``other`` first, then ``self``."""

    @abc.abstractmethod
    def inverse(self) -> GroupElement:
        """The element ``g⁻¹`` with ``g ∘ g⁻¹ = identity``."""

    def act(self, features: _T) -> _T:
        """Apply ``g`` to every batch item and channel of ``features`` (shapes are unchanged).

        The features own the action: this is ``features.transform(self)``.
        """
        return features.transform(self)

    @abc.abstractmethod
    def allclose(self, other: GroupElement, *, rtol: float = 1e-10, atol: float = 0.0) -> bool:
        """Whether two elements are equal up to floating-point tolerance."""

    def __matmul__(self, other: GroupElement) -> GroupElement:
        return self.compose(other)

    def __call__(self, features: _T) -> _T:
        return self.act(features)


class Group(abc.ABC):
    """A group acting on the weight space of one architecture."""

    @abc.abstractmethod
    def sample(self, generator: torch.Generator | None = None) -> GroupElement:
        """Draw a random element (deterministic given ``generator``)."""

    @abc.abstractmethod
    def identity(self) -> GroupElement:
        """The identity element."""

    @abc.abstractmethod
    def contains(self, other: Group) -> bool:
        """Whether ``other`` is a subgroup of ``self`` (every element of ``other`` lies in ``self``)."""

    @property
    @abc.abstractmethod
    def name(self) -> str:
        """A short human-readable name, e.g. ``"permutations × positive scaling"``."""

    @abc.abstractmethod
    def factor_subgroups(self) -> list[Group]:
        """Each factor of this group as a group of its own (so large scalings, GL and sign flips are checked alone)."""

    @abc.abstractmethod
    def negative_control(self) -> Group | None:
        """This group times the first factor it lacks (a group a model that respects only ``self`` must break), if any."""

    @abc.abstractmethod
    def rescalings(self, scale_range: tuple[float, float]) -> Group | None:
        """The continuous, function-preserving subgroup (positive scalings, GL blocks) drawing scales from
        ``scale_range``, or ``None`` if this group has none."""

    @abc.abstractmethod
    def with_scale_range(self, low: float, high: float) -> Group:
        """The same group, drawing continuous scales (positive scalings, GL scales) log-uniformly from ``[low, high]``."""

    @property
    @abc.abstractmethod
    def commutes_with_centering(self) -> bool:
        """Whether subtracting a per-tensor mean commutes with every element (true only for permutations)."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__}: {self.name}>"
