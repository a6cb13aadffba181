"""`mailpacer send --json`, the campaign commands (`status`, `pause`, `resume`, `cancel`,
`retry`) and the progress display, as a user runs them against a real sandbox."""

from __future__ import annotations

import csv
import dataclasses
import re
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
    wait_for,
)

from mailpacer.sandbox import Sandbox, get_profile

#: the keys DESIGN §7 promises in the final JSON line
CONTRACT = {"campaign", "sent", "failed", "uncertain", "cancelled", "seconds", "limits"}


def emails(campaign: Path) -> list[str]:
    """The recipients of a copied campaign, in file order."""
    with (campaign / "workers.csv").open(encoding="utf-8-sig") as f:
        return [row["email"] for row in csv.DictReader(f)]


def test_json_report_of_a_successful_run(tmp_path: Path, sandbox: Any) -> None:
    """Exit 0 and exactly one JSON line on stdout with the contract's keys: counts that match the
    sandbox's record, the `nouser…` worker failed with its 550, and the learned limit (2
    connections on `strict`, found without being told)."""
    campaign = copy_campaign(tmp_path, rows=40)
    db = tmp_path / "mp.db"
    sb = sandbox("strict")
    result = run(send_args(sb, campaign, db), tmp_path)
    assert result.returncode == 0, result.stderr
    [line] = result.stdout.splitlines()
    report = last_json(line)
    assert set(report) >= CONTRACT
    everyone = emails(campaign)
    nouser = {e for e in everyone if e.startswith("nouser")}
    assert report["total"] == 40 and len(nouser) == 1
    assert (report["sent"], report["failed"]) == (39, 1)
    assert (report["uncertain"], report["cancelled"]) == (0, 0)
    assert report["state"] == "done" and report["exit_code"] == 0
    assert 0 < report["seconds"] < 30
    assert report["limits"]["connections"] == 2 and report["limits_text"] == "2 connections"
    assert [(f["email"], f["code"]) for f in report["failures"]] == [(nouser.pop(), 550)]
    assert_recovered(report, db, sb)
    assert all(n == 1 for n in received(sb).values())


def test_json_report_when_the_server_is_unreachable(tmp_path: Path, unused_port: int) -> None:
    """Nothing listens on the port: exit 4, the JSON line says the campaign is paused with the
    reason, no message failed or was sent, all are still queued; `status --json` agrees."""
    campaign = copy_campaign(tmp_path, rows=10)
    db = tmp_path / "mp.db"
    unreachable = type("Unreachable", (), {"host": "127.0.0.1", "port": unused_port})()
    result = run(send_args(unreachable, campaign, db), tmp_path)
    assert result.returncode == 4, result.stderr
    report = last_json(result.stdout)
    assert set(report) >= CONTRACT
    assert report["state"] == "paused" and report["exit_code"] == 4
    assert f"cannot connect to smtp://127.0.0.1:{unused_port}" in report["route_error"]
    assert report["reason"] == report["route_error"]
    assert (report["sent"], report["failed"], report["uncertain"]) == (0, 0, 0)
    assert report["queued"] == report["total"] == 10
    status = mailpacer("status", str(report["campaign"]), "--db", db, "--json", cwd=tmp_path)
    assert status.returncode == 0, status.stderr
    stored = last_json(status.stdout)
    assert stored["state"] == "paused" and stored["failed"] == 0 and stored["queued"] == 10


