"""How fast a store claims and records, on a campaign of 100,000 messages.

The engine claims small batches and records outcomes in batches of about 50 (one transaction
each). Measured in one run, on one SQLite file in a temporary folder, or (``--db
postgresql://...``) in a schema of its own in that PostgreSQL database, dropped afterwards:

- ``add``: recipients inserted per second (``add_messages``, batches of 5,000);
- ``claim``: claim calls per second (``limit`` 20, as the engine's refill) at the start of the
  campaign and again when 90% of it is sent (the index keeps the cost flat);
- ``record``: outcomes per second in batches of 50, and a peer: one transaction per outcome;
- ``stats``: one ``stats()`` call on the whole campaign;
- ``shared``: with ``--workers N`` (default 4), N worker processes send the last 10% together,
  each claiming 20 and recording them in one batch (``record(..., worker=)``) in a loop:
  outcomes per second, all workers together.

Run:

    .venv/bin/python bench/store_throughput.py [--messages 100000] [--batch 50] [--workers 4]
        [--db postgresql://postgres@127.0.0.1:5432/test]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from mailpacer.core.states import CampaignState, MessageState
from mailpacer.store import ClaimedMessage, NewMessage, Outcome, Store, open_store

WORKER = "bench:1:0"


def recipients(n: int) -> Iterator[NewMessage]:
    """Recipients with a few template variables each, like a real list."""
    for row in range(1, n + 1):
        yield NewMessage(
            row,
            f"user{row}@example.org",
            {"name": f"User {row}", "language": "en", "code": f"{row:08d}"},
        )


def sent(messages: list[ClaimedMessage]) -> list[Outcome]:
    """An accepted outcome for each message."""
    now = time.time()
    reply = "2.0.0 Ok: queued as 4BfH2x0Kq3z1"
    return [
        Outcome(m.id, MessageState.SENT, "accepted", 250, "2.0.0", reply, now) for m in messages
    ]


def timed(fn: Callable[[], object]) -> float:
    """Seconds one call takes."""
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def claim(store: Store, cid: int, limit: int) -> list[ClaimedMessage]:
    """One engine-style claim."""
    return store.claim(cid, worker=WORKER, limit=limit, lease_seconds=60.0, now=time.time())


def claims_per_second(store: Store, cid: int, calls: int, limit: int = 20) -> float:
    """Claim calls per second; the claimed messages are released afterwards."""
    claimed: list[int] = []
    seconds = 0.0
    for _ in range(calls):
        start = time.perf_counter()
        got = claim(store, cid, limit)
        seconds += time.perf_counter() - start
        claimed.extend(m.id for m in got)
    store.release(WORKER, claimed)
    return calls / seconds


def record_rate(store: Store, cid: int, outcomes: int, batch: int) -> float:
    """Outcomes per second recorded in batches of ``batch`` (only the record calls are timed)."""
    seconds = 0.0
    done = 0
    while done < outcomes:
        chunk = sent(claim(store, cid, batch))
        start = time.perf_counter()
        store.record(chunk)
        seconds += time.perf_counter() - start
        done += len(chunk)
    return done / seconds


SHARED_WORKER = """
import sys, time
from mailpacer.core.states import CampaignState, MessageState
from mailpacer.store import Outcome, open_store

