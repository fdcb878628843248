"""The model registry: ``invariant``, ``equivariant``, ``available``.

Each family registers builders for its invariant and/or equivariant form. Every
family accepts ``hidden_channels`` (a list of widths) and ``in_channels``, so that
families can be compared at equal width.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from nfkit.models.base import EquivariantModel, InvariantModel
from nfkit.errors import UnknownNameError, UnknownOptionError, UnsupportedArchitectureError
from nfkit.spaces.spec import WeightSpaceSpec
from nfkit.spaces.transformer_spec import TransformerSpec
from nfkit.spaces.universal import UniversalSpec

AnySpec = WeightSpaceSpec | TransformerSpec | UniversalSpec

__all__ = ["ModelFamily", "register", "family", "invariant", "equivariant", "available"]

Form = Literal["invariant", "equivariant"]


@dataclass(frozen=True)
class ModelFamily:
    """A registered family of models.

    Attributes:
        name: the registry name (``"np"``, ``"hnp"``, …).
        summary: one line: what it is and where it comes from.
        invariant: builds the invariant form ``(spec, out_features, **options)``, if the family has one.
        equivariant: builds the equivariant form ``(spec, out_channels, **options)``, if any.
        fixed: keyword arguments the registry passes to both builders and users cannot override
            (for example the layer variant of a family that shares its model class with another).
        spaces: the kinds of weight space it reads: ``"dense"`` (MLPs and CNNs,
            :class:`~nfkit.spaces.WeightSpaceSpec`), ``"transformer"`` (:class:`~nfkit.spaces.TransformerSpec`)
            and/or ``"universal"`` (any traced network, :class:`~nfkit.spaces.UniversalSpec`).
    """

    name: str
    summary: str
    invariant: Callable[..., InvariantModel] | None = None
    equivariant: Callable[..., EquivariantModel] | None = None
    fixed: Mapping[str, object] = field(default_factory=dict)
    spaces: tuple[str, ...] = ("dense",)

    def options(self, form: Form) -> tuple[str, ...]:
        """The options its ``form`` builder accepts (none if it has no such form)."""
        builder = getattr(self, form)
        if builder is None:
            return ()
        hidden = {"spec", "out_features", "out_channels", *self.fixed}
        return tuple(p for p in inspect.signature(builder).parameters if p not in hidden)

    def forms(self) -> tuple[Form, ...]:
        """The forms this family offers."""
        forms: list[Form] = []
        if self.invariant is not None:
            forms.append("invariant")
        if self.equivariant is not None:
            forms.append("equivariant")
        return tuple(forms)


_FAMILIES: dict[str, ModelFamily] = {}


def register(entry: ModelFamily) -> ModelFamily:
    """Add a family to the registry (names are unique)."""
    if entry.name in _FAMILIES:
        raise ValueError(f"a model family named {entry.name!r} is already registered")
    _FAMILIES[entry.name] = entry
    return entry


def family(name: str) -> ModelFamily:
    """The registered family called ``name``."""
    if name not in _FAMILIES:
        raise UnknownNameError(f"no model family {name!r}; available: {', '.join(available())}")
    return _FAMILIES[name]


def _build(name: str, form: Form, spec: AnySpec, size: int, options: dict[str, object]) -> object:
    if not isinstance(spec, (WeightSpaceSpec, TransformerSpec, UniversalSpec)):
        raise TypeError(f"spec must be a WeightSpaceSpec, TransformerSpec or UniversalSpec, got {type(spec).__name__}")
    entry = family(name)
    kind = "transformer" if isinstance(spec, TransformerSpec) else "universal" if isinstance(spec, UniversalSpec) else "dense"
    if kind not in entry.spaces:
        raise UnsupportedArchitectureError(
            f"model family {name!r} reads {' and '.join(entry.spaces)} weight spaces, not {kind} ones; "
            f"for {kind}: {', '.join(n for n, f in sorted(_FAMILIES.items()) if kind in f.spaces)}"
            + ("; or trace the network (nfkit.spaces.universal_spec_of) for its universal space"
               if kind == "transformer" and "universal" in entry.spaces else "")
        )
    builder = getattr(entry, form)
    if builder is None:
        raise ValueError(f"model family {name!r} has no {form} form; it offers: {', '.join(entry.forms())}")
    accepted = entry.options(form)
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise UnknownOptionError(f"{form} model {name!r} does not accept {', '.join(unknown)}; accepted: {', '.join(accepted)}")
    return builder(spec, size, **entry.fixed, **options)


def invariant(name: str, spec: AnySpec, out_features: int = 1, **options: object) -> InvariantModel:
    """Build the invariant model ``name`` for ``spec``: features → ``(B, out_features)``.

    Example:
        >>> from nfkit.spaces import WeightSpaceSpec
        >>> spec = WeightSpaceSpec.mlp([2, 16, 16, 1], "sine")
        >>> model = invariant("hnp", spec, out_features=10, hidden_channels=[8, 8])
        >>> model(spec.randn(3)).shape
        torch.Size([3, 10])
    """
    model = _build(name, "invariant", spec, out_features, options)
    if not isinstance(model, InvariantModel):
        raise TypeError(f"the invariant builder of {name!r} returned a {type(model).__name__}, not an InvariantModel")
    return model


def equivariant(name: str, spec: AnySpec, out_channels: int = 1, **options: object) -> EquivariantModel:
    """Build the equivariant model ``name`` for ``spec``: features → features with ``out_channels`` channels.

    Example:
        >>> from nfkit.spaces import WeightSpaceSpec
        >>> spec = WeightSpaceSpec.mlp([2, 16, 1])
        >>> equivariant("np", spec, hidden_channels=[8])(spec.randn(3)).weights[0].shape
        torch.Size([3, 1, 16, 2])
    """
    model = _build(name, "equivariant", spec, out_channels, options)
    if not isinstance(model, EquivariantModel):
        raise TypeError(f"the equivariant builder of {name!r} returned a {type(model).__name__}, not an EquivariantModel")
    return model


def available(form: Form | None = None) -> list[str]:
    """Registered family names, sorted; only those with ``form`` if given."""
    return sorted(n for n, f in _FAMILIES.items() if form is None or getattr(f, form) is not None)
