"""The ``nfkit bench`` suite: the comparison table with ratios, how cost grows, the targets, a plot.

See :mod:`nfkit.bench.measure` for what one measurement is. Ratios are time and memory divided by those
of the reference on the same input: ``np`` against ``nfn-np``, ``hnp`` against ``nfn-hnp``, every
other row against ``nfn-np``; ``monomial`` and ``magep`` are also divided by ``graph``.

Each row is timed alternately with the row its target (or, without one, its reference) names, in
one process (:attr:`~nfkit.bench.measure.Case.partner`); that ratio is printed as its median over
the alternating pairs with the range in brackets, ``0.45 (0.41–0.49)``, and the targets are judged
on the median. Other ratios divide two separately timed rows and carry no spread.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from nfkit.bench.measure import BENCH_ARCHITECTURES, FLOOR, REFERENCE_LAYERS, Case, Measurement, measure_isolated, variant

__all__ = ["compare", "scaling", "format_comparison", "format_scaling", "target_lines", "plot_scaling", "Target", "TARGETS"]

#: Rows measured beside the defaults: NP and HNP recomputed 8 networks at a time in backward, the
#: memory-for-time trade (``recompute``, :func:`~nfkit.layers.recompute.recomputed_in_chunks`).
RECOMPUTED_ROWS = ("np[recompute=8]", "hnp[recompute=8]")

#: Rows divided by ``graph``'s.
GRAPH_RELATIVE = ("monomial", "magep")


def reference_of(model: str) -> str:
    """The reference row a model's ratio is taken against (a variant such as ``np[recompute=8]``: its family's)."""
    return "nfn-hnp" if variant(model)[0] == "hnp" else "nfn-np"


def _measured(case: Case, timeout: float, progress: Callable[[Measurement], None] | None) -> Measurement:
    row = measure_isolated(case, timeout)
    if progress is not None:
        progress(row)
    return row


def partner_of(model: str, available: Sequence[str]) -> str:
    """The row ``model`` is timed alternately with: its target's, else its reference (``""`` if not measured)."""
    if model in REFERENCE_LAYERS or model == FLOOR:
        return ""
    against = next((t.against for t in TARGETS if t.model == variant(model)[0]), reference_of(model))
    return against if against in available else ""


def compare(
    models: Sequence[str],
    architectures: Sequence[str] = tuple(BENCH_ARCHITECTURES.values()),
    *,
    batch: int = 32,
    channels: int = 32,
    reps: int = 5,
    device: str = "cpu",
    timeout: float = 600.0,
    progress: Callable[[Measurement], None] | None = None,
    compile: bool = False,
) -> list[Measurement]:
    """Measure every model (registered names, ``nfn-np``, ``nfn-hnp``, :data:`~nfkit.bench.FLOOR`) on every architecture."""
    return [
        _measured(Case(model, architecture, batch, channels, reps, device, partner_of(model, models), compile), timeout, progress)
        for architecture in architectures
        for model in models
    ]


def scaling(
    models: Sequence[str],
    *,
    widths: Sequence[int] = (32, 64, 128, 256, 512, 1024),
    depths: Sequence[int] = (1, 2, 4, 8),
    depth_width: int = 64,
    batch: int = 8,
    channels: int = 16,
    reps: int = 3,
    device: str = "cpu",
    timeout: float = 600.0,
    progress: Callable[[Measurement], None] | None = None,
) -> dict[str, list[Measurement]]:
    """Cost against the input MLP's width (``2-w-w-1``) and depth (``2-64×d-1``, d hidden layers).

    Returns ``{"width": rows, "depth": rows}``. A model that failed or timed out is not run at
    larger sizes of the same sweep.
    """
    sweeps = {
        "width": [f"mlp:2-{w}-{w}-1" for w in widths],
        "depth": ["mlp:2-" + "-".join([str(depth_width)] * d) + "-1" for d in depths],
    }
    result: dict[str, list[Measurement]] = {}
    for name, sweep in sweeps.items():
        rows = result[name] = []
        for model in models:
            for architecture in sweep:
                case = Case(model, architecture, batch, channels, reps, device, partner_of(model, models))
                row = _measured(case, timeout, progress)
                rows.append(row)
                if row.status != "ok":
                    break
    return result


