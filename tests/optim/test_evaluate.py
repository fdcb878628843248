"""Evaluation against tuned Adam: the step-reduction factor, the tasks, the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from nfkit.cli.main import main
from nfkit.optim import UpdateRule
from nfkit.optim.evaluate import ADAM_GRID, Curve, evaluate, step_factor
from nfkit.optim.inner import DISTRIBUTIONS, HELD_OUT, InnerTask, sample_task
from nfkit.spaces import spec_of


def test_step_factor_counts_steps_to_adams_best_test_loss() -> None:
    adam = Curve([2.0, 1.0, 0.5, 0.4, 0.45], every=10, seconds_per_step=1.0)
    faster = Curve([2.0, 0.8, 0.39, 0.3, 0.3], every=10, seconds_per_step=1.0)
    never = Curve([2.0, 1.5, 1.0, 0.9, 0.8], every=10, seconds_per_step=1.0)
    assert step_factor(adam, adam) == 1.0
    assert step_factor(adam, faster) == 30 / 20
    assert step_factor(adam, never) is None


def test_the_adam_grid_is_the_papers() -> None:
    assert len(ADAM_GRID) == 20 and ADAM_GRID[0] == pytest.approx(5e-4) and ADAM_GRID[-1] == pytest.approx(1e-2)


def test_tasks_are_seeded_and_held_out_ones_are_unseen() -> None:
    task = InnerTask("digits", (16, 16), 2.0, 32, seed=7)
    assert all(torch.equal(a, b) for a, b in zip(task.model().parameters(), task.model().parameters()))
    assert torch.equal(task.batch(3)[0], task.batch(3)[0]) and not torch.equal(task.batch(3)[0], task.batch(4)[0])
    drawn = [sample_task("mlp", torch.Generator().manual_seed(s)) for s in range(200)]
    seen_widths = {t.hidden for t in drawn}
    assert {t.dataset for t in drawn} == set(DISTRIBUTIONS["mlp"].datasets)
    for tasks in HELD_OUT.values():
        for t in tasks:
            assert t.hidden not in seen_widths or t.dataset not in DISTRIBUTIONS["mlp"].datasets
    assert spec_of(HELD_OUT["topics-32"][0].model()).describe().startswith("dense 64→32")


def test_evaluate_reports_adam_sgd_and_a_learned_optimizer() -> None:
    tasks = {"t": HELD_OUT["topics-32"][:1]}
    rule = UpdateRule(spec_of(tasks["t"][0].model()), "per-parameter", hidden_channels=[4])  # type: ignore[arg-type]
    report = evaluate(tasks, {"lo": rule}, steps=20, every=5, adam_grid=(1e-3, 1e-2), sgd_grid=(1e-2,))
    names = [r.name for r in report["t"]]
    assert names == ["adam (tuned)", "sgd+momentum (tuned)", "lo"]
    adam = report["t"][0]
    assert adam.factors == [1.0] and adam.learning_rate in (1e-3, 1e-2)
    row = report["t"][2].summary(adam_seconds=adam.curves[0].seconds_per_step)
    assert set(row) >= {"factor", "final_test_loss", "time_per_step_vs_adam"}


def test_cli_eval_writes_its_files_and_refuses_a_users_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["optim", "eval", "--tasks", "topics-32", "--seeds", "1", "--steps", "10", "--every", "5"]
    assert main([*args, "--out", str(tmp_path / "eval")]) == 0
    assert sorted(p.name for p in (tmp_path / "eval").iterdir())[:2] == ["curves.png", "results.json"]
    assert "adam (tuned)" in json.dumps(json.loads((tmp_path / "eval" / "results.json").read_text()))
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "x.txt").write_text("keep")
    assert main([*args, "--out", str(tmp_path / "mine")]) == 2
    assert main([*args, "--optimizer", str(tmp_path / "missing.pt")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all(line.startswith("nfkit optim eval: ") for line in err)


def test_cnn_tasks_train_with_a_learned_optimizer_and_mlp_rules_skip_them() -> None:
    from nfkit.optim import LearnedOptimizer

    task = HELD_OUT["cnn-digits-24"][0]
    model = task.model()
    assert spec_of(model).describe().startswith("conv 1→24 3×3")
    optimizer = LearnedOptimizer(model, "np", hidden_channels=[4])
    before = task.test_loss(model)
    for step in range(30):
        optimizer.zero_grad()
        task.train_loss(model, step).backward()
        optimizer.step()
    assert task.test_loss(model) < before
    mlp_rule = UpdateRule(spec_of(HELD_OUT["topics-32"][0].model()), "np", hidden_channels=[4])  # type: ignore[arg-type]
    lines: list[str] = []
    report = evaluate({"cnn": (task,)}, {"mlp-rule": mlp_rule}, steps=4, every=2, adam_grid=(1e-3,), sgd_grid=(1e-2,),
                      progress=lines.append)
    assert [r.name for r in report["cnn"]] == ["adam (tuned)", "sgd+momentum (tuned)"]
    assert any("mlp-rule skipped" in line for line in lines)


@pytest.mark.parametrize("argv", [
    ["--horizon", "30", "--truncation", "20"],
    ["--pairs", "0"],
    ["--update", "adamw"],
])
def test_cli_meta_train_refuses_bad_settings_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    assert main(["optim", "meta-train", "--out", str(tmp_path / "run"), *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in err[0]
    assert not (tmp_path / "run").exists()


def test_cli_meta_train_refuses_a_file_as_out(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "f").write_text("x")
    assert main(["optim", "meta-train", "--out", str(tmp_path / "f"), "--iterations", "1"]) == 2
    assert capsys.readouterr().err.strip().startswith("nfkit optim meta-train: ")
    assert (tmp_path / "f").read_text() == "x"
