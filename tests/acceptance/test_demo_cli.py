"""`mailpacer demo --quick` as a subprocess, checked against the sandbox's own record."""

from __future__ import annotations

import collections
import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_demo_quick_report_matches_the_sandbox_record(tmp_path: Path) -> None:
    """Every valid worker of the first 40 is accepted exactly once; `nouser…` ones fail with 550."""
    out = tmp_path / "demo"
    proc = subprocess.run(
        [sys.executable, "-m", "mailpacer", "demo", "--quick", "--json", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    with (ROOT / "examples/worker-qr/workers.csv").open(encoding="utf-8-sig") as f:
        emails = [row["email"] for row in csv.DictReader(f)][:40]
    nouser = {e for e in emails if e.startswith("nouser")}
    lines = (out / "mailbox" / "mailbox.jsonl").read_text(encoding="utf-8").splitlines()
    received = collections.Counter(r for line in lines for r in json.loads(line)["rcpt_tos"])
    assert set(received) == set(emails) - nouser
    assert all(n == 1 for n in received.values())
    assert report["sent"] == len(emails) - len(nouser)
    assert report["failed"] == len(nouser) >= 1
    assert {f["email"] for f in report["failures"]} == nouser
    assert all(f["code"] == 550 for f in report["failures"])
    index = (out / "index.html").read_text(encoding="utf-8")
    # issue 14.10: the index lists the emails; each linked page shows one with its QR code
    pages = sorted((out / "messages").glob("*.html"))
    assert len(pages) == report["sent"] and all(f"messages/{p.name}" in index for p in pages)
    assert "data:image/png;base64," in pages[0].read_text(encoding="utf-8")
    # issue 12.4: the index itself shows each QR code and lists the failures with their replies
    assert index.count('<img src="data:image/png;base64,') == report["sent"]
    for failure in report["failures"]:
        assert failure["email"] in index and failure["reason"].split()[0] in index
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "`index.html` that shows each email with its QR code" not in readme
