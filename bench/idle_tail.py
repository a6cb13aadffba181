"""The idle tail (issue #10): what the engine does to the database while only deferred messages
wait for their ``retry_at``.

A campaign on a real SQLite file: some messages sent, the rest ``deferred`` with ``retry_at``
far ahead (``--retry-in``, 10 minutes). The engine runs it against the ``strict`` sandbox for
``--seconds``, then is stopped. Every statement on the store's connection is counted through
``sqlite3``'s ``set_trace_callback`` (the bench reaches into ``SqliteStore._conn``): write
transactions (``BEGIN`` … ``COMMIT``, and those of them that changed a row), read statements
outside a transaction, and campaign stats aggregations (the ``campaign_stats`` query), per
minute, over the whole window and after the first second (the start's fixed cost left out).

``--legacy`` runs the engine from before the redesign (commit ``f52aef9``: ``Engine(store,
campaign, route, render, EngineOptions(sender=...))``, ``await engine.run()``), imported from
whatever ``mailpacer`` is first on the path; ``--compare SRC`` runs this engine, then the
legacy one in a child process with ``PYTHONPATH=SRC``, and prints both rows. Run, from the
repository root (about 1 minute):

    git worktree add --detach ../wt-oldmain f52aef9
    .venv/bin/python bench/idle_tail.py --compare ../wt-oldmain/src [--seconds 30]
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mailpacer
from mailpacer.core.route import Route
from mailpacer.core.states import CampaignState, MessageState
from mailpacer.sandbox import Sandbox, get_profile
from mailpacer.store import NewMessage, Outcome, open_store

SENDER = "bench@example.com"


def render(variables: Mapping[str, str]) -> bytes:
    email = variables["email"]
    return f"From: {SENDER}\r\nTo: {email}\r\nSubject: hello\r\n\r\nHello.\r\n".encode()


@dataclass
class Trace:
    """Counts the statements run on one sqlite3 connection (from any thread)."""

    conn: sqlite3.Connection
    #: (monotonic time, kind) per counted event; kinds: "tx", "tx-changed", "read", "stats"
    events: list[tuple[float, str]] = field(default_factory=list)
    statements: int = 0
    _in_tx: bool = False
    _changes_at_begin: int = 0
    _on: bool = True
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, sql: str) -> None:
        with self._lock:
            if not self._on:
                return
            now = time.monotonic()
            head = sql.lstrip().split(None, 1)[0].upper() if sql.strip() else ""
            self.statements += 1
            if head == "BEGIN":
                self._in_tx = True
                self._changes_at_begin = self.conn.total_changes
                self.events.append((now, "tx"))
            elif head in ("COMMIT", "END"):
                if self.conn.total_changes > self._changes_at_begin:
                    self.events.append((now, "tx-changed"))
                self._in_tx = False
            elif head == "ROLLBACK":
                self._in_tx = False
            elif not self._in_tx and head in ("INSERT", "UPDATE", "DELETE", "REPLACE"):
                # a write in autocommit mode: its own transaction (none today on SQLite)
                self.events.append((now, "tx"))
                self.events.append((now, "tx-changed"))
            elif not self._in_tx:
                self.events.append((now, "read"))
            if "GROUP BY state" in sql:
                self.events.append((now, "stats"))

    def stop(self) -> None:
        with self._lock:
            self._on = False

    def per_minute(self, start: float, end: float) -> dict[str, float]:
        minutes = (end - start) / 60.0
        counts = dict.fromkeys(("tx", "tx-changed", "read", "stats"), 0)
        for at, kind in self.events:
            if start <= at <= end:
                counts[kind] += 1
        return {kind: n / minutes for kind, n in counts.items()}


def prepare(db: Path, *, messages: int, sent: int, retry_in: float) -> int:
    """A campaign whose first ``sent`` messages are sent and the rest deferred ``retry_in``
    seconds ahead, left ``paused`` (an earlier run interrupted); returns its id."""
    store = open_store(db)
    try:
        record, _ = store.get_or_create_campaign("idle", name="idle", route_key="b", options={})
        store.add_messages(
            record.id,
            (
                NewMessage(i + 1, f"w{i}@example.com", {"email": f"w{i}@example.com"})
                for i in range(messages)
            ),
        )
        store.set_campaign_state(record.id, CampaignState.RUNNING, None)
        now = time.time()
        claimed = store.claim(record.id, worker="setup", limit=messages, lease_seconds=60, now=now)
        outcomes = [
            Outcome(m.id, MessageState.SENT, "accepted", 250, "2.0.0", "250 OK", now)
            if i < sent
            else Outcome(
                m.id,
                MessageState.DEFERRED,
                "transient",
                451,
                "4.3.0",
                "451 4.3.0 try again later",
                now,
                retry_at=now + retry_in,
            )
            for i, m in enumerate(claimed)
        ]
        store.record(outcomes)
        store.set_campaign_state(record.id, CampaignState.PAUSED, "interrupted")
        return record.id
    finally:
        store.close()


async def run_for(seconds: float, start: Callable[[], Any], stop: Callable[[], None]) -> Any:
    """Start the engine (``start()`` returns its run coroutine), let it run, stop it, wait."""
    task = asyncio.ensure_future(start())
    await asyncio.sleep(seconds)
    stop()
    return await asyncio.wait_for(task, 60)


def measure(
    seconds: float, *, messages: int, sent: int, retry_in: float, legacy: bool
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp, Sandbox(get_profile("strict"), port=0) as sb:
        db = Path(tmp) / "idle.db"
        cid = prepare(db, messages=messages, sent=sent, retry_in=retry_in)
        store = open_store(db)
        route = Route(host=sb.host, port=sb.port, timeout=10.0)
        conn: sqlite3.Connection = store._conn  # type: ignore[attr-defined]  # a bench may reach in
        trace = Trace(conn)
        holder: dict[str, Any] = {}

        async def go() -> Any:
            record = store.get_campaign(cid)
            if legacy:
                engine_mod: Any = importlib.import_module("mailpacer.delivery.engine")
                if not hasattr(engine_mod, "EngineOptions"):
                    raise SystemExit("--legacy needs the old mailpacer first on PYTHONPATH")
                engine = engine_mod.Engine(
                    store, record, route, render, engine_mod.EngineOptions(sender=SENDER)
                )
                holder["engine"] = engine
                conn.set_trace_callback(trace)
                return await engine.run()
            from mailpacer.config.campaign import CampaignSettings
            from mailpacer.delivery.engine import Engine

            settings = CampaignSettings(
                recipients=Path("idle.csv"), template=Path("templates"), route=route, sender=SENDER
            )
            engine_new = Engine(store)
            holder["engine"] = engine_new
            conn.set_trace_callback(trace)
            try:
                return await engine_new.run(record, settings, render)
            finally:
                await engine_new.close()

        def stop() -> None:
            trace.stop()
            holder["stopped_at"] = time.monotonic()
            holder["engine"].stop()

        started = time.monotonic()
        report = asyncio.run(run_for(seconds, go, stop))
        end = holder["stopped_at"]
        conn.set_trace_callback(None)
        final = store.stats(cid).counts
        store.close()
        counters = sb.counters
    return {
        "engine": "legacy" if legacy else "new",
        "mailpacer": str(Path(mailpacer.__file__).parent),
        "seconds": round(end - started, 2),
        "whole": trace.per_minute(started, end),
        "after_1s": trace.per_minute(started + 1.0, end),
        "statements": trace.statements,
        "report_state": report.state,
        "deferred_left": final[MessageState.DEFERRED],
        "sent": final[MessageState.SENT],
        "smtp_connections": counters.connections_opened,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--sent", type=int, default=400, help="of --messages, already sent")
    parser.add_argument("--retry-in", type=float, default=600.0, help="deferred until now + this")
    parser.add_argument("--legacy", action="store_true", help="the engine of commit f52aef9")
    parser.add_argument("--compare", metavar="SRC", help="then the legacy engine from SRC")
    parser.add_argument("--json", action="store_true", help="print only the JSON result")
    args = parser.parse_args()
    results = [
        measure(
            args.seconds,
            messages=args.messages,
            sent=args.sent,
            retry_in=args.retry_in,
            legacy=args.legacy,
        )
    ]
    if args.json:
        print(json.dumps(results[0]))
        return
    if args.compare:
        argv = [sys.argv[0], "--legacy", "--json", "--seconds", str(args.seconds)]
        argv += ["--messages", str(args.messages), "--sent", str(args.sent)]
        argv += ["--retry-in", str(args.retry_in)]
        env = {**os.environ, "PYTHONPATH": args.compare}
        child = subprocess.run(
            [sys.executable, *argv], env=env, capture_output=True, text=True, check=True
        )
        results.append(json.loads(child.stdout.strip().splitlines()[-1]))
    for result in results:
        print(json.dumps(result, indent=1))
    print()
    print(
        "| engine | window s | write tx/min (changed a row) | reads/min | stats/min "
        "| after the first second: write tx/min (changed) | reads/min | stats/min "
        "| SMTP connections |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for r in results:
        w, a = r["whole"], r["after_1s"]
        print(
            f"| {r['engine']} | {r['seconds']:.0f} | {w['tx']:.1f} ({w['tx-changed']:.1f}) "
            f"| {w['read']:.1f} | {w['stats']:.1f} | {a['tx']:.1f} ({a['tx-changed']:.1f}) "
            f"| {a['read']:.1f} | {a['stats']:.1f} | {r['smtp_connections']} |"
        )


if __name__ == "__main__":
    main()
