"""``nfkit check``: the symmetry check of every registered model on several architectures.

For each model family, form (invariant / equivariant) and architecture, the model is
built for the architecture's spec and checked in float64:

* its declared group must lie inside the architecture's own symmetry group;
* it must be invariant/equivariant under the declared group, sampled as a whole and
  factor by factor (permutations, scalings spanning 1e-3..1e3, sign flips) separately;
* negative control: it must *not* be invariant/equivariant under the declared group
  times the first factor it does not declare.
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from nfkit.errors import UnsupportedArchitectureError
from nfkit.groups.base import Group
from nfkit.models import registry
from nfkit.models.base import WeightSpaceModel
from nfkit.nets.architectures import CHECK_ARCHITECTURES
from nfkit.spaces.convert import spec_of
from nfkit.testing import DEFAULT_BREAK_THRESHOLD, check_symmetry
from nfkit.util.table import format_table

__all__ = ["ARCHITECTURES", "CheckRow", "run_checks", "format_rows"]


#: Small real networks whose specs the check runs on.
ARCHITECTURES = CHECK_ARCHITECTURES

@dataclass
class CheckRow:
    """One line of the ``nfkit check`` table."""

    model: str
    form: str
    architecture: str
    group: str
    error: float
    control_group: str
    control_error: float | None
    problem: str = ""
    applicable: bool = True

    @property
    def passed(self) -> bool:
        """Whether the declared symmetry held and the negative control broke (or the row does not apply)."""
        return not self.problem


def _check_one(model: WeightSpaceModel, architecture_group: Group, samples: int, seed: int) -> CheckRow:
    declared = model.group
    row = CheckRow("", "", "", declared.name, 0.0, "—", None)
    if not architecture_group.contains(declared):
        row.problem = f"declares {declared.name}, but the network only has {architecture_group.name}"
    # the whole group, then each factor on its own (large scalings and sign flips separately)
    groups = [declared, *declared.factor_subgroups()]
    for k, group in enumerate(groups):
        report = check_symmetry(model, group, samples=samples, seed=seed + k)
        row.error = max(row.error, report.max_error)
        if not report.passed and not row.problem:
            row.problem = f"not {report.kind} under {group.name}"
    control = declared.negative_control()
    if control is not None:
        row.control_group = control.name
        report = check_symmetry(model, control, samples=samples, seed=seed)
        row.control_error = report.max_error
        if report.max_error <= DEFAULT_BREAK_THRESHOLD and not row.problem:
            row.problem = f"negative control: also {report.kind} under {control.name}"
    return row


def run_checks(
    models: Sequence[str] | None = None,
    architectures: Sequence[str] | None = None,
    *,
    hidden_channels: Sequence[int] = (8, 8),
    samples: int = 3,
    seed: int = 0,
    progress: Callable[[str, int, int, float], None] | None = None,
) -> list[CheckRow]:
    """Check every (model, form, architecture); see the module docstring.

    ``progress(model, done, total, seconds)`` is called after each family.
    """
    rows = []
    names = list(models if models is not None else registry.available())
    start = time.perf_counter()
    for done, name in enumerate(names, start=1):
        fam = registry.family(name)
        for arch in architectures if architectures is not None else list(ARCHITECTURES):
            spec = spec_of(ARCHITECTURES[arch]())
            for form in fam.forms():
                build = registry.invariant if form == "invariant" else registry.equivariant
                # a fixed initialisation per row: the table is the same on every run
                torch.manual_seed(seed + zlib.crc32(f"{name}/{form}/{arch}".encode()))
                try:
                    model = build(name, spec, hidden_channels=list(hidden_channels))
                except UnsupportedArchitectureError:
                    # the family refuses a network without the symmetry it is built for (a clear error, tested)
                    row = CheckRow("", "", "", "—", 0.0, "—", None, applicable=False)
                else:
                    row = _check_one(model, spec.symmetry_group(), samples, seed)
                row.model, row.form, row.architecture = name, form, arch
                rows.append(row)
        if progress is not None:
            progress(name, done, len(names), time.perf_counter() - start)
    return rows


def format_rows(rows: Sequence[CheckRow]) -> str:
    """The table printed by ``nfkit check``."""
    headers = ["model", "form", "architecture", "declared group", "max error", "control group", "control error", "result"]
    body = [
        [
            r.model,
            r.form,
            r.architecture,
            r.group,
            f"{r.error:.1e}" if r.applicable else "—",
            r.control_group,
            "—" if r.control_error is None else f"{r.control_error:.1e}",
            ("pass" if r.applicable else "n/a (not built for this symmetry)") if r.passed else f"FAIL: {r.problem}",
        ]
        for r in rows
    ]
    return format_table(headers, body)