store, cid, worker = open_store(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
sys.stdin.readline()
while batch := store.claim(cid, worker=worker, limit=20, lease_seconds=60, now=time.time()):
    now = time.time()
    store.record([Outcome(m.id, MessageState.SENT, "accepted", 250, "2.0.0", "2.0.0 Ok", now)
                  for m in batch], worker=worker)
"""


def shared_rate(target: str, cid: int, workers: int, outcomes: int) -> float:
    """Outcomes per second when ``workers`` processes claim and record at once until the
    campaign is sent (started together, once each has opened the store)."""
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", SHARED_WORKER, target, str(cid), f"bench:{i}:shared"],
            stdin=subprocess.PIPE,
            text=True,
        )
        for i in range(workers)
    ]
    time.sleep(1.0 + 0.3 * workers)  # let them import and connect
    start = time.perf_counter()
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
    for proc in procs:
        if proc.wait(timeout=600) != 0:
            raise SystemExit(f"a shared worker failed with exit code {proc.returncode}")
    return outcomes / (time.perf_counter() - start)


@contextlib.contextmanager
def database(db: str | None) -> Iterator[tuple[str, Callable[[], float]]]:
    """Where to measure: (what open_store takes, bytes used so far)."""
    if db is None:
        with tempfile.TemporaryDirectory(prefix="mailpacer-bench-") as folder:
            path = Path(folder) / "bench.db"
            wal = path.with_name("bench.db-wal")
            yield str(path), lambda: path.stat().st_size + wal.stat().st_size
        return
    import psycopg
    from psycopg import sql

    schema = f"mailpacer_bench_{os.getpid()}"
    admin = psycopg.connect(db, autocommit=True)
    admin.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    sep = "&" if "?" in db else "?"

    def size() -> float:
        query = "SELECT sum(pg_total_relation_size(c.oid)) FROM pg_class c"
        query += " JOIN pg_namespace n ON n.oid = c.relnamespace"
        query += " WHERE n.nspname = %s AND c.relkind = 'r'"
        row = admin.execute(query, (schema,)).fetchone()
        return float(row[0]) if row and row[0] else 0.0

    try:
        yield f"{db}{sep}options=-csearch_path%3D{schema}", size
    finally:
        admin.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))
        admin.close()


def run(
    messages: int, batch: int, workers: int, target: str, size: Callable[[], float]
) -> dict[str, float]:
    """Every measurement on one fresh database."""
    store = open_store(target)
    record, _ = store.get_or_create_campaign("bench", name="bench", route_key="r", options={})
    cid = store.set_campaign_state(record.id, CampaignState.RUNNING).id  # claims need running
    add_seconds = timed(lambda: store.add_messages(cid, recipients(messages)))
    results = {"add/s": messages / add_seconds}
    results["claim/s start"] = claims_per_second(store, cid, 300)
    results["record/s batched"] = record_rate(store, cid, min(20_000, messages // 5), batch)
    results["record/s one per tx"] = record_rate(store, cid, min(2_000, messages // 50), 1)
    remaining = store.stats(cid).counts[MessageState.QUEUED]
    to_send = remaining - messages // 10
    while to_send > 0:  # send down to the last 10% quickly, batches of 500
        chunk = sent(claim(store, cid, min(500, to_send)))
        store.record(chunk)
        to_send -= len(chunk)
    results["claim/s at 90%"] = claims_per_second(store, cid, 300)
    results["stats ms"] = statistics.median(timed(lambda: store.stats(cid)) for _ in range(5)) * 1e3
    results["bytes/message"] = size() / messages
    if workers > 0:
        left = store.stats(cid).counts[MessageState.QUEUED]
        results[f"shared/s {workers} workers"] = shared_rate(target, cid, workers, left)
        if store.stats(cid).counts[MessageState.SENT] != messages:
            raise SystemExit("the shared workers left messages unsent")
    store.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=50)
    parser.add_argument("--workers", type=int, default=4, help="shared-send processes (0: none)")
    parser.add_argument("--db", help="a postgresql:// URL (default: a SQLite file in /tmp)")
    args = parser.parse_args()
    with database(args.db) as (target, size):
        results = run(args.messages, args.batch, args.workers, target, size)
    ratio = results["record/s batched"] / results["record/s one per tx"]
    kind = "SQLite" if args.db is None else "PostgreSQL"
    print(f"{kind} store, {args.messages:,} messages, outcomes in batches of {args.batch}")
    for name, value in results.items():
        print(f"  {name:<22} {value:>12,.1f}")
    print(f"  {'batched / one per tx':<22} {ratio:>12,.1f}x")


if __name__ == "__main__":
    main()
