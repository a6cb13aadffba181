"""`mailpacer worker` processes on PostgreSQL (issue #13 item 1): a campaign created in the store
is run by every worker at once, within the server's connection limit, nothing lost when one is
SIGKILLed; `serve --no-worker` runs nothing; a worker whose database connection is cut mid-run
keeps what it holds, reconnects and marks nothing sent that was not. Real CLI processes, a real
sandbox on 127.0.0.1, the real PostgreSQL test server."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from test_shared_route import ENV, campaign_copy, check_delivered, holders

from mailpacer.config.campaign import CampaignSettings
from mailpacer.core.route import Route
from mailpacer.core.states import CampaignState
from mailpacer.delivery import runner
from mailpacer.store import open_store

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]


def create_campaign(sb: Any, folder: Path, db: str) -> int:
    """Store a campaign of the folder's list for the sandbox ``sb``, as `send` would, without
    sending anything; its id."""
    settings = CampaignSettings(
        recipients=(folder / "workers.csv").resolve(),
        template=(folder / "templates").resolve(),
        route=Route(host=sb.host, port=sb.port, timeout=10.0),
        sender="HR <hr@example.com>",
    )
    store = open_store(db)
    try:
        return runner.prepare(store, settings, runner.check(settings)).campaign.id
    finally:
        store.close()


def state_of(db: str, campaign: int) -> CampaignState:
    """The campaign's stored state."""
    store = open_store(db)
    try:
        return store.get_campaign(campaign).state
    finally:
        store.close()


def start_worker(db: str, log: Path) -> subprocess.Popen[bytes]:
    """One `mailpacer worker` in the background, its log to ``log``."""
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "mailpacer", "worker", "--db", db, "--poll", "0.2"],
            env=ENV,
            stdout=out,
            stderr=out,
        )


def wait_done(db: str, campaign: int, limit: float = 150) -> None:
    """Until the campaign is done (checked every 0.2 s; fails after ``limit`` seconds)."""
    deadline = time.monotonic() + limit
    while state_of(db, campaign) is not CampaignState.DONE:
        assert time.monotonic() < deadline, f"campaign {campaign} not done in {limit} s"
        time.sleep(0.2)


def stop_all(procs: list[subprocess.Popen[bytes]]) -> list[int]:
    """SIGTERM each live worker (a drain) and wait (bounded); their exit codes."""
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    codes = []
    for proc in procs:
        try:
            codes.append(proc.wait(timeout=60))
        except subprocess.TimeoutExpired:
            proc.kill()
            codes.append(proc.wait(timeout=10))
    return codes


