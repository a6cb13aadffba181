"""``mailpacer demo --serve`` as a user runs it: it prints the dashboard's URL, the campaign runs in
the service to the end, the page shows it, and Ctrl-C (SIGINT) stops it cleanly."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from service_helpers import ENV, free_port

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_demo_serve_prints_the_dashboard_url_and_runs_the_campaign(tmp_path: Path) -> None:
    """The URL names the campaign's page; the campaign finishes (the five `nouser` rows of the
    first 40 fail with 550 and are listed on the page); SIGINT (Ctrl-C) ends the process
    with 130, the shell's code for an interrupt, without a traceback."""
    port = free_port()
    log = tmp_path / "demo.log"
    command = [sys.executable, "-m", "mailpacer", "demo", "--serve", "--quick"]
    command += ["--out", str(tmp_path / "out"), "--port", str(port)]
    with log.open("w") as sink:
        process = subprocess.Popen(command, cwd=ROOT, env=ENV, stdout=sink, stderr=sink)
    try:
        deadline = time.monotonic() + 60
        found = None
        while found is None and time.monotonic() < deadline and process.poll() is None:
            found = re.search(
                r"dashboard: (http://127\.0\.0\.1:\d+)/campaigns/(\d+)", log.read_text()
            )
            time.sleep(0.1)
        assert found, log.read_text()
        base, campaign = found.group(1), int(found.group(2))
        assert base == f"http://127.0.0.1:{port}"
        with httpx.Client(base_url=base, timeout=30) as client:
            data = {}
            while time.monotonic() < deadline:
                data = client.get(f"/api/campaigns/{campaign}").json()
                if data["state"] == "done":
                    break
                time.sleep(0.2)
            assert data["state"] == "done" and data["total"] == 40
            page = client.get(f"/campaigns/{campaign}").text
            preview = client.get(f"/campaigns/{campaign}/preview/5")  # row 5 has an attachment
        assert "worker-qr demo" in page and "550" in page
        assert (
            data["counts"]["failed"] >= 1
            and data["counts"]["sent"] == 40 - data["counts"]["failed"]
        )
        assert preview.status_code == 200 and "data:image/png;base64," in preview.text
    finally:
        process.send_signal(signal.SIGINT)
        code = process.wait(timeout=30)
    assert code == 130 and "Traceback" not in log.read_text(), log.read_text()
