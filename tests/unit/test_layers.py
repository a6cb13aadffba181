"""The import-layering contract (pyproject.toml ``[tool.importlinter]``, run by ``make lint``):
kept by the real tree, broken by a copy of it with one forbidden import injected."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "src" / "mailpacer"
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def lint_imports(cwd: Path, pythonpath: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run the venv's ``lint-imports`` on the ``pyproject.toml`` in ``cwd`` (bounded, no cache).

    With ``pythonpath`` the package is found there first: a copy shadows the installed tree."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    if pythonpath is not None:
        env["PYTHONPATH"] = str(pythonpath)
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--no-logo"],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def test_the_real_tree_keeps_every_contract() -> None:
    """The package as it is keeps the layers and has no import cycles."""
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "line", "said"),
    [
        # the bottom layer reaching up to the top
        (
            "core/limits.py",
            "import mailpacer.cli.main",
            "mailpacer.core.limits -> mailpacer.cli.main",
        ),
        # a lower layer importing the one right above it, from inside a function
        (
            "store/sqlite.py",
            "def _f() -> None:\n    import mailpacer.delivery.report",
            "mailpacer.store.sqlite -> mailpacer.delivery.report",
        ),
        # siblings of the middle layer are independent of each other
        (
            "pacing/rate.py",
            "import mailpacer.compose.qr",
            "mailpacer.pacing.rate -> mailpacer.compose.qr",
        ),
        # the public API (Campaign) sits above delivery
        (
            "delivery/report.py",
            "import mailpacer.api",
            "mailpacer.delivery.report -> mailpacer.api",
        ),
        # a cycle inside a subpackage, even one that only the type checker follows
        (
            "sandbox/handler.py",
            "import typing\nif typing.TYPE_CHECKING:\n    import mailpacer.sandbox.server",
            "No cycles are allowed in mailpacer.sandbox",
        ),
    ],
)
def test_a_forbidden_import_breaks_the_contract(
    tmp_path: Path, module: str, line: str, said: str
) -> None:
    """A copy of the package with one lower→higher import (or a cycle) added fails the lint."""
    copy = tmp_path / "src"
    shutil.copytree(PACKAGE, copy / "mailpacer", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    target = copy / "mailpacer" / module
    target.write_text(target.read_text(encoding="utf-8") + "\n" + line + "\n", encoding="utf-8")

    result = lint_imports(tmp_path, pythonpath=copy)

    assert result.returncode == 1, result.stdout + result.stderr
    assert "1 broken" in result.stdout
    assert said in result.stdout.split("Broken contracts")[1]
