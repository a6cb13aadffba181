"""README.md's Python examples run as written: each ```python block, in order, as a script of
its own in one scratch folder that holds a copy of ``examples/`` (the examples start their own
sandbox on a free loopback port and keep their databases there)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
BLOCK = re.compile(r"^```python\n(.*?)^```$", re.S | re.M)
#: no MAILPACER_* from the developer's shell: the examples say where their databases are
ENV = {k: v for k, v in os.environ.items() if not k.startswith("MAILPACER_")}


def python_blocks() -> list[str]:
    """Every ```python block of the README, in order."""
    return BLOCK.findall(README.read_text(encoding="utf-8"))


def test_the_readme_starts_with_the_two_setup_commands() -> None:
    """The first thing a reader sees is how to try it and how to test it."""
    assert README.read_text(encoding="utf-8").startswith(
        "# mailpacer\n\n```\nmake demo\nmake test\n```\n"
    )


@pytest.mark.slow
def test_every_python_example_runs(tmp_path: Path) -> None:
    """Each example exits 0 (an exception or a failed send fails it) and prints what it says."""
    blocks = python_blocks()
    assert len(blocks) >= 3, "the README's Python API section has lost its examples"
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    outputs = []
    for number, code in enumerate(blocks, 1):
        result = subprocess.run(
            [sys.executable, "-c", code],
            cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert result.returncode == 0, f"README python block {number}:\n{code}\n{result.stderr}"
        outputs.append(result.stdout)
    # the comments in the examples show what they print; the lines that do not vary must match
    assert "learned: 2 connections" in outputs[0]
    assert "<Campaign 1 sent=195 deferred=0 failed=5 queued=0>" in outputs[1]
    assert "<Campaign 1 sent=195 deferred=0 failed=0 queued=5>" in outputs[1]
    paused = re.fullmatch(
        r"paused <Campaign 1 sent=(\d+) .*queued=(\d+)>", outputs[2].splitlines()[-1]
    )
    assert paused is not None, outputs[2]
    assert int(paused[1]) >= 60 and int(paused[2]) > 0
