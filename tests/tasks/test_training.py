"""The training loop, run folders, the generalization task, torchrun, and the demo."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import nfkit.models as models
from nfkit.cli import main
from nfkit.errors import InvalidOptionError
from nfkit.data.generators.cnn_zoo import CNNZooConfig, generate_cnn_zoo
from nfkit.data.zoo_format import load_zoo
from nfkit.tasks.metrics import kendall_tau, r2_score
from nfkit.tasks.runs import evaluate_run, run_generalization
from nfkit.tasks import GeneralizationTask, generalization_datasets
from nfkit.tasks.loop import TrainConfig, fit

TINY = CNNZooConfig(size=40, chunk=20, epochs=2, checkpoints=(1, 2), activations=("relu",), seed=5)


@pytest.fixture(scope="module")
def zoo_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("gen") / "zoo"
    generate_cnn_zoo(out, TINY, progress=False)
    return out


def _fit(zoo_dir, epochs, run_dir=None, patience=None, progress=None):
    zoo = load_zoo(zoo_dir)
    torch.manual_seed(0)
    model = models.invariant("np", zoo.spec, hidden_channels=[4], dropout=0.1)
    data = generalization_datasets(zoo, model.group)
    config = TrainConfig(epochs=epochs, patience=patience)
    result = fit(model, GeneralizationTask(), data.train, data.val, config, run_dir, progress=progress)
    return model, result


def test_metrics_match_their_definitions():
    assert kendall_tau(torch.tensor([1.0, 2.0, 3.0]), torch.tensor([3.0, 2.0, 1.0])) == pytest.approx(-1.0)
    assert r2_score(torch.tensor([1.0, 2.0]), torch.tensor([1.0, 2.0])) == 1.0


class Killed(Exception):
    pass


def _kill_after(epoch):
    def progress(line):
        if line.startswith(f"epoch {epoch}/"):
            raise Killed(line)

    return progress


def test_a_killed_run_resumes_to_the_same_weights(zoo_dir, tmp_path):
    straight, result = _fit(zoo_dir, 4)
    with pytest.raises(Killed):
        _fit(zoo_dir, 4, run_dir=tmp_path, progress=_kill_after(2))
    resumed, resumed_result = _fit(zoo_dir, 4, run_dir=tmp_path)
    assert [h["epoch"] for h in resumed_result.history] == [1, 2, 3, 4]
    assert resumed_result.history == result.history
    for (name, a), b in zip(straight.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), name


def test_best_validation_epoch_is_kept_and_early_stopping_stops(zoo_dir):
    _, result = _fit(zoo_dir, 30, patience=1)  # the tiny zoo's validation τ stops improving quickly
    assert result.stopped_early and len(result.history) < 30
    scores = [h["val_kendall_tau"] for h in result.history]
    assert result.best_metrics["kendall_tau"] == max(s for s in scores if s == s)


def test_run_folder_contents_and_protection(zoo_dir, tmp_path):
    out = tmp_path / "run"
    metrics = run_generalization(zoo_dir, "monomial", out, options={"hidden_channels": [4]}, train=TrainConfig(epochs=2), progress=None)
    for name in ("config.json", "history.csv", "metrics.json", "predictions.csv", "best_model.pt", "checkpoint.pt"):
        assert (out / name).exists(), name
    assert metrics["rescaled_test_kendall_tau"] == pytest.approx(metrics["test_kendall_tau"], abs=1e-9)
    assert evaluate_run(out)["test_kendall_tau"] == pytest.approx(metrics["test_kendall_tau"])
    with pytest.raises(FileExistsError, match="another run"):
        run_generalization(zoo_dir, "np", out, train=TrainConfig(epochs=1), progress=None)
    assert json.loads((out / "config.json").read_text())["model"] == "monomial"


def test_bf16_training_learns_and_the_trained_model_keeps_its_group_in_float64(zoo_dir, tmp_path):
    from nfkit.testing import assert_invariant, assert_not_equivariant
    from nfkit.groups import positive_scalings

    zoo = load_zoo(zoo_dir)
    torch.manual_seed(0)
    model = models.invariant("hnp", zoo.spec, hidden_channels=[4])
    data = generalization_datasets(zoo, model.group)
    result = fit(model, GeneralizationTask(), data.train, data.val, TrainConfig(epochs=3, precision="bf16", patience=None),
                 tmp_path / "bf16")
    losses = [h["train_loss"] for h in result.history]
    assert all(math.isfinite(v) for v in losses) and losses[-1] < losses[0]
    assert all(p.dtype == torch.float32 and p.device.type == "cpu" for p in model.parameters())
    x = zoo.features[:3].to(torch.float64)
    trained = model.double()
    assert_invariant(trained, inputs=x)
    assert_not_equivariant(trained, trained.group * positive_scalings(zoo.spec.hidden_sizes), x)
    # bf16 really runs the passes in bfloat16: the outputs differ from float32 by bfloat16's rounding, no more
    from nfkit.tasks.loop import OnDevice

    model32 = model.float().eval()
    with torch.no_grad():
        full, half = model32(zoo.features[:8]), OnDevice(model32, "cpu", "bf16")(zoo.features[:8])
    assert 0 < (full - half).abs().max() < 0.1 * full.abs().max() + 0.05


def test_training_options_are_checked_in_one_line(zoo_dir, tmp_path, capsys):
    with pytest.raises(InvalidOptionError, match="precision must be one of fp32, bf16"):
        TrainConfig(precision="fp16")
    if not torch.cuda.is_available():
        with pytest.raises(InvalidOptionError, match="no CUDA device"):
            TrainConfig(device="cuda")
        code = main(["train", "--zoo", str(zoo_dir), "--model", "np", "--out", str(tmp_path / "r"), "--device", "cuda"])
        err = capsys.readouterr().err.strip()
        assert code == 2 and "no CUDA device" in err and len(err.splitlines()) == 1
        assert not (tmp_path / "r").exists()


def test_cli_train_and_eval(zoo_dir, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--zoo", str(zoo_dir), "--model", "statnn", "--out", str(out), "--epochs", "2", "--augment"]) == 0
    assert main(["eval", "--run", str(out)]) == 0
    assert "test_kendall_tau" in capsys.readouterr().out


def test_two_process_torchrun_training(zoo_dir, tmp_path):
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "nfkit.cli",
           "train", "--zoo", str(zoo_dir), "--model", "np", "--hidden-channels", "4", "--out", str(out), "--epochs", "2"]
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert {"test_kendall_tau", "test_r2", "parameters", "train_seconds"} <= set(metrics)
    assert (out / "history.csv").read_text().count("\n") == 3


def test_ddp_keeps_parameters_identical_across_ranks(tmp_path):
    script = Path(__file__).with_name("ddp_worker.py")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "NFKIT_TEST_OUT": str(tmp_path)}
    result = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(script)],
                            capture_output=True, text=True, env=env, timeout=300, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    a, b = (torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_demo_runs_end_to_end(tmp_path):
    from nfkit.cli.demo import run_demo

    lines = []
    rows = run_demo(tmp_path / "demo", size=30, epochs=1, models=("mlp", "monomial"), say=lines.append)
    assert [r["model"] for r in rows] == ["mlp", "monomial"]
    assert (tmp_path / "demo" / "results.csv").exists() and "Kendall τ" in "\n".join(lines)
    assert rows[1]["rescaled_test_kendall_tau"] == pytest.approx(rows[1]["test_kendall_tau"], abs=1e-9)
