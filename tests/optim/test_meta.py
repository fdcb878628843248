"""Meta-training: runs, resumes to the same result after a kill, is the same under torchrun, owns its folder."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from nfkit.errors import InvalidOptionError, NotOursError
from nfkit.optim import UpdateRule
from nfkit.optim.meta import MetaConfig, meta_train

TINY = MetaConfig(tasks="digits-mlp", hidden_channels=(4,), iterations=3, pairs=2, truncation=4, horizon=8, checkpoint_every=1)


def _same_rule(a: Path, b: Path) -> bool:
    return all(torch.equal(x, y) for x, y in zip(UpdateRule.load(a).parameters(), UpdateRule.load(b).parameters()))


def test_meta_training_writes_a_loadable_rule_and_moves_it(tmp_path: Path) -> None:
    result = meta_train(tmp_path / "run", TINY)
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["config.json", "log.csv", "optimizer.pt", "state.pt"]
    assert len(result.losses) == 3 and all(math.isfinite(x) and x > 0 for x in result.losses)
    initial = UpdateRule(result.rule.spec, "np", hidden_channels=[4])
    assert not torch.equal(UpdateRule.load(result.path).beta, initial.beta)
    # a finished run is not run again
    again = meta_train(tmp_path / "run", TINY)
    assert again.losses == result.losses


def test_a_killed_run_resumes_to_the_same_result(tmp_path: Path) -> None:
    meta_train(tmp_path / "whole", TINY)

    def kill_during_iteration_3(line: str) -> None:
        if line.startswith("iteration 3/"):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        meta_train(tmp_path / "killed", TINY, progress=kill_during_iteration_3)
    assert (tmp_path / "killed" / "state.pt").exists()
    meta_train(tmp_path / "killed", TINY)
    assert _same_rule(tmp_path / "whole" / "optimizer.pt", tmp_path / "killed" / "optimizer.pt")
    assert (tmp_path / "whole" / "log.csv").read_text().count("\n") == (tmp_path / "killed" / "log.csv").read_text().count("\n")


def test_pes_and_truncated_es_differ_only_in_the_estimator(tmp_path: Path) -> None:
    from dataclasses import replace

    pes = meta_train(tmp_path / "pes", replace(TINY, iterations=3))
    es = meta_train(tmp_path / "es", replace(TINY, iterations=3, estimator="es"))
    assert pes.losses[0] == es.losses[0]  # same particles, same first perturbation
    assert not _same_rule(pes.path, es.path)


def test_the_folder_is_only_ever_ours(tmp_path: Path) -> None:
    user = tmp_path / "mine"
    user.mkdir()
    (user / "notes.txt").write_text("keep me")
    with pytest.raises(NotOursError):
        meta_train(user, TINY)
    assert (user / "notes.txt").read_text() == "keep me" and len(list(user.iterdir())) == 1
    meta_train(tmp_path / "run", TINY)
    from dataclasses import replace

    with pytest.raises(NotOursError, match="another meta-training"):
        meta_train(tmp_path / "run", replace(TINY, seed=1))


@pytest.mark.parametrize("field,value", [("pairs", 0), ("iterations", -1), ("sigma", 0.0), ("meta_lr", float("nan")),
                                          ("horizon", 6), ("estimator", "adam"), ("tasks", "cifar"),
                                          ("learning_rate", 0.0)])
def test_bad_settings_are_refused(field: str, value: object) -> None:
    from dataclasses import replace

    with pytest.raises((InvalidOptionError, KeyError)):
        replace(TINY, **{field: value})


def test_torchrun_shares_the_pairs_and_gets_the_same_rule(tmp_path: Path) -> None:
    meta_train(tmp_path / "one", TINY)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "nfkit.cli",
               "optim", "meta-train", "--out", str(tmp_path / "two"), "--tasks", "digits-mlp", "--hidden-channels", "4",
               "--iterations", "3", "--pairs", "2", "--truncation", "4", "--horizon", "8", "--checkpoint-every", "1"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    one, two = UpdateRule.load(tmp_path / "one" / "optimizer.pt"), UpdateRule.load(tmp_path / "two" / "optimizer.pt")
    for a, b in zip(one.parameters(), two.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)  # the sum of the estimates is reordered, nothing else
