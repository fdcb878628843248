"""The benchmark machinery: what it measures and how it reports (timings themselves are not tested)."""

from __future__ import annotations

import pytest
import torch

from nfkit.bench.measure import Case, Measurement, measure, peak_step_mib, same_function_space, variant
from nfkit.bench.report import format_comparison, run_bench, target_lines
from nfkit.layers import HNPLinear, NPLinear
from nfkit.spaces import WeightSpaceSpec


def test_np_and_hnp_span_what_they_should():
    spec = WeightSpaceSpec.mlp([3, 5, 4, 2])
    x = spec.randn(2, 2, dtype=torch.float64)
    np_layer, hnp_layer = NPLinear(spec, 2, 3), HNPLinear(spec, 2, 3)
    assert same_function_space(hnp_layer, np_layer, x) < 1e-10  # NP's group is larger: its maps are HNP maps
    assert same_function_space(NPLinear(spec, 2, 3), np_layer, x) < 1e-10
    # negative control: HNP tells input neurons apart, NP cannot express that
    assert same_function_space(np_layer, hnp_layer, x) > 1e-2


def test_peak_step_memory_counts_what_a_step_holds():
    x = torch.randn(512, 512, requires_grad=True)  # 1 MiB

    def step() -> None:
        (x @ x).relu().sum().backward()

    peak = peak_step_mib(step)
    assert 1.9 < peak < 6  # the product, its relu (kept for backward) and the gradient


def test_measure_reports_a_model_and_marks_unsupported_inputs():
    ok = measure(Case("np", "mlp:3-4-2", batch=2, channels=2, reps=1))
    assert ok.status == "ok" and ok.median_s > 0 and ok.peak_mib > 0 and ok.parameters > 0
    assert ok.input_parameters == 3 * 4 + 4 + 4 * 2 + 2
    na = measure(Case("transformer-nfn", "mlp:3-4-2", batch=2, channels=2, reps=1))
    assert na.status == "n/a" and "transformer" in na.note
    assert Measurement.from_json(ok.to_json()) == ok


def _row(model: str, seconds: float, mib: float) -> Measurement:
    return Measurement(Case(model, "mnist-mlp"), "ok", "equivariant", 1000, 10, seconds, mib)


def test_ratios_and_targets_are_reported_against_the_right_reference():
    rows = [_row("nfn-np", 2.0, 100.0), _row("np", 0.8, 50.0), _row("nfn-hnp", 1.0, 100.0), _row("hnp", 0.9, 50.0),
            _row("graph", 10.0, 1000.0), _row("monomial", 1.0, 100.0), _row("nft", 8.0, 140.0)]
    table = format_comparison(rows)
    assert "| np | equivariant | 10 | 800.0 | 50 | 0.40 | 0.50 |" in table
    assert "| monomial | equivariant | 10 | 1000.0 | 100 | 0.50 | 1.00 | 0.10 | 0.10 |" in table
    lines = target_lines(rows)
    assert any(line.startswith("met") and "np vs nfn-np" in line for line in lines)
    assert any(line.startswith("MISSED") and "hnp vs nfn-hnp" in line and "time 0.90×" in line for line in lines)
    assert any(line.startswith("met") and "monomial vs graph" in line for line in lines)
    # NFT has a memory target against NP and none on time: 10× np's time, 2.8× its memory, met
    assert any(line.startswith("met") and "nft vs np" in line and "(no target), memory 2.80×" in line for line in lines)
    assert not any("magep" in line for line in lines)  # not measured: no claim either way


def test_a_row_may_be_a_family_with_options():
    assert variant("np[recompute=8]") == ("np", {"recompute": 8})
    assert variant("hnp[recompute=4,folded=\"exact\"]") == ("hnp", {"recompute": 4, "folded": "exact"})
    assert variant("nfn-np") == ("nfn-np", {})
    with pytest.raises(ValueError, match="key=value"):
        variant("np[recompute]")
    row = measure(Case("np[recompute=1]", "mlp:3-4-2", batch=3, channels=2, reps=1, partner="np"))
    assert row.status == "ok" and row.peak_mib > 0 and len(row.ratios) == 1
    # its targets are its family's, against the same reference
    rows = [_row("nfn-np", 2.0, 100.0), _row("np", 0.8, 70.0), _row("np[recompute=8]", 2.4, 20.0)]
    lines = target_lines(rows)
    assert any(line.startswith("MISSED") and "np vs nfn-np" in line and "memory 0.70×" in line for line in lines)
    assert any(line.startswith("MISSED") and "np[recompute=8] vs nfn-np" in line and "memory 0.20×" in line for line in lines)
    assert "| np[recompute=8] | equivariant | 10 | 2400.0 | 20 | 1.20 | 0.20 |" in format_comparison(rows)