def _index(rows: Sequence[Measurement]) -> dict[tuple[str, str], Measurement]:
    return {(r.case.model, r.case.architecture): r for r in rows if r.status == "ok"}


def _ratio(a: Measurement, b: Measurement | None, attribute: str) -> float:
    summary = a.ratio_summary() if attribute == "median_s" and b is not None and a.case.partner == b.case.model else None
    if summary is not None:
        return summary[0]  # interleaved: the median over alternating pairs
    return getattr(a, attribute) / getattr(b, attribute) if b is not None and getattr(b, attribute) > 0 else math.nan


def _time_ratio_cell(a: Measurement, b: Measurement | None) -> str:
    """The time ratio, with the range over alternating pairs when ``b`` was ``a``'s partner."""
    summary = a.ratio_summary() if b is not None and a.case.partner == b.case.model else None
    if summary is None:
        return _fmt(_ratio(a, b, "median_s"), ".2f")
    median, low, high = summary
    return f"{median:.2f} ({low:.2f}–{high:.2f})"


def _fmt(x: float, spec: str) -> str:
    return "—" if math.isnan(x) else format(x, spec)


def format_comparison(rows: Sequence[Measurement]) -> str:
    """A Markdown table per input architecture: parameters, time, peak memory and the ratios."""
    ok = _index(rows)
    lines: list[str] = []
    for architecture in dict.fromkeys(r.case.architecture for r in rows):
        first = next(r for r in rows if r.case.architecture == architecture)
        case = first.case
        name = next((k for k, v in BENCH_ARCHITECTURES.items() if v == architecture), architecture)
        size = next((r.input_parameters for r in rows if r.case.architecture == architecture and r.status == "ok"), 0)
        lines += [
            f"### {name} ({size:,} weights), batch {case.batch}, {case.channels} channels, {case.device}, "
            f"forward+backward, median of {case.reps}",
            "",
            "| model | form | parameters | time (ms) | peak (MiB) | time × ref | memory × ref | time × graph | memory × graph |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for r in (r for r in rows if r.case.architecture == architecture):
            if r.status != "ok":
                lines.append(f"| {r.case.model} | {r.status}: {r.note} | | | | | | | |")
                continue
            ref = ok.get((reference_of(r.case.model), architecture)) if r.case.model not in REFERENCE_LAYERS else None
            graph = ok.get(("graph", architecture)) if variant(r.case.model)[0] in GRAPH_RELATIVE else None
            form = r.form if r.compile_s is None else f"{r.form}, compiled in {r.compile_s:.1f} s"
            cells = [
                r.case.model, form, f"{r.parameters:,}", f"{r.median_s * 1e3:.1f}", f"{r.peak_mib:.0f}",
                _time_ratio_cell(r, ref), _fmt(_ratio(r, ref, "peak_mib"), ".2f"),
                _time_ratio_cell(r, graph), _fmt(_ratio(r, graph, "peak_mib"), ".2f"),
            ]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def format_scaling(rows: Sequence[Measurement]) -> str:
    """A Markdown table: model, input MLP, its weights, time, peak, and peak per input weight."""
    lines = [
        "| model | input MLP | weights | time (ms) | peak (MiB) | peak per weight (KiB) | time × partner (interleaved) |",
        "|---|---|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        arch = r.case.architecture.removeprefix("mlp:")
        if r.status != "ok":
            lines.append(f"| {r.case.model} | {arch} | | {r.status}: {r.note} | | | |")
            continue
        per = r.peak_mib * 1024 / r.input_parameters
        summary = r.ratio_summary()
        interleaved = f"{summary[0]:.2f} ({summary[1]:.2f}–{summary[2]:.2f}) × {r.case.partner}" if summary else "—"
        lines.append(f"| {r.case.model} | {arch} | {r.input_parameters:,} | {r.median_s * 1e3:.1f} | {r.peak_mib:.0f} | {per:.2f} | {interleaved} |")
    return "\n".join(lines)


@dataclass(frozen=True)
class Target:
    """``model``'s time and memory must be at most ``time``× and ``memory``× those of ``against``."""

    model: str
    against: str
    time: float
    memory: float


#: The issue's targets: NP/HNP against nfn; Monomial-NFN and MAGEP-NFN against the graph metanetwork;
#: NFT's memory against NP's (no time target: attention costs more than NP's pooling by design).
TARGETS = (
    Target("np", "nfn-np", 0.5, 0.6),
    Target("hnp", "nfn-hnp", 0.5, 0.6),
    Target("monomial", "graph", 0.3, 0.3),
    Target("magep", "graph", 0.3, 0.3),
    Target("nft", "np", math.inf, 3.0),
)


#: Growth-sweep targets apply from this hidden width on (the issue: "at width ≥ 128").
GROWTH_TARGET_WIDTH = 128


def target_lines(rows: Sequence[Measurement], targets: Sequence[Target] = TARGETS, *, min_width: int = 0) -> list[str]:
    """One line per target and architecture: the ratios and whether they hold.

    ``min_width`` > 0 reads ``rows`` as a width sweep (``mlp:2-w-w-1``) and skips widths below it.
    """
    ok = _index(rows)
    lines = []
    for t in targets:
        # the family's own row and its variants (np[recompute=8]) each against the target's row
        names = [m for m in dict.fromkeys(r.case.model for r in rows) if variant(m)[0] == t.model]
        for architecture, name in ((a, n) for a in dict.fromkeys(r.case.architecture for r in rows) for n in names):
            if min_width and _sweep_x(architecture, by_width=True) < min_width:
                continue
            a, b = ok.get((name, architecture)), ok.get((t.against, architecture))
            if a is None or b is None:
                continue
            time_ratio, memory_ratio = _ratio(a, b, "median_s"), _ratio(a, b, "peak_mib")
            holds = time_ratio <= t.time and memory_ratio <= t.memory
            time_target = f"target ≤ {t.time}×" if math.isfinite(t.time) else "no target"
            lines.append(
                f"{'met    ' if holds else 'MISSED '} {name} vs {t.against} on {architecture}: time {_time_ratio_cell(a, b)}× "
                f"({time_target}), memory {memory_ratio:.2f}× (target ≤ {t.memory}×)"
            )
    return lines


def plot_scaling(sweeps: dict[str, list[Measurement]], path: str | Path) -> Path:
    """Time and peak memory against the input MLP's width and depth (log-log; :func:`scaling`'s result), as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    width_rows = [r for r in sweeps.get("width", []) if r.status == "ok"]
    depth_rows = [r for r in sweeps.get("depth", []) if r.status == "ok"]
    fig, axes = plt.subplots(2, 2, figsize=(11, 8))
    for col, (sweep, label) in enumerate([(width_rows, "hidden width w (MLP 2-w-w-1)"), (depth_rows, "hidden layers d (MLP 2-64×d-1)")]):
        for model in dict.fromkeys(r.case.model for r in sweep):
            mine = [r for r in sweep if r.case.model == model]
            xs = [_sweep_x(r.case.architecture, by_width=col == 0) for r in mine]
            style = "--" if model in REFERENCE_LAYERS or model == FLOOR else "-"
            axes[0, col].plot(xs, [r.median_s for r in mine], style, marker="o", label=model)
            axes[1, col].plot(xs, [r.peak_mib for r in mine], style, marker="o", label=model)
        for row, ylabel in enumerate(["forward+backward time (s)", "peak memory (MiB)"]):
            axes[row, col].set(xscale="log", yscale="log", xlabel=label, ylabel=ylabel)
            axes[row, col].grid(True, which="both", alpha=0.3)
    axes[0, 0].legend(fontsize=8)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _sweep_x(architecture: str, *, by_width: bool) -> int:
    sizes = architecture.removeprefix("mlp:").split("-")
    return int(sizes[1]) if by_width else len(sizes) - 2


#: Families in the growth sweeps (those the targets name, plus the references and the floor).
SCALING_MODELS = ("np", "hnp", "monomial", "magep", "graph", "nfn-np", "nfn-hnp", FLOOR)


def reference_available() -> bool:
    """Whether the reference package ``nfn`` (``pip install 'nfkit[bench]'``) can be imported."""
    import importlib.util

    return importlib.util.find_spec("nfn") is not None and importlib.util.find_spec("einops") is not None


def run_bench(
    out: str | Path | None = None,
    *,
    models: Sequence[str] | None = None,
    architectures: Sequence[str] = tuple(BENCH_ARCHITECTURES.values()),
    batch: int = 32,
    channels: int = 32,
    reps: int = 5,
    growth: bool = True,
    widths: Sequence[int] = (32, 64, 128, 256, 512, 1024),
    depths: Sequence[int] = (1, 2, 4, 8),
    device: str = "cpu",
    timeout: float = 600.0,
    overwrite: bool = False,
    echo: Callable[[str], None] | None = None,
    compile: bool = False,
) -> dict[str, list[Measurement]]:
    """The whole suite: comparison table with ratios, targets, growth tables; files in ``out`` if given.

    ``compile``: the comparison table's models (and partners) run under ``torch.compile``, each row
    saying how long its compilation took; the growth sweeps stay eager.

    Writes ``bench.md`` (the tables), ``bench.jsonl`` (every measurement) and ``scaling.png``; an
    existing file is only replaced with ``overwrite=True``.
    """
    import torch

    import nfkit.models
    from nfkit.errors import InvalidOptionError

    if device == "cuda" and not torch.cuda.is_available():
        raise InvalidOptionError(f"--device cuda: no CUDA device is available here (torch {torch.__version__}); use --device cpu")
    if echo is None:
        def echo(line: str) -> None:
            print(line, flush=True)

    files = {}
    if out is not None:
        out = Path(out)
        files = {name: out / name for name in ("bench.md", "bench.jsonl", "scaling.png")}
        existing = [str(p) for p in files.values() if p.exists()]
        if existing and not overwrite:
            raise FileExistsError(f"{', '.join(existing)} already exist; pass overwrite=True (--overwrite) to replace them")
        out.mkdir(parents=True, exist_ok=True)
    references = list(REFERENCE_LAYERS) if reference_available() else []
    if not references:
        echo("note: the reference package nfn is not installed (pip install 'nfkit[bench]'); ratios to it are left out")
    chosen = list(models) if models is not None else [FLOOR, *references, *nfkit.models.available(), *RECOMPUTED_ROWS]

    def progress(r: Measurement) -> None:
        where = r.case.architecture
        echo(f"  {r.case.model:<22} {where:<22} " + (f"{r.median_s * 1e3:9.1f} ms {r.peak_mib:8.0f} MiB" if r.status == "ok" else f"{r.status}: {r.note}"))

    echo(f"measuring {len(chosen)} models on {len(architectures)} inputs (batch {batch}, {channels} channels, {device})")
    results = {"compare": compare(chosen, architectures, batch=batch, channels=channels, reps=reps, device=device,
                                  timeout=timeout, progress=progress, compile=compile)}
    report = ["## Forward+backward time and peak memory", "", format_comparison(results["compare"]), "## Targets", "",
              *target_lines(results["compare"]), ""]
    if growth:
        growth_models = [m for m in SCALING_MODELS if m in chosen]
        echo(f"growth sweeps: widths {list(widths)}, depths {list(depths)}")
        results.update(scaling(growth_models, widths=widths, depths=depths, device=device, timeout=timeout, progress=progress))
        case = results["width"][0].case if results["width"] else None
        setting = f"batch {case.batch}, {case.channels} channels, median of {case.reps}" if case else ""
        graph_targets = [t for t in TARGETS if t.against == "graph"]
        report += [f"## Growth with the input MLP's width (2-w-w-1; {setting})", "", format_scaling(results["width"]), "",
                   f"### Targets at width ≥ {GROWTH_TARGET_WIDTH}", "",
                   *target_lines(results["width"], graph_targets, min_width=GROWTH_TARGET_WIDTH), "",
                   f"## Growth with the input MLP's depth (2-64×d-1; {setting})", "", format_scaling(results["depth"]), ""]
    text = "\n".join(report)
    echo("\n" + text)
    if out is not None:
        files["bench.md"].write_text(text + "\n")
        files["bench.jsonl"].write_text("".join(r.to_json() + "\n" for rows in results.values() for r in rows))
        if growth:
            plot_scaling(results, files["scaling.png"])
        echo(f"wrote {', '.join(str(p) for p in files.values() if p.exists())}")
    return results
