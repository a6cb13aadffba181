"""Two campaigns on one route in one process (issue #10 must-show): do they share its budget?

On the ``strict`` sandbox (2 connections per IP, refused at the greeting), told nothing about
limits, each case on a fresh sandbox (in its own process, as in ``capacity.py``) and a fresh
SQLite file:

- ``alone``: one campaign of 2N messages on one :class:`Engine`;
- ``together``: two campaigns of N messages each, ``asyncio.gather`` of two ``engine.run`` on one
  :class:`Engine`, started at once (meant to share one route runtime: one pacer, one set of
  connections);
- ``staggered``: the same, the second started once the engine holds the route's runtime (a few
  milliseconds later). Campaigns started at the very same moment each build a runtime of their
  own today (``Engine._route`` awaits the store between its look-up and its insert), so this
  row shows the shared runtime itself; the ``route runtimes`` column counts what was built.

Reported: messages/s (all messages over the time until the last campaign finished), the ratio
to ``alone``, each campaign's own time, peak concurrent connections the sandbox saw, replies
>= 400 per 100 messages, lost and duplicated messages, the route runtimes the campaigns were
given and the limits learned. Run (about 1 minute on strict):

    .venv/bin/python bench/shared_route.py [--messages 500] [--rounds 1]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import hashlib
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from capacity import SandboxProcess
from mailpacer.config.campaign import CampaignSettings
from mailpacer.core.retry import RetryPolicy
from mailpacer.core.route import Route
from mailpacer.delivery.engine import Engine
from mailpacer.delivery.report import Report
from mailpacer.delivery.route_runtime import RouteRuntime
from mailpacer.store import NewMessage, Store, open_store

SENDER = "bench@example.com"


def message_id(email: str) -> str:
    return f"<{hashlib.sha256(email.encode()).hexdigest()[:20]}@example.com>"


def render(variables: Mapping[str, str]) -> bytes:
    email = variables["email"]
    return (
        f"From: {SENDER}\r\nTo: {email}\r\nSubject: check-in code\r\n"
        f"Message-ID: {message_id(email)}\r\n\r\nYour code is {variables['code']}.\r\n"
    ).encode()


def add_campaign(store: Store, key: str, count: int) -> int:
    record, _ = store.get_or_create_campaign(key, name=key, route_key="b", options={})
    store.add_messages(
        record.id,
        (
            NewMessage(
                i + 1, f"{key}{i}@example.com", {"email": f"{key}{i}@example.com", "code": str(i)}
            )
            for i in range(count)
        ),
    )
    return record.id


def settings(host: str, port: int) -> CampaignSettings:
    return CampaignSettings(
        recipients=Path("bench.csv"),
        template=Path("templates"),
        route=Route(host=host, port=port, timeout=10.0),
        sender=SENDER,
        retry=RetryPolicy(
            max_attempts=12, base_seconds=0.5, cap_seconds=5.0, max_age_seconds=300.0
        ),
    )


async def _run_all(
    store: Store, ids: list[int], s: CampaignSettings, *, staggered: bool
) -> tuple[list[Report], list[float], int]:
    """Every campaign on one engine (``staggered``: the later ones once the engine holds the
    route's runtime); their reports, each one's seconds, and how many distinct route runtimes
    the engine held meanwhile (sampled every 10 ms)."""
    engine = Engine(store)
    started = time.perf_counter()
    seconds: list[float] = [0.0] * len(ids)
    runtimes: set[int] = set()

    async def one(i: int, cid: int) -> Report:
        if i and staggered:
            for _ in range(1000):  # at most ~1 s
                if engine.routes:
                    break
                await asyncio.sleep(0.001)
        report = await engine.run(store.get_campaign(cid), s, render)
        seconds[i] = time.perf_counter() - started
        return report

    find_route = engine._route  # the bench reaches in: which runtime did each run get?

    async def traced(settings: CampaignSettings) -> RouteRuntime:
        runtime = await find_route(settings)
        runtimes.add(id(runtime))
        return runtime

    setattr(engine, "_route", traced)  # noqa: B010 (mypy refuses assigning to a method)
    try:
        reports = await asyncio.wait_for(
            asyncio.gather(*(one(i, cid) for i, cid in enumerate(ids))), 600
        )
    finally:
        await engine.close()
    return list(reports), seconds, len(runtimes)


def measure(case: str, n: int) -> dict[str, Any]:
    """``alone``: one campaign of 2n; ``together``: two of n started at once; ``staggered``:
    two of n, the second started once the engine holds the route's runtime."""
    sb = SandboxProcess("strict")
    try:
        with tempfile.TemporaryDirectory() as tmp:
            store = open_store(Path(tmp) / "bench.db")
            if case == "alone":
                ids = [add_campaign(store, "a", 2 * n)]
            else:
                ids = [add_campaign(store, "a", n), add_campaign(store, "b", n)]
            reports, seconds, runtimes = asyncio.run(
                _run_all(store, ids, settings(sb.host, sb.port), staggered=case == "staggered")
            )
            store.close()
    finally:
        received_ids, replies, peak = sb.stop()
    total = 2 * n
    received = collections.Counter(received_ids)
    sent = sum(r.sent for r in reports)
    failed = sum(r.failed for r in reports)
    elapsed = max(seconds)
    return {
        "case": case,
        "sent": sent,
        "failed": failed,
        "uncertain": sum(r.uncertain for r in reports),
        "states": [r.state for r in reports],
        "seconds": elapsed,
        "campaign_seconds": [round(x, 2) for x in seconds],
        "rate": sent / elapsed,
        "capacity": sb.capacity,
        "peak": peak,
        "throttles_per_100": 100 * sum(c for code, c in replies.items() if code >= 400) / total,
        "replies": replies,
        "lost": total - len(received) - failed,
        "duplicates": sum(c - 1 for c in received.values() if c > 1),
        "limits": reports[0].limits_text,
        "runtimes": runtimes,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=500, help="N: per campaign together")
    parser.add_argument("--rounds", type=int, default=1, help="alone/together pairs, alternated")
    args = parser.parse_args()
    rows: list[list[dict[str, Any]]] = []
    for _ in range(args.rounds):
        row = []
        for case in ("alone", "together", "staggered"):
            row.append(measure(case, args.messages))
            print(row[-1], flush=True)
        rows.append(row)
    print()
    print(
        "| round | case | campaigns | msg/s | share of capacity | / alone "
        "| each campaign's s | peak connections | replies >= 400 per 100 | lost | duplicates "
        "| states | route runtimes | learned |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    n = args.messages
    for i, row in enumerate(rows, 1):
        alone = row[0]
        for r in row:
            label = f"1 × {2 * n}" if r is alone else f"2 × {n}"
            ratio = "—" if r is alone else f"{r['rate'] / alone['rate']:.1%}"
            share = r["rate"] / r["capacity"]
            print(
                f"| {i} | {r['case']} | {label} | {r['rate']:.1f} | {share:.1%} "
                f"| {ratio} | {', '.join(f'{s:.1f}' for s in r['campaign_seconds'])} "
                f"| {r['peak']} | {r['throttles_per_100']:.2f} | {r['lost']} | {r['duplicates']} "
                f"| {'/'.join(r['states'])} | {r['runtimes']} | {r['limits']} |"
            )


if __name__ == "__main__":
    main()
