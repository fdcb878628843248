"""Issue 15: nothing a user has is lost, nothing hangs, every bad input is one clear line.

Every CLI case goes through the real entry point :func:`nfkit.cli.main` and checks the status
(2 for a user error), that standard error is one line, and that no traceback is printed.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from nfkit.cli import build_parser, main
from nfkit.data.generators.cnn_zoo import CNNZooConfig, generate_cnn_zoo
from nfkit.data.generators.runner import _chunk_path
from nfkit.data.published.inr_sets import load_dws_inrs, load_nfn_sirens
from nfkit.data.zoo_format import load_zoo
from nfkit.errors import UnsupportedModuleError, ZooFormatError
from nfkit.tasks.runs import _peak_rss_mib, run_task
from nfkit.spaces import load_into, weights_of
from nfkit.tasks.loop import TrainConfig
from nfkit.util.files import exclusive_lock
from nfkit.util.processes import worker_pool

TINY = CNNZooConfig(size=10, chunk=5, epochs=1, checkpoints=(1,), activations=("relu",), seed=1)


@pytest.fixture(scope="module")
def zoo_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("safety") / "zoo"
    generate_cnn_zoo(out, TINY, progress=False)
    return out


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _fails_cleanly(capsys, argv: list[str], *phrases: str) -> str:
    """``nfkit argv`` exits 2 with one line on stderr containing every phrase, and no traceback."""
    code = main(argv)
    captured = capsys.readouterr()
    assert code == 2, f"nfkit {' '.join(argv)} exited {code}; stderr: {captured.err}"
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert "Traceback" not in captured.err
    for phrase in phrases:
        assert phrase in lines[0], lines[0]
    return lines[0]


def _user_files(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "thesis.tex").write_text("years of work")
    (folder / "data").mkdir(exist_ok=True)
    (folder / "data" / "x.csv").write_text("1,2,3")


# 1. --overwrite deletes only what nfkit can prove it created


def test_train_overwrite_refuses_a_folder_of_unrelated_files(zoo_dir, tmp_path, capsys):
    folder = tmp_path / "mine"
    _user_files(folder)
    before = _snapshot(folder)
    _fails_cleanly(capsys, ["train", "--zoo", str(zoo_dir), "--model", "mlp", "--out", str(folder), "--overwrite"],
                   "does not hold an nfkit run")
    assert _snapshot(folder) == before


def test_train_out_dot_overwrite_leaves_the_working_directory(zoo_dir, tmp_path, capsys, monkeypatch):
    shutil.copytree(zoo_dir, tmp_path / "zoo")
    _user_files(tmp_path)
    before = _snapshot(tmp_path)
    monkeypatch.chdir(tmp_path)
    _fails_cleanly(capsys, ["train", "--zoo", "zoo", "--model", "mlp", "--out", ".", "--overwrite"], "does not hold an nfkit run")
    assert _snapshot(tmp_path) == before


def test_train_overwrite_replaces_an_earlier_run_and_leaves_nothing_aside(zoo_dir, tmp_path):
    out = tmp_path / "run"
    run_task("generalization", zoo_dir, "mlp", out, train=TrainConfig(epochs=1), progress=None)
    with pytest.raises(FileExistsError, match="another run"):
        run_task("generalization", zoo_dir, "statnn", out, train=TrainConfig(epochs=1), progress=None)
    run_task("generalization", zoo_dir, "statnn", out, train=TrainConfig(epochs=1), overwrite=True, progress=None)
    assert json.loads((out / "config.json").read_text())["model"] == "statnn"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]  # the moved-aside run is gone, no lock left


def test_a_run_that_never_trained_is_replaced_by_the_corrected_command(zoo_dir, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    config = {"task": "generalization", "zoo": "z", "model": "mlp", "options": {}, "train": {"learning_rate": -1}}
    (out / "config.json").write_text(json.dumps(config))  # what a failed first epoch left behind
    run_task("generalization", zoo_dir, "mlp", out, train=TrainConfig(epochs=1), progress=None)
    assert (out / "metrics.json").exists()


def test_zoo_overwrite_refuses_a_folder_that_is_not_a_zoo(tmp_path, capsys):
    folder = tmp_path / "mine"
    _user_files(folder)
    before = _snapshot(folder)
    _fails_cleanly(capsys, ["zoo", "generate", "cnn", "--out", str(folder), "--size", "4", "--overwrite"], "not a zoo nfkit wrote")
    assert _snapshot(folder) == before
    assert not (tmp_path / "mine.chunks").exists()


def test_zoo_overwrite_refuses_a_zoo_with_a_users_file_in_it(zoo_dir, tmp_path, capsys):
    folder = tmp_path / "zoo"
    shutil.copytree(zoo_dir, folder)
    (folder / "notes.txt").write_text("mine")
    _fails_cleanly(capsys, ["zoo", "generate", "cnn", "--out", str(folder), "--size", "4", "--overwrite"], "not a zoo nfkit wrote")
    assert (folder / "notes.txt").read_text() == "mine"


def test_zoo_overwrite_replaces_an_nfkit_zoo(zoo_dir, tmp_path):
    folder = tmp_path / "zoo"
    shutil.copytree(zoo_dir, folder)
    config = CNNZooConfig(size=6, chunk=3, epochs=1, checkpoints=(1,), activations=("relu",), seed=2)
    generate_cnn_zoo(folder, config, overwrite=True, progress=False)
    assert len(load_zoo(folder)) == 6
    assert sorted(p.name for p in tmp_path.iterdir()) == ["zoo"]


# 2. manifests are validated, never trusted


def _edit_manifest(zoo_dir: Path, tmp_path: Path, edit) -> Path:
    folder = tmp_path / "edited"
    shutil.copytree(zoo_dir, folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    edit(manifest)
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


@pytest.mark.parametrize("name", ["../secret.txt", "/etc/hostname", "sub/weights.npy", ".."])
def test_manifest_names_outside_the_zoo_are_refused(zoo_dir, tmp_path, capsys, name):
    (tmp_path / "secret.txt").write_text("secret")
    folder = _edit_manifest(zoo_dir, tmp_path, lambda m: m["files"].__setitem__(name, "0" * 64))
    _fails_cleanly(capsys, ["zoo", "info", str(folder)], "not a plain name")


def test_manifest_links_outside_the_zoo_are_refused(zoo_dir, tmp_path, capsys):
    (tmp_path / "secret.txt").write_text("secret")
    folder = _edit_manifest(zoo_dir, tmp_path, lambda m: m["files"].__setitem__("link", "0" * 64))
    (folder / "link").symlink_to(tmp_path / "secret.txt")
    _fails_cleanly(capsys, ["zoo", "info", str(folder)], "outside")


@pytest.mark.parametrize(
    "edit, phrase",
    [
        (lambda m: m.__setitem__("files", {}), "must list weights.npy, labels.csv"),
        (lambda m: m["files"].pop("weights.npy"), "must list weights.npy"),
        (lambda m: m.pop("files"), "missing files"),
        (lambda m: m["splits"]["test"].append(10_000), "splits.test"),
        (lambda m: m["splits"].__setitem__("train", [-1]), "splits.train"),
        (lambda m: m["splits"].pop("val"), "splits must be"),
        (lambda m: m.__setitem__("rows", "24"), "rows must be"),
        (lambda m: m["files"].__setitem__("weights.npy", "abc"), "sha256"),
        (lambda m: m.__setitem__("spec", {"kind": "nonsense"}), "spec"),
    ],
)
def test_manifest_schema_errors_are_one_line(zoo_dir, tmp_path, capsys, edit, phrase):
    folder = _edit_manifest(zoo_dir, tmp_path, edit)
    _fails_cleanly(capsys, ["zoo", "info", str(folder)], phrase, "manifest.json")
    _fails_cleanly(capsys, ["train", "--zoo", str(folder), "--model", "mlp", "--out", str(tmp_path / "r")], phrase)
    assert not (tmp_path / "r").exists()


def test_a_corrupt_weights_file_is_caught_by_its_checksum(zoo_dir, tmp_path, capsys):
    folder = tmp_path / "zoo"
    shutil.copytree(zoo_dir, folder)
    data = bytearray((folder / "weights.npy").read_bytes())
    data[-3] ^= 0xFF
    (folder / "weights.npy").write_bytes(bytes(data))
    _fails_cleanly(capsys, ["zoo", "info", str(folder)], "checksum")


def test_invalid_manifest_json_names_the_file(zoo_dir, tmp_path, capsys):
    folder = tmp_path / "zoo"
    shutil.copytree(zoo_dir, folder)
    (folder / "manifest.json").write_text("{not json")
    _fails_cleanly(capsys, ["train", "--zoo", str(folder), "--model", "mlp", "--out", str(tmp_path / "r")],
                   str(folder / "manifest.json"), "not valid JSON")


# 3. killed generation: no orphans, no stale lock






@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_killing_the_generator_leaves_no_live_worker(tmp_path, sig, processes):
    out = tmp_path / "zoo"
    parent = subprocess.Popen(
        [sys.executable, "-m", "nfkit.cli", "zoo", "generate", "cnn", "--out", str(out), "--size", "400", "--chunk", "50",
         "--epochs", "2", "--workers", "2"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    workers: set[int] = set()
    try:
        deadline = time.monotonic() + 60
        while len(workers) < 2 and time.monotonic() < deadline:  # the pool's workers and helpers have started
            time.sleep(0.2)
            workers = processes.children(parent.pid)
        assert len(workers) >= 2, "the workers never started"
        time.sleep(1.0)
        parent.send_signal(sig)
        parent.wait(20)
        deadline = time.monotonic() + 10
        while any(processes.alive(p) for p in workers) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not any(processes.alive(p) for p in workers), "workers outlived their parent"
        if sig == signal.SIGTERM:
            err = parent.stderr.read()
            assert parent.returncode == 130 and "interrupted; rerun the same command to resume" in err
            assert "Traceback" not in err
    finally:
        parent.kill()
        parent.wait()
        for pid in workers:
            if processes.alive(pid):
                os.kill(pid, signal.SIGKILL)
        parent.stderr.close()


def test_a_failed_or_killed_merge_is_recovered_by_a_rerun(tmp_path, monkeypatch):
    import nfkit.data.generators.runner as generate

    out = tmp_path / "zoo"
    real_save = generate.save_zoo

    def broken_save(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(generate, "save_zoo", broken_save)
    with pytest.raises(OSError, match="disk full"):
        generate_cnn_zoo(out, TINY, progress=False)
    work = tmp_path / "zoo.chunks"
    (work / "merge.lock").write_text("")  # what the earlier nfkit left after such a failure
    monkeypatch.setattr(generate, "save_zoo", real_save)
    assert generate_cnn_zoo(out, TINY, progress=False) == out  # merges, not "shard finished"
    assert len(load_zoo(out)) == 10 and not work.exists()


def test_a_corrupt_chunk_found_at_merge_is_recomputed_on_rerun(tmp_path, monkeypatch):
    import nfkit.data.generators.runner as generate

    out = tmp_path / "zoo"
    real_merge = generate._merge

    def corrupt_then_merge(out_, work, recipe, n_chunks, overwrite):
        _chunk_path(work, 1).write_bytes(b"broken")
        return real_merge(out_, work, recipe, n_chunks, overwrite)

    monkeypatch.setattr(generate, "_merge", corrupt_then_merge)
    with pytest.raises(ZooFormatError, match="rerun the same command"):
        generate_cnn_zoo(out, TINY, progress=False)
    monkeypatch.setattr(generate, "_merge", real_merge)
    assert generate_cnn_zoo(out, TINY, progress=False) == out


def test_a_chunk_folder_nfkit_did_not_write_is_refused(tmp_path, capsys):
    _user_files(tmp_path / "zoo.chunks")
    _fails_cleanly(capsys, ["zoo", "generate", "cnn", "--out", str(tmp_path / "zoo"), "--size", "4"], "did not write")


# 4. zero and negative values are refused, never replaced


@pytest.mark.parametrize(
    "argv",
    [
        ["zoo", "generate", "cnn", "--size", "0"],
        ["zoo", "generate", "cnn", "--chunk", "0"],
        ["zoo", "generate", "cnn", "--epochs", "0"],
        ["zoo", "generate", "transformer", "--epochs", "-2"],
        ["zoo", "generate", "inr", "--steps", "0"],
        ["zoo", "generate", "cnn", "--workers", "0"],
        ["zoo", "generate", "cnn", "--workers", "-1"],
        ["zoo", "generate", "cnn", "--checkpoints", "0"],
        ["zoo", "generate", "cnn", "--shard", "2/2"],
    ],
)
def test_generate_refuses_zero_and_negative_values(tmp_path, capsys, argv):
    out = tmp_path / "z"
    _fails_cleanly(capsys, [*argv, "--out", str(out)])
    assert not out.exists() and not (tmp_path / "z.chunks").exists()


@pytest.mark.parametrize(
    "option",
    [["--epochs", "0"], ["--epochs", "-3"], ["--batch-size", "0"], ["--lr", "0"], ["--lr", "-1e-3"], ["--lr", "nan"],
     ["--weight-decay", "-1"], ["--patience", "-1"], ["--hidden-channels", "0"]],
)
def test_train_refuses_zero_and_negative_values(zoo_dir, tmp_path, capsys, option):
    out = tmp_path / "r"
    _fails_cleanly(capsys, ["train", "--zoo", str(zoo_dir), "--model", "mlp", "--out", str(out), *option], option[0])
    assert not out.exists()


@pytest.mark.parametrize("argv", [["demo", "--size", "0"], ["demo", "--epochs", "-1"], ["check", "--samples", "0"],
                                  ["bench", "--batch", "0"], ["params", "--hidden-channels", "-4"]])
def test_other_commands_refuse_zero_and_negative_values(capsys, argv):
    _fails_cleanly(capsys, argv)


def test_library_configs_refuse_them_too():
    with pytest.raises(ValueError, match="epochs must be a positive integer"):
        TrainConfig(epochs=0)
    with pytest.raises(ValueError, match="patience"):
        TrainConfig(patience=0)
    with pytest.raises(ValueError, match="size must be a positive integer"):
        CNNZooConfig(size=0)


def test_patience_zero_on_the_command_line_turns_early_stopping_off(zoo_dir, tmp_path):
    out = tmp_path / "r"
    assert main(["train", "--zoo", str(zoo_dir), "--model", "mlp", "--out", str(out), "--epochs", "2", "--patience", "0"]) == 0
    assert json.loads((out / "config.json").read_text())["train"]["patience"] is None


# 5. one line, not a traceback


def test_missing_zoo_folders(tmp_path, capsys):
    _fails_cleanly(capsys, ["train", "--zoo", str(tmp_path / "nope"), "--model", "mlp", "--out", str(tmp_path / "r")], "does not exist")
    _fails_cleanly(capsys, ["zoo", "info", str(tmp_path / "nope")], "does not exist")
    _fails_cleanly(capsys, ["eval", "--run", str(tmp_path / "nope")], "not a run folder")


def test_unknown_model_and_task_mismatch(zoo_dir, tmp_path, capsys):
    _fails_cleanly(capsys, ["train", "--zoo", str(zoo_dir), "--model", "nope", "--out", str(tmp_path / "r")], "unknown model", "np")
    _fails_cleanly(capsys, ["train", "--task", "inr-classification", "--zoo", str(zoo_dir), "--model", "np",
                            "--out", str(tmp_path / "r")], "INR classification needs an INR zoo")
    _fails_cleanly(capsys, ["train", "--task", "inr-editing", "--zoo", str(zoo_dir), "--model", "np",
                            "--out", str(tmp_path / "r")], "INR editing needs")
    assert not (tmp_path / "r").exists()


def test_out_that_is_a_file(zoo_dir, tmp_path, capsys):
    (tmp_path / "f").write_text("mine")
    _fails_cleanly(capsys, ["train", "--zoo", str(zoo_dir), "--model", "mlp", "--out", str(tmp_path / "f")], "is a file")
    _fails_cleanly(capsys, ["zoo", "generate", "cnn", "--out", str(tmp_path / "f" / "z"), "--size", "4"], "is a file")
    assert (tmp_path / "f").read_text() == "mine"


def test_a_zoo_path_that_is_a_file(tmp_path, capsys):
    (tmp_path / "f").write_text("x")
    _fails_cleanly(capsys, ["zoo", "info", str(tmp_path / "f")], "is a file")


def _siren_state(prefix: str) -> dict[str, torch.Tensor]:
    return {f"{prefix[0]}.weight": torch.randn(32, 2), f"{prefix[0]}.bias": torch.randn(32),
            f"{prefix[1]}.weight": torch.randn(32, 32), f"{prefix[1]}.bias": torch.randn(32),
            f"{prefix[2]}.weight": torch.randn(1, 32), f"{prefix[2]}.bias": torch.randn(1)}


def test_nan_in_an_nfn_checkpoint_names_the_file(tmp_path):
    folder = tmp_path / "randinit_smaller_3s"
    folder.mkdir()
    state = _siren_state(("net.0.linear", "net.1.linear", "net.2"))
    torch.save(state, folder / "net0.pth")
    state["net.1.linear.weight"][4, 5] = float("nan")
    torch.save(state, folder / "net1.pth")
    with pytest.raises(ZooFormatError, match=r"net1\.pth.*NaN"):
        load_nfn_sirens(tmp_path)


@pytest.mark.parametrize("table, phrase", [([1, 2], "must hold an object"),
                                          ({"train": {"path": ["a.pth"], "label": ["three"]}}, "labels must be class indices"),
                                          ({"train": {"path": ["a.pth"], "label": [1.5]}}, "labels must be class indices"),
                                          ({"train": {"path": "a.pth", "label": [1]}}, "equal lengths")])
def test_dws_split_files_are_validated(tmp_path, table, phrase):
    torch.save(_siren_state(("seq.0", "seq.1", "seq.2")), tmp_path / "a.pth")
    (tmp_path / "splits.json").write_text(json.dumps(table))
    with pytest.raises(ZooFormatError, match=phrase):
        load_dws_inrs(tmp_path / "splits.json")


# 6. help shows every default, and every option says what it does


def _subparsers(parser):
    for action in parser._actions:
        if action.__class__.__name__ == "_SubParsersAction":
            for name, sub in action.choices.items():
                yield name, sub
                yield from _subparsers(sub)


def test_every_option_has_help_and_shows_its_default(capsys):
    for name, sub in _subparsers(build_parser()):
        for action in sub._actions:
            if action.dest in ("help",) or action.__class__.__name__ == "_SubParsersAction":
                continue
            assert action.help, f"{name} {action.option_strings or action.dest} has no help"
    assert main(["train", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    for shown in ("the task's: 20, inr-classification 40", "(default: 32)", "(default: 0.001)", "(default: 0.01)", "5 for generalization", "(default: 0)"):
        assert shown in text


# 8. overlapping runs into one folder


def test_a_second_writer_of_a_run_folder_is_refused(zoo_dir, tmp_path, capsys):
    out = tmp_path / "run"
    with exclusive_lock(out, "run"):  # as a first nfkit train still running would hold it
        _fails_cleanly(capsys, ["train", "--zoo", str(zoo_dir), "--model", "mlp", "--out", str(out), "--overwrite"],
                       "being written by another nfkit process")
    assert not out.exists()


def test_a_second_generator_of_the_same_shard_is_refused(tmp_path, capsys):
    out = tmp_path / "zoo"
    (tmp_path / "zoo.chunks").mkdir()
    with exclusive_lock(tmp_path / "zoo.chunks" / "shard-0-of-1", "shard"):
        _fails_cleanly(capsys, ["zoo", "generate", "cnn", "--out", str(out), "--size", "4", "--workers", "1"], "another nfkit process")


# 9. silent wrong results


@pytest.mark.parametrize("wrap", [nn.utils.weight_norm, nn.utils.spectral_norm, nn.utils.parametrizations.weight_norm])
def test_load_into_refuses_reparametrised_layers(wrap):
    import warnings

    net = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    features = weights_of(net)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch deprecates the old weight_norm
        net[0] = wrap(net[0])
    with pytest.raises(UnsupportedModuleError, match="reparametrisation"):
        load_into(net, features)


def test_bench_on_cuda_without_cuda_is_refused(capsys):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    _fails_cleanly(capsys, ["bench", "--device", "cuda", "--models", "np", "--no-growth"], "no CUDA device")


def test_a_spawned_worker_reports_its_own_peak_memory():
    ballast = np.ones(400 * 2**20 // 8)  # the parent holds 400 MiB
    assert _peak_rss_mib() > 400
    with worker_pool(1) as pool:
        child = pool.submit(_peak_rss_mib).result()
    assert child < 350, f"the worker reported {child:.0f} MiB: its parent's peak, not its own"
    del ballast


def test_eval_of_a_seeded_run_matches_its_metrics(zoo_dir, tmp_path, capsys):
    out = tmp_path / "r"
    assert main(["train", "--zoo", str(zoo_dir), "--model", "mlp", "--out", str(out), "--epochs", "1", "--seed", "3"]) == 0
    capsys.readouterr()
    metrics = json.loads((out / "metrics.json").read_text())
    from nfkit.tasks.runs import evaluate_run

    again = evaluate_run(out)
    for key in ("test_kendall_tau", "rescaled_test_kendall_tau", "rescaled_test_mse"):
        assert again[key] == pytest.approx(metrics[key], rel=1e-6, abs=1e-9), key


# 10. progress a person can see, and a clean stop


def test_training_output_to_a_file_fills_while_it_runs(zoo_dir, tmp_path):
    log = tmp_path / "log.txt"
    with log.open("w") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "nfkit.cli", "train", "--zoo", str(zoo_dir), "--model", "mlp", "--out",
             str(tmp_path / "r"), "--epochs", "5000", "--patience", "0"],
            stdout=sink, stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 90
            while "epoch 2/5000" not in log.read_text() and time.monotonic() < deadline:
                time.sleep(0.2)
            assert "epoch 2/5000" in log.read_text() and process.poll() is None
            process.send_signal(signal.SIGTERM)  # stops cleanly; a rerun would resume
            assert process.wait(30) == 130
        finally:
            process.kill()
            process.wait()
    text = log.read_text()
    assert "interrupted; rerun the same command to resume" in text and "Traceback" not in text


def test_a_resumed_inr2array_run_keeps_its_pretraining_record(tmp_path):
    from nfkit.data.generators.inr_zoo import INRZooConfig, generate_inr_zoo

    zoo = tmp_path / "inr"
    generate_inr_zoo(zoo, INRZooConfig(size=10, steps=5, chunk=5), progress=False)
    lines: list[str] = []
    options = {"pretrain_epochs": 1, "hidden_channels": [4]}
    first = run_task("inr-classification", zoo, "inr2array", tmp_path / "r", options=options,
                     train=TrainConfig(epochs=1), progress=lines.append)
    assert any(line.startswith("pretraining epoch 1/1") for line in lines)
    again = run_task("inr-classification", zoo, "inr2array", tmp_path / "r", options=options,
                     train=TrainConfig(epochs=1), progress=None)
    assert again["pretrain_val_mse"] == first["pretrain_val_mse"]
    assert first["train_seconds"] >= first["pretrain_seconds"] > 0


def test_early_stopping_defaults_to_the_tasks():
    """Generalization stops after 5 flat epochs; INR classification, stuck on a plateau for 5-15 epochs, does not."""
    from nfkit.cli.options import patience as _patience

    assert _patience(None, "generalization") == 5
    assert _patience(None, "inr-classification") is None
    assert _patience(0, "generalization") is None and _patience(3, "inr-classification") == 3


def test_bad_published_files_are_one_line_through_the_cli(tmp_path, capsys):
    """The loaders' errors reach the user as one line now that nfkit reads those folders directly."""
    nfn = tmp_path / "nfn"
    (nfn / "randinit_smaller_3s").mkdir(parents=True)
    state = _siren_state(("net.0.linear", "net.1.linear", "net.2"))
    state["net.2.weight"][0, 1] = float("nan")
    torch.save(state, nfn / "randinit_smaller_3s" / "net0.pth")
    _fails_cleanly(capsys, ["zoo", "info", str(nfn)], "net0.pth", "NaN")
    dws = tmp_path / "dws"
    dws.mkdir()
    (dws / "splits.json").write_text(json.dumps([1, 2]))
    _fails_cleanly(capsys, ["train", "--task", "inr-classification", "--zoo", str(dws / "splits.json"), "--model", "np",
                            "--out", str(tmp_path / "r")], "must hold an object")
    (dws / "splits.json").write_text(json.dumps({"train": {"path": ["a.pth"], "label": ["seven"]}}))
    _fails_cleanly(capsys, ["zoo", "info", str(dws)], "class indices")
