"""A real `mailpacer send` interrupted mid-campaign (SIGKILL, one Ctrl-C, two Ctrl-C), then run
again: the same command finishes the campaign."""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any

import pytest
from send_helpers import (
    assert_recovered,
    copy_campaign,
    last_json,
    mailpacer,
    received,
    run,
    send_args,
    start,
    stored_messages,
    wait_for,
)

from mailpacer.core.states import MessageState
from mailpacer.store import open_store


@pytest.mark.slow
def test_sigkill_then_rerun_delivers_everything_duplicates_only_uncertain(
    tmp_path: Path, sandbox: Any
) -> None:
    """Killed three times mid-send, the same command finishes the campaign: every valid
    worker received, failures only `nouser…` ones, duplicates only among uncertain ones."""
    campaign = copy_campaign(tmp_path)
    db = tmp_path / "mp.db"
    sb = sandbox("strict")
    args = send_args(sb, campaign, db)
    for kill_after in (1.5, 1.0, 1.2):
        proc = start(args, tmp_path)
        time.sleep(kill_after)
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)
        assert proc.returncode == -signal.SIGKILL
    done = run(args, tmp_path, timeout=120)
    assert done.returncode == 0, done.stderr
    assert_recovered(last_json(done.stdout), db, sb)


@pytest.mark.slow
def test_ctrl_c_finishes_in_flight_then_rerun_continues(tmp_path: Path, sandbox: Any) -> None:
    """The first SIGINT drains: the process exits by itself with the campaign paused and nothing
    left `sending`; running the same command again finishes the campaign."""
    campaign = copy_campaign(tmp_path)
    db = tmp_path / "mp.db"
    sb = sandbox("strict")
    args = send_args(sb, campaign, db)
    proc = start(args, tmp_path)
    time.sleep(1.5)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 1
    report = last_json(out)
    assert report["state"] == "paused" and "interrupted" in report["reason"]
    store = open_store(db)
    try:
        record = store.list_campaigns()[0]
        assert store.stats(record.id).counts[MessageState.SENDING] == 0
    finally:
        store.close()
    done = run(args, tmp_path, timeout=120)
    assert done.returncode == 0, done.stderr
    final = last_json(done.stdout)
    assert final["state"] == "done" and final["uncertain"] == 0
    got = received(sb)
    assert all(n == 1 for n in got.values())
    assert final["sent"] == len(got)


@pytest.mark.slow
def test_second_ctrl_c_quits_at_once_and_rerun_recovers(tmp_path: Path, sandbox: Any) -> None:
    """A second SIGINT while the first one drains exits at once (exit 130, one clear stderr
    line, no traceback) without waiting for the message in flight (the server takes 0.8 s after
    DATA); that message is still `sending` in the store, and the same command run again
    recovers it as uncertain and finishes: everything delivered, duplicates only among the
    messages reported uncertain."""
    campaign = copy_campaign(tmp_path, rows=5)
    db = tmp_path / "mp.db"
    sb = sandbox("strict", data_latency=0.8)
    args = send_args(sb, campaign, db, "--max-connections", "1")
    proc = start(args, tmp_path)
    try:
        wait_for(lambda: len(sb.messages) >= 1, what="the first accepted message")
        proc.send_signal(signal.SIGINT)  # the next message is now in the server's 0.8 s
        time.sleep(0.15)
        proc.send_signal(signal.SIGINT)
        second = time.monotonic()
        out, err = proc.communicate(timeout=30)
        quit_after = time.monotonic() - second
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert quit_after < 0.6
    assert "Ctrl-C again to quit at once" in err
    assert "SIGINT again: quit at once; messages that were in flight are recovered" in err
    assert "Traceback" not in err
    assert out == ""  # no report: it quit before the end
    assert any(m.state is MessageState.SENDING for m in stored_messages(db))
    done = run(args, tmp_path)
    assert done.returncode == 0, done.stderr
    report = last_json(done.stdout)
    assert_recovered(report, db, sb)
    assert report["uncertain"] >= 1  # the message that was in flight
    assert report["total"] == 5
    status = last_json(mailpacer("status", "1", "--db", db, "--json", cwd=tmp_path).stdout)
    assert (status["uncertain"], status["held"]) == (report["uncertain"], 0)
