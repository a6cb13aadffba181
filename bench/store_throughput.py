"""How fast the SQLite store claims and records, on a campaign of 100,000 messages.

The engine claims small batches and records outcomes in batches of about 50 (one transaction
each). Measured in one run, on one file in a temporary folder:

- ``add``: recipients inserted per second (``add_messages``, batches of 5,000);
- ``claim``: claim calls per second (``limit`` 20, as the engine's refill) at the start of the
  campaign and again when 90% of it is sent (the index keeps the cost flat);
- ``record``: outcomes per second in batches of 50, and a peer: one transaction per outcome;
- ``stats``: one ``stats()`` call on the whole campaign.

Run:

    .venv/bin/python bench/store_throughput.py [--messages 100000] [--batch 50]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from mailpacer.states import MessageState
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


def run(messages: int, batch: int, folder: Path) -> dict[str, float]:
    """Every measurement on one fresh file."""
    store = open_store(folder / "bench.db")
    record, _ = store.get_or_create_campaign("bench", name="bench", route_key="r", options={})
    cid = record.id
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
    size = (folder / "bench.db").stat().st_size + (folder / "bench.db-wal").stat().st_size
    results["bytes/message"] = size / messages
    store.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=50)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mailpacer-bench-") as folder:
        results = run(args.messages, args.batch, Path(folder))
    ratio = results["record/s batched"] / results["record/s one per tx"]
    print(f"store throughput, {args.messages:,} messages, outcomes in batches of {args.batch}")
    for name, value in results.items():
        print(f"  {name:<22} {value:>12,.1f}")
    print(f"  {'batched / one per tx':<22} {ratio:>12,.1f}x")


if __name__ == "__main__":
    main()
