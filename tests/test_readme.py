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