@pytest.mark.slow
def test_pause_from_another_process_then_resume_finishes(tmp_path: Path, sandbox: Any) -> None:
    """`mailpacer pause ID` from a second process stops a running send (exit 1, paused by user,
    nothing left `sending`); `status ID --json` shows it; `resume ID --json` sends the rest:
    every valid worker received exactly once."""
    campaign = copy_campaign(tmp_path, rows=60)
    db = tmp_path / "mp.db"
    sb = sandbox("strict", data_latency=0.05)
    proc = start(send_args(sb, campaign, db), tmp_path)
    try:
        wait_for(lambda: len(sb.messages) >= 5, what="a few accepted messages")
        paused = mailpacer("pause", "1", "--db", db, cwd=tmp_path)
        out, err = proc.communicate(timeout=15)
    finally:
        proc.kill()
    assert paused.returncode == 0, paused.stderr
    assert "campaign 1 paused; `mailpacer resume 1` continues it" in paused.stderr
    assert proc.returncode == 1, err
    report = last_json(out)
    assert report["state"] == "paused" and report["reason"] == "paused by user"
    assert 5 <= report["sent"] < 59
    status = last_json(mailpacer("status", "1", "--db", db, "--json", cwd=tmp_path).stdout)
    assert status["state"] == "paused" and status["sending"] == 0
    assert status["sent"] == report["sent"] == len(sb.messages)
    resumed = mailpacer("resume", "1", "--db", db, "--json", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    final = last_json(resumed.stdout)
    assert_recovered(final, db, sb)
    assert final["uncertain"] == 0 and all(n == 1 for n in received(sb).values())


@pytest.mark.slow
def test_cancel_from_another_process(tmp_path: Path, sandbox: Any) -> None:
    """`mailpacer cancel ID` while sending: the send stops (exit 1, cancelled), the unsent
    messages are cancelled, in-flight ones are recorded (the sandbox got exactly the sent ones),
    and a cancelled campaign stays cancelled in `status --json`; the numbers `cancel` prints are
    the report's (issue 14.2: it waits for the in-flight messages to settle).

    One connection at 0.1 s a message keeps the ~10 messages this engine has claimed busy for
    longer than its 0.5 s state poll, so the engine sees the cancel before it runs dry (the other
    order is a known engine race: it tries to mark the cancelled campaign `done`, exit 5)."""
    campaign = copy_campaign(tmp_path, rows=30)
    db = tmp_path / "mp.db"
    sb = sandbox("strict", data_latency=0.1)
    proc = start(send_args(sb, campaign, db, "--max-connections", "1"), tmp_path)
    try:
        wait_for(lambda: len(sb.messages) >= 3, what="a few accepted messages")
        cancelled = mailpacer("cancel", "1", "--db", db, cwd=tmp_path)
        out, err = proc.communicate(timeout=15)
    finally:
        proc.kill()
    assert cancelled.returncode == 0, cancelled.stderr
    said = re.search(
        r"campaign 1 cancelled; (\d+) unsent messages cancelled, (\d+) sent", cancelled.stderr
    )
    assert said, cancelled.stderr
    assert proc.returncode == 1, err
    report = last_json(out)
    assert report["state"] == "cancelled" and report["cancelled"] > 0
    # issue 14.2: one truth: `cancel` waits for the in-flight messages, so its numbers are final
    assert (int(said[1]), int(said[2])) == (report["cancelled"], report["sent"])
    assert report["sent"] + report["failed"] + report["cancelled"] == report["total"] == 30
    assert report["sent"] == len(sb.messages)
    status = last_json(mailpacer("status", "1", "--db", db, "--json", cwd=tmp_path).stdout)
    assert status["state"] == "cancelled" and status["cancelled"] == report["cancelled"]
    assert status["queued"] == status["sending"] == status["deferred"] == 0


def test_retry_failed_after_the_mailbox_exists(tmp_path: Path, unused_port: int) -> None:
    """A recipient refused with 550 fails; once the server knows the mailbox (a new sandbox on
    the same port, same route), `retry ID --failed --json` sends exactly that message: exit 0,
    failed 0, the others are not sent again."""
    campaign = copy_campaign(tmp_path, rows=20)
    db = tmp_path / "mp.db"
    unlimited = get_profile("unlimited")
    with Sandbox(unlimited, port=unused_port) as first:
        result = run(send_args(first, campaign, db), tmp_path)
        assert result.returncode == 0, result.stderr
        assert last_json(result.stdout)["failed"] == 1
        assert len(first.messages) == 19
    knows_everyone = dataclasses.replace(unlimited, unknown_user_prefix=None)
    with Sandbox(knows_everyone, port=unused_port) as second:
        retried = mailpacer("retry", "1", "--failed", "--db", db, "--json", cwd=tmp_path)
        assert retried.returncode == 0, retried.stderr
        assert "1 message(s) queued again" in retried.stderr
        report = last_json(retried.stdout)
        assert [r for m in second.messages for r in m.rcpt_tos] == [
            "nouser.sun.na.0017@example.com"
        ]
    assert (report["state"], report["sent"], report["failed"]) == ("done", 20, 0)
    assert report["sent_this_run"] == 1


def test_progress_display_shows_counts_connections_and_rate(tmp_path: Path, sandbox: Any) -> None:
    """Without --json, stderr carries the progress bar (sent/total, failed, deferred,
    connections, rate), the learned limit and a summary — whole lines, not wrapped at 80
    columns — and stdout stays empty."""
    campaign = copy_campaign(tmp_path, rows=40)
    sb = sandbox("strict")
    args = [a for a in send_args(sb, campaign, tmp_path / "mp.db") if a != "--json"]
    result = run(args, tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    err = result.stderr
    bar = re.search(r"workers .*[━╸╺].* (\d+)/40 +\d+% +\d:\d\d:\d\d", err)
    assert bar and bar[1] == "39", err
    line = re.search(r"sent (\d+) · failed (\d+) · deferred (\d+) · (\d+) connections? ·", err)
    assert line, err
    sent, failed, deferred, conn = line.groups()
    assert (sent, failed, deferred, conn) == ("39", "1", "0", "0")  # the end: all closed
    assert "learned limits: 2 connections" in err
    assert "campaign 1 (workers): done" in err
    assert "  sent 39/40 · failed 1 · uncertain 0 · deferred 0 · queued 0 · cancelled 0" in err
    assert re.search(r"failed nouser\.sun\.na\.0017@example\.com: 550 5\.1\.1 .*User unknown", err)


@pytest.mark.slow
def test_deferred_messages_far_off_are_left_for_a_later_run(tmp_path: Path, sandbox: Any) -> None:
    """Issue 15.4: every message is greylisted for 10 minutes ("try again in 600 seconds").
    With --wait-deferred 30s the send does not sit there: it says how many are deferred, why
    and when they are due, exits 75, and the campaign is paused with that reason; nothing is
    failed. With the greylisting short, the default waits and finishes (exit 0)."""
    campaign = copy_campaign(tmp_path, rows=4)
    db = tmp_path / "mp.db"
    sb = sandbox("unlimited", greylist_seconds=600.0)
    proc = run(send_args(sb, campaign, db, "--wait-deferred", "30s"), tmp_path, timeout=60)
    assert proc.returncode == 75, proc.stderr
    report = last_json(proc.stdout)
    assert (report["state"], report["deferred"], report["failed"]) == ("paused", 4, 0)
    assert report["left_deferred"] == 4
    assert report["reason"].startswith("4 message(s) deferred (last: 451")
    assert "next try at" in report["reason"] and "mailpacer resume 1" in report["reason"]
    quick = sandbox("unlimited", greylist_seconds=2.0)
    db2 = tmp_path / "mp2.db"
    done = run(send_args(quick, campaign, db2), tmp_path, timeout=60)
    assert done.returncode == 0, done.stderr
    assert last_json(done.stdout)["sent"] == 4
