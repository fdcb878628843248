"""The transformer layout labelled with the neuron sets of its group: :func:`transformer_universal_spec`.

Which set moves which axis of each tensor of a :class:`~nfkit.spaces.TransformerSpec` (Tran et al.,
ICLR 2025, Sec. 3, in the row-vector layout), so that transformer features move through the one
action every weight space uses (:mod:`nfkit.spaces.action`).
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

from nfkit.groups.transformer import FACTOR_ORDER, transformer_sets
from nfkit.spaces.universal import Role, TensorAxis, TensorSpec, UniversalSpec

if TYPE_CHECKING:
    from nfkit.spaces.transformer_spec import TransformerSpec

__all__ = ["transformer_universal_spec"]


#: per block tensor, the (set, role) of each axis; ``None`` for fixed axes
_BLOCK_AXES: dict[str, tuple[tuple[str, Role] | None, ...]] = {
    "query": (("heads", "tied"), ("inputs", "in"), ("query_key", "out")),
    "key": (("heads", "tied"), ("inputs", "in"), ("query_key", "in")),
    "value": (("heads", "tied"), ("inputs", "in"), ("value_output", "out")),
    "output": (("heads", "tied"), ("value_output", "in"), ("stream", "out")),
    "query_bias": (("heads", "tied"), ("query_key", "out")),
    "key_bias": (("heads", "tied"), ("query_key", "in")),
    "value_bias": (("heads", "tied"), ("value_output", "out")),
    "output_bias": (("stream", "out"),),
    "ffn_in": (("ffn", "out"), ("stream", "in")),
    "ffn_in_bias": (("ffn", "out"),),
    "ffn_out": (None, ("ffn", "in")),
}


@functools.lru_cache(maxsize=64)
def transformer_universal_spec(spec: TransformerSpec) -> UniversalSpec:
    """:meth:`TransformerSpec.universal <nfkit.spaces.TransformerSpec.universal>`, built once per spec."""
    sets = transformer_sets(spec)
    tensors: list[TensorSpec] = []
    for name, shape in spec.tensor_shapes().items():
        part, _, short = name.rpartition(".")
        axes: tuple[TensorAxis | None, ...] = (None,) * len(shape)
        if part.startswith("blocks.") and short in _BLOCK_AXES:
            axes = tuple(None if a is None else TensorAxis(f"{part}.{a[0]}", a[1], f"{part}.{a[0]}") for a in _BLOCK_AXES[short])
        elif part == "head":
            assert spec.head is not None
            dense = spec.head.universal().tensor(short)
            axes = tuple(None if a is None else TensorAxis(f"head.{a.set}", a.role, f"head.{a.set}") for a in dense.axes)
        tensors.append(TensorSpec(name, shape, axes, name))
    return UniversalSpec(tuple(tensors), tuple(s for f in FACTOR_ORDER for s in sets[f]))
