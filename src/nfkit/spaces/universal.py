"""One weight-space description for any network: :class:`UniversalSpec`.

A network's weight space is a set of named tensors. Each tensor axis is either *fixed* (inputs,
outputs, kernel positions, gate indices) or labelled with a :class:`NeuronSet`: the neurons
(channels, hidden units, LoRA ranks) that a symmetry of the network acts on. One element ``g``
acts on a set of ``n`` neurons by an invertible ``n × n`` matrix ``G``:

* permutation sets: ``G = D P`` (a permutation, times a diagonal of positive scales and/or signs
  when the set's activations allow it; :attr:`NeuronSet.factors`);
* GL sets (LoRA ranks): any invertible ``G`` (Putterman et al. 2024, "Learning on LoRAs").

How ``G`` moves an axis depends on the axis' :attr:`TensorAxis.role`:

* ``"out"``: the axis *produces* the neurons (weight rows, biases): ``x ↦ G x`` along it;
* ``"in"``: the axis *consumes* them (weight columns, and attention keys, which meet the queries in an
  inner product): ``x ↦ x G⁻¹`` along it (the same as ``x ↦ G⁻ᵀ x`` on one axis);
* ``"tied"``: a per-neuron parameter that only follows the permutation (norm parameters and
  statistics, the rows of GRU/LSTM gates that a sign flip must not reach): ``x ↦ P x``.

A GL set may be *blocked* by a permutation set (:attr:`NeuronSet.blocks`): attention heads carry one
``GL(d)`` matrix per head, and the heads are permuted together with their matrices (Transformer-NFN,
Tran et al., ICLR 2025, Sec. 3). A tensor with such an axis also has an axis of the heads.

This is the permutation spec of Universal Neural Functionals (Zhou, Finn, Harrison, NeurIPS 2024,
Sec. 2: an id per axis; axes with one id permute together) extended by the roles, which say how
scalings, signs and GL act. :func:`nfkit.spaces.universal_spec_of` derives it from a module.

Example:
    >>> from nfkit.spaces import WeightSpaceSpec
    >>> spec = universal_spec(WeightSpaceSpec.mlp([2, 8, 1], "relu"))
    >>> [t.name for t in spec.tensors], spec.tensor("W1").shape
    (['W1', 'b1', 'W2', 'b2'], (8, 2))
    >>> spec.sets[0]
    NeuronSet(name='h1', size=8, kind='permutation', factors=frozenset({'scale'}), blocks='')
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, ClassVar, Literal, final

import torch

from nfkit.errors import SpecMismatchError
from nfkit.groups.sets import SCALE, SIGN, NeuronSet

if TYPE_CHECKING:
    from nfkit.groups.universal import UniversalGroup
    from nfkit.spaces.spec import WeightSpaceSpec
    from nfkit.spaces.universal_features import UniversalFeatures

__all__ = ["NeuronSet", "TensorAxis", "TensorSpec", "UniversalSpec", "universal_spec", "SCALE", "SIGN"]

Role = Literal["out", "in", "tied"]


@final
@dataclass(frozen=True)
class TensorAxis:
    """A symmetric axis: the set it carries, how the set's matrix acts on it, and the set it came from
    before residual additions tied sets together (:meth:`UniversalSpec.untied`)."""

    set: str
    role: Role
    origin: str = field(default="", compare=False)


@final
@dataclass(frozen=True)
class TensorSpec:
    """One tensor of the weight space and where it lives in the module.

    Attributes:
        name: unique name (the state-dict key, with ``"[gate]"`` for a block of rows).
        shape: the tensor's shape in the weight space.
        axes: per axis, a :class:`TensorAxis` or ``None`` (fixed).
        parameter: the state-dict key it is read from and written to.
        rows: ``(start, stop)`` of the parameter's first dim it occupies (GRU/LSTM gate blocks), or ``None``.
            The selected rows are reshaped to ``shape`` (a dense layer after a flatten sees ``(out, C, H·W)``).
        io: per axis, for an unlabelled axis over the network's input or output neurons the name of that
            fixed neuron set, ``""`` otherwise (kernel positions, gates); ``()`` when not known. No symmetry
            acts there; UNF's convention permutes them anyway (:class:`~nfkit.layers.UNFLinear`'s ``permute_io``).
    """

    name: str
    shape: tuple[int, ...]
    axes: tuple[TensorAxis | None, ...]
    parameter: str
    rows: tuple[int, int] | None = None
    io: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if len(self.axes) != len(self.shape):
            raise SpecMismatchError(f"tensor {self.name!r}: {len(self.axes)} axis labels for shape {self.shape}")
        if self.io and (len(self.io) != len(self.axes) or any(n and a is not None for n, a in zip(self.io, self.axes))):
            raise SpecMismatchError(f"tensor {self.name!r}: io names must mark unlabelled axes only")

    @property
    def numel(self) -> int:
        """Entries of the tensor."""
        return math.prod(self.shape)

    def symmetric_axes(self) -> tuple[tuple[int, TensorAxis], ...]:
        """``(dim, axis)`` for the labelled axes."""
        return tuple((d, a) for d, a in enumerate(self.axes) if a is not None)


@final
@dataclass(frozen=True)
class UniversalSpec:
    """Named tensors with labelled axes, and the neuron sets the labels refer to.

    Shapes:
        features of this space: one tensor ``(B, C, *shape)`` per :class:`TensorSpec`, in order.
    """

    tensors: tuple[TensorSpec, ...]
    sets: tuple[NeuronSet, ...]
    #: the container of this space's features, set by :mod:`nfkit.spaces.universal_features`
    features_type: ClassVar[type[UniversalFeatures]]

    def __post_init__(self) -> None:
        names = [t.name for t in self.tensors]
        if len(set(names)) != len(names):
            raise SpecMismatchError("tensor names must be unique")
        sizes = {s.name: s for s in self.sets}
        if len(sizes) != len(self.sets):
            raise SpecMismatchError("neuron set names must be unique")
        for t in self.tensors:
            for d, axis in t.symmetric_axes():
                s = sizes.get(axis.set)
                if s is None:
                    raise SpecMismatchError(f"tensor {t.name!r} axis {d} refers to unknown neuron set {axis.set!r}")
                if s.size != t.shape[d]:
                    raise SpecMismatchError(f"tensor {t.name!r} axis {d} has size {t.shape[d]}, set {s.name!r} has {s.size}")
                if s.kind == "gl" and axis.role == "tied":
                    raise SpecMismatchError(f"tensor {t.name!r}: a GL set cannot act on a tied axis")
                if s.blocks and not any(a is not None and a.set == s.blocks for a in t.axes):
                    raise SpecMismatchError(f"tensor {t.name!r}: set {s.name!r} comes in blocks of {s.blocks!r}, an axis the tensor lacks")
        for s in self.sets:
            if s.blocks and (s.blocks not in sizes or sizes[s.blocks].kind != "permutation"):
                raise SpecMismatchError(f"neuron set {s.name!r} is blocked by {s.blocks!r}, which is not a permutation set")

    # --- look-ups --------------------------------------------------------------------------
    def tensor(self, name: str) -> TensorSpec:
        """The tensor called ``name``."""
        for t in self.tensors:
            if t.name == name:
                return t
        raise SpecMismatchError(f"no tensor {name!r}; tensors: {', '.join(t.name for t in self.tensors)}")

    def neuron_set(self, name: str) -> NeuronSet:
        """The neuron set called ``name``."""
        for s in self.sets:
            if s.name == name:
                return s
        raise SpecMismatchError(f"no neuron set {name!r}")

    def tensor_shapes(self) -> dict[str, tuple[int, ...]]:
        """Name → shape, in order."""
        return {t.name: t.shape for t in self.tensors}

    @property
    def num_parameters(self) -> int:
        """Entries over all tensors."""
        return sum(t.numel for t in self.tensors)

    @property
    def shape_key(self) -> tuple[object, ...]:
        """What decides which features fit: names, shapes and labels."""
        return tuple((t.name, t.shape, t.axes) for t in self.tensors), self.sets

    def require_compatible(self, other: object, what: str = "the features") -> None:
        """Raise :class:`SpecMismatchError` unless ``other`` describes the same space."""
        if not isinstance(other, UniversalSpec) or other.shape_key != self.shape_key:
            raise SpecMismatchError(f"{what} do not match this weight space ({self.describe()})")

    def describe(self) -> str:
        """E.g. ``"6 tensors, 1185 entries; sets h1 (32, permutation × sign), …"``."""
        sets = ", ".join(
            f"{s.name} ({s.size}, {s.kind}{''.join(' × ' + f for f in sorted(s.factors))})" for s in self.sets
        )
        return f"{len(self.tensors)} tensors, {self.num_parameters} entries; sets {sets or 'none'}"

    # --- serialisation ----------------------------------------------------------------------
    def to_dict(self) -> dict[str, object]:
        """A JSON-ready description; :meth:`from_dict` inverts it exactly."""
        return {
            "type": "universal",
            "sets": [{"name": s.name, "size": s.size, "kind": s.kind, "factors": sorted(s.factors), "blocks": s.blocks}
                     for s in self.sets],
            "tensors": [
                {
                    "name": t.name,
                    "shape": list(t.shape),
                    "axes": [None if a is None else [a.set, a.role, a.origin] for a in t.axes],
                    "parameter": t.parameter,
                    "rows": None if t.rows is None else list(t.rows),
                    "io": list(t.io),
                }
                for t in self.tensors
            ],
        }

    @staticmethod
    def from_dict(data: Mapping[str, Any]) -> UniversalSpec:
        """The spec :meth:`to_dict` described (raises ``KeyError``/``TypeError``/``ValueError`` on anything else)."""
        if data.get("type") != "universal":
            raise ValueError("not a universal weight-space description")
        sets = tuple(
            NeuronSet(str(s["name"]), int(s["size"]), s["kind"], frozenset(str(f) for f in s["factors"]), str(s.get("blocks", "")))
            for s in data["sets"]
        )
        tensors = tuple(
            TensorSpec(
                str(t["name"]),
                tuple(int(n) for n in t["shape"]),
                tuple(None if a is None else TensorAxis(str(a[0]), a[1], str(a[2])) for a in t["axes"]),
                str(t["parameter"]),
                None if t["rows"] is None else (int(t["rows"][0]), int(t["rows"][1])),
                tuple(str(n) for n in t.get("io", ())),
            )
            for t in data["tensors"]
        )
        return UniversalSpec(tensors, sets)

    # --- derived spaces ----------------------------------------------------------------------
    def untied(self) -> UniversalSpec:
        """The same tensors with every axis back on the set it came from, as if residual additions
        tied nothing (a *larger* group than the network has: its negative control)."""
        by_name = {s.name: s for s in self.sets}
        origins: dict[str, NeuronSet] = {}
        tensors = []
        for t in self.tensors:
            axes: list[TensorAxis | None] = []
            for axis in t.axes:
                if axis is None:
                    axes.append(None)
                    continue
                origin = axis.origin or axis.set
                origins.setdefault(origin, replace(by_name[axis.set], name=origin))
                axes.append(TensorAxis(origin, axis.role, origin))
            tensors.append(replace(t, axes=tuple(axes)))
        return UniversalSpec(tuple(tensors), tuple(origins.values()))

    def with_factors(self, factors: Mapping[str, frozenset[str]]) -> UniversalSpec:
        """The same space with other per-set factors (``set name → factors``; others unchanged)."""
        sets = tuple(replace(s, factors=factors.get(s.name, s.factors)) for s in self.sets)
        return UniversalSpec(self.tensors, sets)

    # --- features and groups --------------------------------------------------------------------
    def randn(
        self, batch_size: int = 1, channels: int = 1, *, generator: torch.Generator | None = None,
        dtype: torch.dtype = torch.float32, device: torch.device | str | None = None,
    ) -> UniversalFeatures:
        """Standard-normal features: each tensor ``(batch_size, channels, *shape)``."""
        return self.features_type(self, {
            t.name: torch.randn((batch_size, channels, *t.shape), generator=generator, dtype=dtype, device=device)
            for t in self.tensors
        })

    def zeros(self, batch_size: int = 1, channels: int = 1, *, dtype: torch.dtype = torch.float32) -> UniversalFeatures:
        """All-zero features."""
        return self.features_type(self, {t.name: torch.zeros((batch_size, channels, *t.shape), dtype=dtype) for t in self.tensors})

    def unflatten(self, flat: torch.Tensor) -> UniversalFeatures:
        """Inverse of ``features.flatten()``: ``(B, C, P)`` → features."""
        return self.features_type.unflatten(self, flat)

    def universal(self) -> UniversalSpec:
        """Itself: every spec has a universal description, this one is one."""
        return self

    def zero_tensors(self) -> frozenset[str]:
        """None: a traced space holds only the tensors the network has."""
        return frozenset()

    def symmetry_group(self) -> UniversalGroup:
        """The group the network has: every set with its factors (GL sets whole)."""
        from nfkit.groups.universal import UniversalGroup

        return UniversalGroup(self.sets)

    def permutation_group(self) -> UniversalGroup:
        """Permutations of every set (GL sets by their permutation matrices), no scalings or signs."""
        from nfkit.groups.universal import UniversalGroup

        # a blocked GL set contributes one permutation shared by every block: a subgroup of its GL(d)^h
        return UniversalGroup(tuple(replace(s, kind="permutation", factors=frozenset(), blocks="") for s in self.sets))

    def trivial_group(self) -> UniversalGroup:
        """The identity alone; its negative control is :meth:`permutation_group`."""
        from nfkit.groups.universal import trivial_on

        return trivial_on(self.sets)


def universal_spec(spec: WeightSpaceSpec, *, permute_io: bool = False) -> UniversalSpec:
    """The :class:`UniversalSpec` of an MLP's or CNN's spec: :meth:`~nfkit.spaces.WeightSpaceSpec.universal`."""
    return spec.universal(permute_io=permute_io)
