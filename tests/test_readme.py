"""The README's snippets run (a quick-start that calls missing functions is a bug)."""

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"


def _blocks(lang: str) -> list[str]:
    if not README.is_file():
        pytest.skip("README.md not next to the tests (installed elsewhere)")
    return re.findall(rf"```{lang}\n(.*?)```", README.read_text(), flags=re.S)


def test_first_section_has_exactly_two_setup_commands():
    text = README.read_text() if README.is_file() else pytest.skip("no README")
    first = text.split("\n## ")[1]
    assert first.startswith("Set up")
    cmds = re.findall(r"```bash\n(.*?)```", first, flags=re.S)
    assert len(cmds) == 2 and all(c.count("\n") == 1 for c in cmds)
    assert "theradose " in cmds[0] and "pytest" in cmds[1]


def test_ci_runs_the_readme_test_command():
    ci = ROOT / ".ci" / "run"
    extract = re.search(r"cmd=\$\((.*)\)\n", ci.read_text()).group(1)
    got = subprocess.run(["bash", "-c", extract], cwd=ROOT, capture_output=True, text=True,
                         check=True).stdout.strip()
    assert got == _blocks("bash")[1].strip()


def test_python_example_runs(capsys):
    (code,) = _blocks("python")
    exec(compile(code, str(README), "exec"), {})
    out = capsys.readouterr().out
    assert "Lu-177: T1/2 = 159.5 h" in out  # ICRP-107: 6.647 d = 159.53 h
    # 1000 voxels of 1 MBq: the regridded total stays 1000 MBq
    assert re.search(r"^1000\.0(0*\d*)? resampled", out.splitlines()[1])
