import subprocess
import sys

from nfkit.cli import main


def test_check_prints_a_passing_table(capsys):
    assert main(["check", "--models", "np", "statnn", "--architectures", "mlp-relu", "cnn-tanh"]) == 0
    out = capsys.readouterr().out
    assert "declared group" in out and "control group" in out
    assert out.count(" pass\n") == 6  # np: 2 forms × 2 architectures, statnn: 1 form × 2
    assert "6 passed, 0 failed" in out


def test_check_rejects_unknown_names(capsys):
    assert main(["check", "--models", "nope"]) == 2
    assert "unknown model" in capsys.readouterr().err


def test_the_console_script_runs():
    result = subprocess.run(
        [sys.executable, "-m", "nfkit.cli", "check", "--models", "mlp", "--architectures", "siren"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "pass" in result.stdout
