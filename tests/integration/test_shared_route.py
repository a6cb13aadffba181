"""Several `mailpacer send` processes on one campaign and one database share the route's budget
(DESIGN §5, §6; issue #13 item 2): together they never hold more connections than the server
allows, trip its limit about as rarely as one process alone, and deliver every message once —
also when one of them is SIGKILLed mid-run, whose connection slots are then taken by the others
within seconds. Real CLI processes, real sandboxes on 127.0.0.1, real SQLite and PostgreSQL."""

from __future__ import annotations

import collections
import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest

from mailpacer.core.states import MessageState
from mailpacer.store import open_store

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "worker-qr"
ENV = {k: v for k, v in os.environ.items() if not k.startswith("MAILPACER_")}


def campaign_copy(tmp_path: Path, rows: int) -> Path:
    """The worker-qr example with ``rows`` recipients (its rows repeated under new addresses;
    the `nouser…` ones stay unknown users)."""
    folder = tmp_path / "worker-qr"
    shutil.copytree(EXAMPLE, folder)
    source = folder / "workers.csv"
    with source.open(encoding="utf-8-sig", newline="") as f:
        original = list(csv.DictReader(f))
    fields = list(original[0])
    with source.open("w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        for i in range(rows):
            row = dict(original[i % len(original)])
            local, _, domain = row["email"].partition("@")
            row["email"] = f"{local}.{i}@{domain}"
            writer.writerow(row)
    return folder


def start_send(sb: Any, folder: Path, db: str) -> subprocess.Popen[str]:
    """One `mailpacer send` of the campaign in the background (bounded by the caller)."""
    args = [
        sys.executable, "-m", "mailpacer", "send", str(folder / "workers.csv"),
        "--template", str(folder / "templates"), "--smtp", f"smtp://{sb.host}:{sb.port}",
        "--from", "HR <hr@example.com>", "--db", db, "--json",
    ]  # fmt: skip
    return subprocess.Popen(
        args, cwd=folder, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def finish(procs: list[subprocess.Popen[str]], timeout: float = 150) -> list[dict[str, Any]]:
    """Wait for every process (bounded); the final JSON report of each that exited normally."""
    reports = []
    try:
        for proc in procs:
            out, err = proc.communicate(timeout=timeout)
            if proc.returncode >= 0:
                assert proc.returncode == 0, err[-2000:]
                reports.append(json.loads(out.strip().splitlines()[-1]))
    finally:
        for proc in procs:
            proc.kill()
            proc.communicate()  # reaped, pipes closed: no ResourceWarning in a later test
    return reports


def throttles(sb: Any) -> int:
    """4xx replies the sandbox sent (refused connections included)."""
    return sum(n for (code, _), n in sb.counters.refusals.items() if code // 100 == 4)


def check_delivered(db: str, sb: Any, *, duplicates_allowed: bool = False) -> int:
    """Every message sent or failed (only `nouser…` ones fail); the sandbox got each sent one
    once (or, after a SIGKILL, more than once only if it was uncertain). Returns how many."""
    store = open_store(db)
    try:
        [record] = store.list_campaigns()
        messages = store.messages(record.id, limit=100_000)
    finally:
        store.close()
    sent = {m.email for m in messages if m.state is MessageState.SENT}
    failed = {m.email for m in messages if m.state is MessageState.FAILED}
    uncertain = {m.email for m in messages if m.ever_uncertain}
    got = collections.Counter(r for m in sb.messages for r in m.rcpt_tos)
    assert sent | failed == {m.email for m in messages}
    assert all(e.startswith("nouser") for e in failed)
    assert set(got) == sent
    twice = {e for e, n in got.items() if n > 1}
    assert twice <= uncertain if duplicates_allowed else not twice
    return len(messages)


@pytest.mark.slow
def test_two_sends_on_one_sqlite_file_share_the_strict_servers_two_connections(
    tmp_path: Path, sandbox: Any
) -> None:
    """Two `mailpacer send` started at once on the default (SQLite) store and the `strict`
    sandbox (2 connections per IP): the server never sees more than 2 connections, at most
    one throttle per 100 messages, and every message arrives once."""
    sb = sandbox("strict")
    folder = campaign_copy(tmp_path, 600)
    db = str(tmp_path / "mp.db")
    reports = finish([start_send(sb, folder, db) for _ in range(2)])
    assert [r["state"] for r in reports] == ["done", "done"]
    total = check_delivered(db, sb)
    assert sb.counters.peak_concurrent <= 2
    assert throttles(sb) <= total / 100, sb.counters.refusals


def holders(url: str) -> dict[int, str]:
    """Who holds each connection slot of the (only) route now."""
    with psycopg.connect(url, autocommit=True) as conn:
        return dict(conn.execute("SELECT slot, holder FROM route_slots").fetchall())


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_three_sends_on_postgres_share_four_connections_and_survive_a_sigkill(
    tmp_path: Path, sandbox: Any, pg_database: str
) -> None:
    """Three `mailpacer send` processes on one PostgreSQL database and a server allowing 4
    connections: never more than 4 at once; one of them SIGKILLed mid-run holding slots: the
    others take its slots within 10 s, and nothing is lost (a message delivered twice only if
    it was uncertain)."""
    sb = sandbox("strict", max_connections=4)
    folder = campaign_copy(tmp_path, 1000)
    procs = [start_send(sb, folder, pg_database) for _ in range(3)]
    try:
        victim, mine = None, set()
        deadline = time.monotonic() + 60
        while victim is None and time.monotonic() < deadline:
            time.sleep(0.05)  # until one of them holds a slot while sending
            if sb.counters.accepted > 100:
                now = holders(pg_database)
                for proc in procs:
                    mine = {s for s, h in now.items() if f":{proc.pid}:" in h}
                    if mine and proc.poll() is None:
                        victim = proc
                        break
        assert victim is not None, "no process held a connection slot while sending"
        victim.send_signal(signal.SIGKILL)
        killed_at = time.monotonic()
        taken_over = None
        while taken_over is None and time.monotonic() - killed_at < 15:
            now = holders(pg_database)
            if any(slot in now and f":{victim.pid}:" not in now[slot] for slot in mine):
                taken_over = time.monotonic() - killed_at
            time.sleep(0.05)
        assert taken_over is not None and taken_over <= 10, taken_over
    finally:
        reports = finish(procs)  # every process ends and its pipes are closed, whatever failed
    assert victim.returncode == -signal.SIGKILL
    assert [r["state"] for r in reports] == ["done", "done"]
    total = check_delivered(pg_database, sb, duplicates_allowed=True)
    assert sb.counters.peak_concurrent <= 4
    assert total == 1000
    # (no throttle budget here: the issue asks peak, loss and takeover of this run; refused
    # extra connections after the kill are counted in bench/scale.py, and are a known weak spot)
