"""Sets of neurons that one symmetry factor acts on: :class:`NeuronSet`.

Every group in nfkit is a product over such sets (:class:`~nfkit.groups.UniversalGroup`): the hidden
neurons of one MLP layer, the channels of a residual stream, the heads of an attention block and the
``GL(d)`` of each head, the rank of a LoRA adapter. Which tensor axes a set moves, and how, belongs
to the weight space (:class:`nfkit.spaces.UniversalSpec`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, final

from nfkit.errors import SpecMismatchError

__all__ = ["NeuronSet", "SCALE", "SIGN"]

#: The per-neuron factors a permutation set may carry beyond the permutation itself.
SCALE = "scale"
SIGN = "sign"


@final
@dataclass(frozen=True)
class NeuronSet:
    """Neurons that one symmetry factor acts on.

    Attributes:
        name: unique within the spec (the module path that produces them, e.g. ``"layer1.0.conv1"``).
        size: ``n``.
        kind: ``"permutation"`` (``G = D P``) or ``"gl"`` (any invertible ``G``).
        factors: for permutation sets, which diagonals ``D`` keep the function: ``"scale"``
            (positive, through positively homogeneous activations) and/or ``"sign"`` (through odd ones).
        blocks: for a GL set with one matrix per head, the permutation set of the heads.
    """

    name: str
    size: int
    kind: Literal["permutation", "gl"] = "permutation"
    factors: frozenset[str] = frozenset()
    blocks: str = ""

    def __post_init__(self) -> None:
        if self.size <= 0:
            raise SpecMismatchError(f"neuron set {self.name!r} must have a positive size, got {self.size}")
        if self.kind not in ("permutation", "gl"):
            raise SpecMismatchError(f"neuron set {self.name!r}: kind must be 'permutation' or 'gl', got {self.kind!r}")
        if not self.factors <= {SCALE, SIGN} or (self.kind == "gl" and self.factors):
            raise SpecMismatchError(f"neuron set {self.name!r}: factors {sorted(self.factors)} are not valid for {self.kind}")
        if self.blocks and self.kind != "gl":
            raise SpecMismatchError(f"neuron set {self.name!r}: only GL sets come in blocks")
