"""``nfkit params``: parameter counts of every registered model on a reference architecture."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from nfkit.errors import UnsupportedArchitectureError
from nfkit.models import registry
from nfkit.nets.architectures import REFERENCE_ARCHITECTURES
from nfkit.spaces.convert import spec_of
from nfkit.util.table import format_table

__all__ = ["parameter_rows", "format_parameter_rows"]


def _count(module: nn.Module | None) -> int:
    return 0 if module is None else sum(p.numel() for p in module.parameters())


def parameter_rows(architecture: str, hidden_channels: Sequence[int] | None = None) -> list[list[object]]:
    """``[model, form, parameters, of which head]`` per registered model and form (default options)."""
    spec = spec_of(REFERENCE_ARCHITECTURES[architecture]())
    options: dict[str, object] = {} if hidden_channels is None else {"hidden_channels": list(hidden_channels)}
    rows: list[list[object]] = []
    for name in registry.available():
        for form in registry.family(name).forms():
            build = registry.invariant if form == "invariant" else registry.equivariant
            try:
                model = build(name, spec, 1, **options)
            except UnsupportedArchitectureError:
                rows.append([name, form, "n/a", "n/a"])
                continue
            head = getattr(model, "head", None)
            rows.append([name, form, f"{_count(model):,}", f"{_count(head):,}" if head is not None else "—"])
    return rows


def format_parameter_rows(architecture: str, hidden_channels: Sequence[int] | None = None) -> str:
    """The table printed by ``nfkit params``."""
    spec = spec_of(REFERENCE_ARCHITECTURES[architecture]())
    title = f"{architecture}: {spec.describe()} ({spec.num_parameters:,} parameters)"
    widths = "default widths" if hidden_channels is None else f"hidden_channels={list(hidden_channels)}"
    table = format_table(["model", "form", "parameters", "of which head"], parameter_rows(architecture, hidden_channels))
    return f"{title}, {widths}\n{table}"
