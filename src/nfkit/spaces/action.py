"""How a group element moves the tensors of a weight space: the one action every feature type uses.

Per labelled axis of a :class:`~nfkit.spaces.UniversalSpec` tensor, with ``G`` the matrix the element
holds for the axis' set: ``x ↦ G x`` (``"out"``), ``x ↦ x G⁻¹`` (``"in"``) or ``x ↦ P x`` (``"tied"``).
A blocked GL set acts head by head before the heads' permutation moves the heads. Dense MLP/CNN
features (Zhou et al. 2023, Sec. 2; Tran et al. NeurIPS 2024, Sec. 4: ``W⁽ⁱ⁾ ↦ g_i W⁽ⁱ⁾ g_{i-1}⁻¹``,
``b⁽ⁱ⁾ ↦ g_i b⁽ⁱ⁾``) and transformer features (Tran et al. ICLR 2025, Sec. 3) are moved through
their spaces' universal descriptions.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from nfkit.errors import GroupMismatchError
from nfkit.groups.base import GroupElement
from nfkit.groups.universal import UniversalElement
from nfkit.spaces.universal import TensorAxis, UniversalSpec

__all__ = ["transform_tensors"]


def transform_tensors(
    spec: UniversalSpec, named: Mapping[str, torch.Tensor], element: GroupElement, *, exact: bool = False
) -> dict[str, torch.Tensor]:
    """``named`` (one ``(B, C, *shape)`` tensor per tensor of ``spec``) moved by ``element``.

    Sets the element does not name stay put; with ``exact`` it must name every set of ``spec``.
    A set it names that ``spec`` lacks, or of another size, is a :class:`GroupMismatchError`.

    Shapes: every tensor keeps its shape.
    """
    if not isinstance(element, UniversalElement):
        raise GroupMismatchError(f"{element!r} does not act on these features")
    sizes = {s.name: s.size for s in spec.sets}
    acting = element.sizes
    if any(sizes.get(k) != n for k, n in acting.items()) or (exact and acting.keys() != sizes.keys()):
        raise GroupMismatchError(
            f"the element acts on neuron sets of sizes {acting}, but the features have sets of sizes {sizes}"
        )
    # "in" axes of a GL set need G⁻¹; a permutation set's "in" axis divides by d after the same gather
    inverses = {k: torch.linalg.inv(g) for k, g in element.matrices.items() if k not in element.blocks}
    out = {}
    for t in spec.tensors:
        x = named[t.name]
        axes = t.symmetric_axes()
        # per-head matrices act on the heads where they are, before the heads' permutation moves them
        for d, axis in axes:
            if axis.set in element.blocks:
                heads = next(h for h, a in axes if a.set == element.blocks[axis.set])
                x = _act_per_head(x, 2 + heads, 2 + d, axis, element.matrices[axis.set])
        for d, axis in axes:
            if axis.set not in element.blocks:
                x = _act_on_axis(x, 2 + d, axis, element, inverses)
        out[t.name] = x
    return out


def _act_per_head(x: torch.Tensor, heads: int, dim: int, axis: TensorAxis, blocks: torch.Tensor) -> torch.Tensor:
    """``x ↦ A_j x`` (``"out"``) or ``x ↦ x A_j⁻¹`` (``"in"``) along ``dim`` for the slice of head ``j``."""
    moved = torch.movedim(x, (heads, dim), (-2, -1))
    if axis.role == "out":
        moved = torch.einsum("...jd,jed->...je", moved, blocks.to(x))
    else:
        moved = torch.einsum("...jd,jde->...je", moved, torch.linalg.inv(blocks).to(x))
    return torch.movedim(moved, (-2, -1), (heads, dim))


def _act_on_axis(
    x: torch.Tensor, dim: int, axis: TensorAxis, g: UniversalElement, inverses: Mapping[str, torch.Tensor]
) -> torch.Tensor:
    shape = [1] * x.dim()
    shape[dim] = -1
    if axis.set in g.matrices:
        # "out": x ↦ G x along dim; "in": x ↦ x G⁻¹, i.e. new[j] = Σ_i old[i] (G⁻¹)[i, j]
        m = g.matrices[axis.set] if axis.role == "out" else inverses[axis.set].transpose(0, 1)
        moved = torch.movedim(x, dim, -1)
        return torch.movedim(moved @ m.to(x).transpose(0, 1), -1, dim)
    if axis.set not in g.permutations:
        return x
    sources, d = g.permutations[axis.set]
    x = x.index_select(dim, sources.to(x.device))
    if axis.role == "out":
        return x * d.to(x).view(shape)
    if axis.role == "in":
        return x / d.to(x).view(shape)
    return x
