"""Abstract groups and group elements.

A :class:`Group` is a library object: it can draw random elements, give its
identity, and say whether it contains another group (the subgroup relation that
negative controls rely on). A :class:`GroupElement` composes, inverts, and acts
on :class:`~nfkit.spaces.WeightSpaceFeatures`.
"""

from __future__ import annotations

import abc
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from nfkit.spaces.features import WeightSpaceFeatures

__all__ = ["Group", "GroupElement"]


class GroupElement(abc.ABC):
    """One element ``g`` of a group acting on a weight space."""

    @abc.abstractmethod
    def compose(self, other: GroupElement) -> GroupElement:
        """The product ``self ∘ other``: acting with it equals acting with ``other`` first, then ``self``."""

    @abc.abstractmethod
    def inverse(self) -> GroupElement:
        """The element ``g⁻¹`` with ``g ∘ g⁻¹ = identity``."""

    @abc.abstractmethod
    def act(self, features: WeightSpaceFeatures) -> WeightSpaceFeatures:
        """Apply ``g`` to every batch item and channel of ``features`` (shapes are unchanged)."""

    @abc.abstractmethod
    def allclose(self, other: GroupElement, *, rtol: float = 1e-10, atol: float = 0.0) -> bool:
        """Whether two elements are equal up to floating-point tolerance."""

    def __matmul__(self, other: GroupElement) -> GroupElement:
        return self.compose(other)

    def __call__(self, features: WeightSpaceFeatures) -> WeightSpaceFeatures:
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

    def __repr__(self) -> str:
        return f"<{type(self).__name__}: {self.name}>"
