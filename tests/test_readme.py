"""The README opens with the two commands, and CI runs the second one."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    return re.findall(r"```bash\n(.*?)\n```", text, flags=re.S)


def test_readme_opens_with_the_two_commands():
    first, second = _commands()[:2]
    assert "torch==2.13.0" in first and "torch==2.13.0" in second
    assert first.endswith("nfkit demo")
    assert "pytest" in second
    head = "\n".join((ROOT / "README.md").read_text().splitlines()[:15])
    assert first in head and second in head


def test_ci_runs_the_readme_test_command():
    assert _commands()[1] in (ROOT / ".ci" / "run").read_text()


def test_readme_python_example_runs():
    blocks = re.findall(r"```python\n(.*?)\n```", (ROOT / "README.md").read_text(), flags=re.S)
    assert blocks
    for block in blocks:
        exec(compile(block, "README.md", "exec"), {})


# --- every nfkit command in the README runs as written (sizes shrunk so the pipeline takes seconds) ---

import shlex  # noqa: E402

from nfkit.cli import build_parser, main  # noqa: E402

#: options that only set how much work a command does, shrunk for the test
_SHRINK = {"--size": "10", "--epochs": "1", "--steps": "5", "--chunk": "5", "--workers": "1", "--iterations": "1",
           "--pairs": "1", "--truncation": "2", "--horizon": "2", "--seeds": "1", "--every": "2"}


def _nfkit_commands() -> list[list[str]]:
    """The nfkit argument lists of every README bash line (torchrun lines as their nfkit arguments)."""
    commands = []
    for block in _commands()[2:]:
        for line in block.splitlines():
            line = line.split("  #")[0].split(" # ")[0].strip()
            for part in line.split("&&"):
                words = shlex.split(part)
                if not words:
                    continue
                if words[0].endswith("/nfkit"):
                    commands.append(words[1:])
                elif words[0].endswith("/torchrun"):
                    commands.append(words[words.index("nfkit.cli") + 1:])
    return commands


def test_every_readme_command_parses():
    commands = _nfkit_commands()
    assert len(commands) >= 15
    parser = build_parser()
    for argv in commands:
        parser.parse_args(argv)  # a usage error would exit


def _shrunk(argv: list[str]) -> list[str]:
    out = [_SHRINK.get(argv[i - 1], word) if i else word for i, word in enumerate(argv)]
    if argv[:2] == ["zoo", "generate"]:
        work = {"--size", "--chunk", "--workers", "--steps" if argv[2] == "inr" else "--epochs"}
    elif argv[0] == "train":
        work = {"--epochs"}
    elif argv[:2] == ["optim", "meta-train"]:
        work = {"--iterations", "--pairs", "--truncation", "--horizon"}
    elif argv[:2] == ["optim", "eval"]:
        work = {"--steps", "--seeds", "--every"}
    else:
        work = set()
    for option in sorted(work - set(argv)):
        out += [option, _SHRINK[option]]
    return out


def test_the_readme_pipeline_runs_as_written(tmp_path, monkeypatch):
    """Zoos, training, eval and params in the README's order: each zoo fits the models trained on it."""
    monkeypatch.chdir(tmp_path)
    for argv in _nfkit_commands():
        if argv[0] in ("bench", "demo"):
            continue  # minutes by design; parsed above, exercised by their own tests
        shrunk = _shrunk(argv)
        assert main(shrunk) == 0, f"README command failed: nfkit {' '.join(argv)}"
