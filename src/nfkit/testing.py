"""The symmetry checker: ``assert_equivariant``, ``assert_invariant``, ``assert_not_equivariant``.

Zero configuration for any module that declares ``spec`` (a
:class:`~nfkit.spaces.WeightSpaceSpec`), ``group`` (its declared
:class:`~nfkit.groups.Group`) and ``in_channels``: the checker copies the module
to float64, draws random inputs and group elements itself, and compares

* equivariance: ``g⁻¹ · f(g · x)`` with ``f(x)``;
* invariance: ``f(g · x)`` with ``f(x)``;

reporting the largest relative error ``max|a - b| / max|b|`` per output tensor.
Comparing in the frame of ``x`` (undoing ``g`` on the output) keeps the error
relative even when ``g`` scales entries by up to 10⁶.

Example:
    >>> import nfkit.models
    >>> from nfkit.spaces import WeightSpaceSpec
    >>> model = nfkit.models.invariant("np", WeightSpaceSpec.mlp([3, 4, 2]), hidden_channels=[4])
    >>> report = assert_invariant(model)
    >>> report.passed, report.max_error < 1e-10
    (True, True)
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import nn

from nfkit.groups.base import Group
from nfkit.spaces.features import WeightSpaceFeatures
from nfkit.spaces.named_features import NamedFeatures
from nfkit.spaces.transformer_features import TransformerFeatures
from nfkit.spaces.universal_features import UniversalFeatures

Features = WeightSpaceFeatures | TransformerFeatures | UniversalFeatures

__all__ = [
    "SymmetryReport",
    "check_symmetry",
    "assert_equivariant",
    "assert_invariant",
    "assert_not_equivariant",
    "DEFAULT_TOLERANCE",
]

#: Relative float64 error below which a symmetry counts as held.
DEFAULT_TOLERANCE = 1e-9
#: Relative error above which a negative control counts as broken symmetry.
DEFAULT_BREAK_THRESHOLD = 1e-4

Function = Callable[[Features], "Features | torch.Tensor"]


@dataclass
class SymmetryReport:
    """The outcome of one symmetry check.

    Attributes:
        kind: ``"equivariant"`` or ``"invariant"`` (inferred from the output type).
        group: the group's name.
        errors: the largest relative error per output tensor over all sampled elements.
        tolerance: the threshold the check used.
    """

    kind: Literal["equivariant", "invariant"]
    group: str
    errors: dict[str, float] = field(default_factory=dict)
    tolerance: float = DEFAULT_TOLERANCE

    @property
    def max_error(self) -> float:
        """The largest error over all outputs (``inf`` if an output was NaN or Inf)."""
        return max(self.errors.values(), default=0.0)

    @property
    def passed(self) -> bool:
        """Whether every error is below the tolerance."""
        return self.max_error <= self.tolerance

    def __str__(self) -> str:
        width = max((len(k) for k in self.errors), default=6)
        lines = [f"{self.kind} under {self.group} (tolerance {self.tolerance:.1e}):"]
        for name, err in self.errors.items():
            flag = "ok" if err <= self.tolerance else "FAIL"
            lines.append(f"  {name:<{width}}  {err:.3e}  {flag}")
        return "\n".join(lines)


def _declared(module: object, attribute: str) -> Any:
    value = getattr(module, attribute, None)
    if value is None:
        raise TypeError(
            f"{type(module).__name__} does not declare `{attribute}`; pass it explicitly "
            f"(the checker needs a spec, a group and in_channels to draw inputs and group elements)"
        )
    return value


def _prepare(module: Function, dtype: torch.dtype) -> Function:
    if isinstance(module, nn.Module):
        module = copy.deepcopy(module).to(dtype).eval()
    return module


def _relative_error(actual: torch.Tensor, expected: torch.Tensor) -> float:
    if not (bool(torch.isfinite(actual).all()) and bool(torch.isfinite(expected).all())):
        return math.inf
    scale = expected.abs().max().item()
    diff = (actual - expected).abs().max().item()
    return diff / scale if scale > 0 else diff


def _named_outputs(out: Features | torch.Tensor) -> dict[str, torch.Tensor]:
    if isinstance(out, WeightSpaceFeatures):
        named = {}
        for i, (w, b) in enumerate(zip(out.weights, out.biases)):
            named[f"weights[{i}]"] = w
            named[f"biases[{i}]"] = b
        return named
    if isinstance(out, NamedFeatures):
        return out.named_tensors()
    if isinstance(out, torch.Tensor):
        return {"output": out}
    raise TypeError(f"the module returned {type(out).__name__}; expected WeightSpaceFeatures or a Tensor")


def check_symmetry(
    module: Function,
    group: Group | None = None,
    inputs: Features | None = None,
    *,
    samples: int = 4,
    seed: int = 0,
    batch_size: int = 2,
    dtype: torch.dtype = torch.float64,
    tolerance: float = DEFAULT_TOLERANCE,
) -> SymmetryReport:
    """Measure how far ``module`` is from equivariance (features out) or invariance (tensor out).

    Args:
        module: an ``nn.Module`` (copied, cast to ``dtype``, put in eval mode) or any function
            of :class:`~nfkit.spaces.WeightSpaceFeatures`.
        group: the group to test; by default ``module.group``.
        inputs: features to test on; by default ``module.spec.randn(batch_size, module.in_channels)``.
        samples: how many random group elements to draw.
        seed: seeds the inputs and the group elements.

    Returns:
        a :class:`SymmetryReport` (it does not raise on failure; the ``assert_*`` functions do).
    """
    generator = torch.Generator().manual_seed(seed)
    if group is None:
        group = _declared(module, "group")
    if not isinstance(group, Group):
        raise TypeError(f"the group to check must be an nfkit Group, got {type(group).__name__}")
    if inputs is None:
        spec = _declared(module, "spec")
        channels = _declared(module, "in_channels")
        inputs = spec.randn(batch_size, channels, generator=generator, dtype=dtype)
    else:
        inputs = inputs.to(dtype)
    fn = _prepare(module, dtype)
    with torch.no_grad():
        reference = fn(inputs)
        kind: Literal["equivariant", "invariant"] = (
            "equivariant" if isinstance(reference, NamedFeatures) else "invariant"
        )
        expected = _named_outputs(reference)
        report = SymmetryReport(kind, group.name, {name: 0.0 for name in expected}, tolerance)
        for _ in range(samples):
            g = group.sample(generator)
            out = fn(g.act(inputs))
            if kind == "equivariant":
                if not isinstance(out, NamedFeatures):
                    raise TypeError("the module returned features for one input and a tensor for another")
                out = g.inverse().act(out)
            for name, actual in _named_outputs(out).items():
                report.errors[name] = max(report.errors[name], _relative_error(actual, expected[name]))
    return report


def assert_equivariant(
    module: Function, group: Group | None = None, inputs: Features | None = None, **options: Any
) -> SymmetryReport:
    """Assert ``f(g · x) = g · f(x)`` for sampled ``g``; raise ``AssertionError`` with the per-output report.

    Options are those of :func:`check_symmetry`.
    """
    report = check_symmetry(module, group, inputs, **options)
    if report.kind != "equivariant":
        raise AssertionError("assert_equivariant: the module returned a tensor; use assert_invariant")
    if not report.passed:
        raise AssertionError(f"not equivariant:\n{report}")
    return report


def assert_invariant(
    module: Function, group: Group | None = None, inputs: Features | None = None, **options: Any
) -> SymmetryReport:
    """Assert ``f(g · x) = f(x)`` for sampled ``g``; raise ``AssertionError`` with the per-output report.

    Options are those of :func:`check_symmetry`.
    """
    report = check_symmetry(module, group, inputs, **options)
    if report.kind != "invariant":
        raise AssertionError("assert_invariant: the module returned features; use assert_equivariant")
    if not report.passed:
        raise AssertionError(f"not invariant:\n{report}")
    return report


def assert_not_equivariant(
    module: Function,
    larger_group: Group,
    inputs: Features | None = None,
    *,
    threshold: float = DEFAULT_BREAK_THRESHOLD,
    **options: Any,
) -> SymmetryReport:
    """Negative control: assert that ``module`` is *not* equivariant (or invariant) to ``larger_group``.

    Passes when the largest relative error exceeds ``threshold``, far above float64 rounding.
    """
    report = check_symmetry(module, larger_group, inputs, **options)
    if report.max_error <= threshold:
        hint = " or its output does not depend on its input (a constant function respects every group)"
        raise AssertionError(
            f"negative control failed: the module is {report.kind} under {larger_group.name} "
            f"as well (largest error {report.max_error:.3e} <= {threshold:.1e}); "
            f"it respects a larger group than it should, the control group is wrong,{hint}"
        )
    return report
