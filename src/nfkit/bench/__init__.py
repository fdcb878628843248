"""``nfkit bench``: time and memory of every model against the reference implementation.

:mod:`nfkit.bench.measure` measures one case in its own process; :mod:`nfkit.bench.report` runs
the suite, computes ratios and targets and writes the tables and the plot.
"""

from nfkit.bench.measure import (
    BENCH_ARCHITECTURES,
    FLOOR,
    REFERENCE_LAYERS,
    Case,
    Measurement,
    measure,
    measure_isolated,
    peak_step_mib,
    reference_stack,
    same_function_space,
)
from nfkit.bench.report import reference_available, run_bench

__all__ = [
    "BENCH_ARCHITECTURES",
    "FLOOR",
    "REFERENCE_LAYERS",
    "Case",
    "Measurement",
    "measure",
    "measure_isolated",
    "peak_step_mib",
    "reference_available",
    "reference_stack",
    "same_function_space",
    "run_bench",
]