def free_port() -> int:
    """A loopback port nothing listens on now."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_serve_no_worker_runs_nothing_and_three_workers_share_four_connections(
    tmp_path: Path, sandbox: Any, pg_database: str
) -> None:
    """A campaign created in the store beside `serve --no-worker` stays queued (the API shows
    it; the sandbox gets nothing); three `mailpacer worker`s then run it against a server
    allowing 4 connections: never more than 4 at once; one worker SIGKILLed while it holds a
    slot: the others take its slots within 10 s, the campaign finishes, nothing is lost (a
    message twice only if it was uncertain); the others drain on SIGTERM and exit 0."""
    sb = sandbox("strict", max_connections=4)
    folder = campaign_copy(tmp_path, 1200)
    cid = create_campaign(sb, folder, pg_database)
    port = free_port()
    serve_log = (tmp_path / "serve.log").open("ab")
    serve = subprocess.Popen(
        [sys.executable, "-m", "mailpacer", "serve", "--no-worker", "--db", pg_database,
         "--port", str(port)],
        env=ENV, stdout=serve_log, stderr=serve_log,
    )  # fmt: skip
    procs: list[subprocess.Popen[bytes]] = []
    try:
        deadline = time.monotonic() + 30
        seen: dict[str, Any] = {}
        while not seen and time.monotonic() < deadline:
            assert serve.poll() is None, (tmp_path / "serve.log").read_text()
            try:
                got = httpx.get(f"http://127.0.0.1:{port}/api/campaigns/{cid}", timeout=2)
                seen = got.json() if got.status_code == 200 else {}
            except httpx.HTTPError:
                time.sleep(0.1)
        time.sleep(1.5)  # a serve that ran campaigns would have started this one (poll 1 s)
        assert seen["state"] == "queued" and "worker" in (seen.get("waiting") or "")
        assert state_of(pg_database, cid) is CampaignState.QUEUED and sb.counters.accepted == 0

        procs = [start_worker(pg_database, tmp_path / f"worker{n}.log") for n in range(3)]
        victim = procs[1]
        mine: set[int] = set()
        deadline = time.monotonic() + 60
        while not mine and time.monotonic() < deadline and victim.poll() is None:
            time.sleep(0.05)  # until the victim holds a slot while sending
            if sb.counters.accepted > 100:
                mine = {s for s, h in holders(pg_database).items() if f":{victim.pid}:" in h}
        assert mine, "the worker to kill never held a connection slot"
        victim.send_signal(signal.SIGKILL)
        killed_at = time.monotonic()
        taken_over = None
        while taken_over is None and time.monotonic() - killed_at < 15:
            now = holders(pg_database)
            if any(slot in now and f":{victim.pid}:" not in now[slot] for slot in mine):
                taken_over = time.monotonic() - killed_at
            time.sleep(0.05)
        assert taken_over is not None and taken_over <= 10, taken_over
        wait_done(pg_database, cid)
    finally:
        codes = stop_all(procs)
        serve.send_signal(signal.SIGTERM)
        serve.wait(timeout=30)
        serve_log.close()
    assert codes[0] == codes[2] == 0 and codes[1] == -signal.SIGKILL
    log = (tmp_path / "worker0.log").read_text()
    assert f"campaign {cid}: started here" in log and "draining" in log
    check_delivered(pg_database, sb, duplicates_allowed=True)
    assert sb.counters.peak_concurrent <= 4


def test_a_worker_whose_database_connection_is_cut_keeps_going_and_loses_nothing(
    tmp_path: Path, sandbox: Any, pg_database: str, pg_server: Any
) -> None:
    """The worker's PostgreSQL connection is terminated (pg_terminate_backend) twice while it
    sends: it reconnects (with backoff while the server refuses) and finishes the campaign;
    every message is received, each sent one exactly once as the store says (nothing marked
    sent that was not)."""
    sb = sandbox("strict", max_connections=2)
    folder = campaign_copy(tmp_path, 600)
    name = f"mp-worker-{uuid.uuid4().hex[:8]}"
    db = f"{pg_database}&application_name={name}"
    cid = create_campaign(sb, folder, db)
    proc = start_worker(db, tmp_path / "worker.log")
    try:
        for threshold in (100, 300):
            deadline = time.monotonic() + 60
            while sb.counters.accepted < threshold:
                assert time.monotonic() < deadline and proc.poll() is None
                time.sleep(0.05)
            with psycopg.connect(pg_server.url, autocommit=True) as admin:
                cut = admin.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE application_name = %s",
                    (name,),
                ).fetchall()
            assert cut, "the worker had no connection to cut"
        wait_done(db, cid)
    finally:
        [code] = stop_all([proc])
    assert code == 0
    check_delivered(db, sb)


@pytest.mark.parametrize(
    "command",
    [
        ["worker"],
        ["serve", "--no-worker", "--port", "0"],
        [
            "send",
            "workers.csv",
            "--template",
            "templates",
            "--smtp",
            "smtp://127.0.0.1:1",
            "--from",
            "hr@example.com",
        ],
    ],
    ids=["worker", "serve", "send"],
)
def test_a_database_that_cannot_be_reached_at_start_is_one_error_line_and_exit_code_5(
    tmp_path: Path, command: list[str]
) -> None:
    """`worker`, `serve` and `send` against a PostgreSQL port nobody listens on: exit code 5,
    an error naming the database (no password), no traceback."""
    folder = campaign_copy(tmp_path, 3)
    db = f"postgresql://postgres:secret@127.0.0.1:{free_port()}/test"
    done = subprocess.run(
        [sys.executable, "-m", "mailpacer", *command, "--db", db],
        cwd=folder, env=ENV, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 5, done.stderr
    assert "cannot connect to PostgreSQL at postgresql://postgres@127.0.0.1" in done.stderr
    assert "Traceback" not in done.stderr and "secret" not in done.stderr