def test_a_partner_is_timed_alternately_and_its_ratio_has_a_spread():
    row = measure(Case("np", "mlp:3-4-2", batch=2, channels=2, reps=4, partner="graph"))
    assert row.status == "ok" and len(row.ratios) == 4 and all(r > 0 for r in row.ratios)
    median, low, high = row.ratio_summary()
    assert low <= median <= high
    assert Measurement.from_json(row.to_json()) == row
    # the table and the targets read the interleaved ratio, with its range
    graph = Measurement(Case("graph", "mlp:3-4-2"), "ok", "equivariant", 26, 10, 1.0, 10.0)
    monomial = Measurement(Case("monomial", "mlp:3-4-2", partner="graph"), "ok", "equivariant", 26, 10, 5.0, 1.0,
                           ratios=[0.2, 0.25, 0.4])
    assert "0.25 (0.20–0.40)" in format_comparison([graph, monomial])
    assert any(line.startswith("met") and "time 0.25 (0.20–0.40)×" in line for line in target_lines([graph, monomial]))
    # a partner that cannot read the input leaves the row without ratios
    alone = measure(Case("np", "mlp:3-4-2", batch=2, channels=2, reps=2, partner="transformer-nfn"))
    assert alone.status == "ok" and alone.ratios == []


def test_compiled_rows_report_their_compile_time_apart(monkeypatch):
    compiled = []
    monkeypatch.setattr(torch, "compile", lambda module: compiled.append(module) or module)  # the plumbing, not inductor
    row = measure(Case("np", "mlp:3-4-2", batch=2, channels=2, reps=2, partner="graph", compile=True))
    assert len(compiled) == 2 and row.compile_s > 0 and len(row.ratios) == 2
    assert "compiled in" in format_comparison([row])
    assert measure(Case("np", "mlp:3-4-2", batch=2, channels=2, reps=1)).compile_s is None


def test_bench_never_overwrites_saved_results(tmp_path):
    (tmp_path / "bench.md").write_text("earlier results\n")
    with pytest.raises(FileExistsError, match="overwrite"):
        run_bench(tmp_path, models=["np"], architectures=["mlp:3-4-2"], growth=False, echo=lambda s: None)
    assert (tmp_path / "bench.md").read_text() == "earlier results\n"


def test_the_suite_writes_its_tables_and_plot(tmp_path):
    lines: list[str] = []
    results = run_bench(tmp_path, models=["np"], architectures=["mlp:3-4-2"], reps=1, widths=(4, 8), depths=(1,),
                        echo=lines.append)
    assert [r.status for r in results["compare"]] == ["ok"]
    assert [r.case.architecture for r in results["width"] if r.case.model == "np"] == ["mlp:2-4-4-1", "mlp:2-8-8-1"]
    text = (tmp_path / "bench.md").read_text()
    assert "| np | equivariant 1→32→32→1 |" in text and "Growth with the input MLP's depth" in text
    assert (tmp_path / "scaling.png").stat().st_size > 10_000
    assert len((tmp_path / "bench.jsonl").read_text().splitlines()) == sum(len(v) for v in results.values())


def test_a_worker_that_dies_is_reported_with_its_cause(monkeypatch):
    import subprocess

    from nfkit.bench.measure import measure_isolated

    def killed(command, **kwargs):  # type: ignore[no-untyped-def]
        assert command[1] == "-c"  # not -m: no runpy warning standing in for the reason
        return subprocess.CompletedProcess(command, -9, stdout="", stderr="some warning\n")

    monkeypatch.setattr(subprocess, "run", killed)
    row = measure_isolated(Case("np", "mlp:3-4-2"))
    assert row.status == "failed" and row.note == "killed by signal 9 (out of memory?)"

    def raised(command, **kwargs):  # type: ignore[no-untyped-def]
        return subprocess.CompletedProcess(command, 1, stdout="", stderr="Traceback …\nValueError: bad width\n")

    monkeypatch.setattr(subprocess, "run", raised)
    assert measure_isolated(Case("np", "mlp:3-4-2")).note == "ValueError: bad width"
