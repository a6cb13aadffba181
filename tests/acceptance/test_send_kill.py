"""A real `mailpacer send` killed with SIGKILL mid-campaign, then run again, several times."""

from __future__ import annotations

import collections
import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from mailpacer.states import MessageState
from mailpacer.store import open_store

ROOT = Path(__file__).resolve().parents[2]


def send_args(sb: Any, campaign: Path, db: Path) -> list[str]:
    """The `mailpacer send` command line for the copied worker-qr example."""
    return [
        sys.executable, "-m", "mailpacer", "send", str(campaign / "workers.csv"),
        "--template", str(campaign / "templates"), "--smtp", f"smtp://{sb.host}:{sb.port}",
        "--from", "HR <hr@example.com>", "--db", str(db), "--json",
    ]  # fmt: skip


@pytest.mark.slow
def test_sigkill_then_rerun_delivers_everything_duplicates_only_uncertain(
    tmp_path: Path, sandbox: Any
) -> None:
    """Killed three times mid-send, the same command finishes the campaign: every valid
    worker received, failures only `nouser…` ones, duplicates only among uncertain ones."""

    campaign = tmp_path / "worker-qr"
    shutil.copytree(ROOT / "examples" / "worker-qr", campaign)
    db = tmp_path / "mp.db"
    sb = sandbox("strict")
    args = send_args(sb, campaign, db)
    for kill_after in (1.5, 1.0, 1.2):
        proc = subprocess.Popen(args, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        time.sleep(kill_after)
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)
        assert proc.returncode == -signal.SIGKILL
    done = subprocess.run(
        args, cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    received = collections.Counter(r for m in sb.messages for r in m.rcpt_tos)
    store = open_store(db)
    try:
        record = store.list_campaigns()[0]
        messages = store.messages(record.id, limit=10_000)
    finally:
        store.close()
    sent = {m.email for m in messages if m.state is MessageState.SENT}
    failed = {m.email for m in messages if m.state is MessageState.FAILED}
    uncertain = {m.email for m in messages if m.ever_uncertain}
    assert sent | failed == {m.email for m in messages}
    assert all(e.startswith("nouser") for e in failed)
    assert set(received) == sent
    duplicated = {e for e, n in received.items() if n > 1}
    assert duplicated <= uncertain
    assert report["uncertain"] == len(uncertain)
    assert report["sent"] == len(sent)


@pytest.mark.slow
def test_ctrl_c_finishes_in_flight_then_rerun_continues(tmp_path: Path, sandbox: Any) -> None:
    """The first SIGINT drains: the process exits by itself with the campaign paused and nothing
    left `sending`; running the same command again finishes the campaign."""
    campaign = tmp_path / "worker-qr"
    shutil.copytree(ROOT / "examples" / "worker-qr", campaign)
    db = tmp_path / "mp.db"
    sb = sandbox("strict")
    args = send_args(sb, campaign, db)
    proc = subprocess.Popen(args, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    time.sleep(1.5)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 1
    report = json.loads(out.decode().strip().splitlines()[-1])
    assert report["state"] == "paused" and "interrupted" in report["reason"]
    store = open_store(db)
    try:
        record = store.list_campaigns()[0]
        assert store.stats(record.id).counts[MessageState.SENDING] == 0
    finally:
        store.close()
    done = subprocess.run(
        args, cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    final = json.loads(done.stdout.strip().splitlines()[-1])
    assert final["state"] == "done" and final["uncertain"] == 0
    received = collections.Counter(r for m in sb.messages for r in m.rcpt_tos)
    assert all(n == 1 for n in received.values())
    assert final["sent"] == len(received)
