"""README's "Run as a service" curl examples run as written against a real ``serve``."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
from service_helpers import ENV, Served

ROOT = Path(__file__).resolve().parents[2]
SECTION = re.compile(r"^## Run as a service\n(.*?)(?=^## |\Z)", re.S | re.M)
BLOCK = re.compile(r"^```sh\n(.*?)^```$", re.S | re.M)


@pytest.mark.slow
def test_the_curl_examples_run(tmp_path: Path, sandbox: Any) -> None:
    """Every ```sh block of the section runs with ``bash -e`` (curl -f: any 4xx/5xx fails)
    against a service whose route ``office`` is the sandbox: the campaign is created from the
    CSV (2 recipients) and its events and metrics answer."""
    [section] = SECTION.findall((ROOT / "README.md").read_text(encoding="utf-8"))
    blocks = BLOCK.findall(section)
    assert len(blocks) >= 2 and all("curl" in b for b in blocks)
    sb = sandbox("strict")
    config = tmp_path / "mailpacer.toml"
    config.write_text(f'[routes.office]\nurl = "smtp://{sb.host}:{sb.port}"\n', encoding="utf-8")
    served = Served(tmp_path, config).start()
    env = {**ENV, "URL": served.url, "MAILPACER_API_TOKEN": str(served.token)}
    try:
        outputs = []
        for block in blocks:
            result = subprocess.run(
                ["bash", "-e", "-c", block], cwd=tmp_path, env=env, capture_output=True,
                text=True, timeout=60, check=False,
            )  # fmt: skip
            assert result.returncode == 0, f"{block}\n{result.stdout}\n{result.stderr}"
            outputs.append(result.stdout)
    finally:
        served.stop()
    assert '"total":2' in outputs[0]
    assert "event: snapshot" in outputs[1] and "mailpacer_messages" in outputs[1]
