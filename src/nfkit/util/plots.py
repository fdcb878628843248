"""Plots are optional: matplotlib (``pip install 'nfkit[plots]'``) with the file-only Agg backend."""

from __future__ import annotations

from types import ModuleType

__all__ = ["pyplot"]


def pyplot() -> ModuleType | None:
    """``matplotlib.pyplot`` on the Agg backend, or ``None`` when matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    return plt
