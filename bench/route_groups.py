"""One campaign spread over a group of two routes whose capacities are 1:3: time vs the ideal.

Two sandboxes, each in its own process (so neither shares the interpreter lock with the sender),
with the same latency and 1 and 3 connections (``--shape connections``), or the same connections
and a token-bucket rate of 1:3 (``--shape rate``). mailpacer is told nothing about either.

- ideal = messages / (capacity 1 + capacity 2), with the profiles' stated capacities;
- ratio = seconds / ideal (the issue asks for ≤ 1.1);
- alone: each route alone with its share of the messages (1/4 and 3/4), for the ratio a single
  route reaches on this machine: ``ratio ÷ alone`` is what grouping itself costs.

Run:

    .venv/bin/python bench/route_groups.py [--messages 2000] [--shape connections|rate] \
        [--command-ms 10] [--data-ms 40] [--alone]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import tempfile
import time
from pathlib import Path
from typing import Any

from capacity import SandboxProcess, render
from mailpacer.config.campaign import CampaignSettings, RouteEntry
from mailpacer.core.retry import RetryPolicy
from mailpacer.core.route import Route
from mailpacer.delivery import runner
from mailpacer.store import NewMessage, open_store

SENDER = "bench@example.com"


def shapes(command: float, data: float) -> dict[str, tuple[dict[str, Any], dict[str, Any]]]:
    """The two sandboxes' profile fields per shape; the same latency on both (seconds):
    t = 3 * command + data per message and connection (by default 3 * 10 + 40 = 70 ms)."""
    latency = {"greeting_latency": command, "command_latency": command, "data_latency": data}
    return {
        # 1 and 3 connections (by default 14.3 and 42.9 msg/s)
        "connections": ({**latency, "max_connections": 1}, {**latency, "max_connections": 3}),
        # 4 connections each (57 msg/s by default latency), rates 10/s and 30/s (burst 5)
        "rate": (
            {**latency, "max_connections": 4, "rate_per_minute": 600.0, "rate_burst": 5},
            {**latency, "max_connections": 4, "rate_per_minute": 1800.0, "rate_burst": 5},
        ),
    }


def send(routes: list[Route], count: int) -> tuple[float, Any]:
    """Send ``count`` messages through ``routes`` as one campaign; (seconds, report)."""
    with tempfile.TemporaryDirectory() as tmp:
        store = open_store(Path(tmp) / "bench.db")
        record, _ = store.get_or_create_campaign("bench", name="bench", route_key="b", options={})
        store.add_messages(
            record.id,
            (
                NewMessage(i + 1, f"worker{i}@example.com", {"email": f"worker{i}@example.com"})
                for i in range(count)
            ),
        )
        settings = CampaignSettings(
            recipients=Path("bench.csv"),
            template=Path("templates"),
            route=routes[0],
            more_routes=tuple(RouteEntry(r) for r in routes[1:]),
            sender=SENDER,
            retry=RetryPolicy(base_seconds=0.5, cap_seconds=5.0, max_age_seconds=300.0),
        )
        started = time.perf_counter()
        report = asyncio.run(runner.run(store, record, settings, _render))
        seconds = time.perf_counter() - started
        store.close()
    return seconds, report


def _render(variables: Any) -> bytes:
    return render({"email": variables["email"], "code": "1"})


def group(fields: tuple[dict[str, Any], dict[str, Any]], count: int) -> dict[str, Any]:
    """The campaign over both routes: time, ratio to the ideal, share and arrivals per route."""
    slow_fields, fast_fields = fields
    slow = SandboxProcess("strict", **slow_fields)
    fast = SandboxProcess("strict", **fast_fields)
    try:
        routes = [Route(host=sb.host, port=sb.port, timeout=10.0) for sb in (slow, fast)]
        seconds, report = send(routes, count)
    finally:
        slow_ids, slow_replies, slow_peak = slow.stop()
        fast_ids, fast_replies, fast_peak = fast.stop()
    ideal = count / (slow.capacity + fast.capacity)
    arrivals = collections.Counter(slow_ids + fast_ids)
    throttles = sum(n for c, n in (*slow_replies.items(), *fast_replies.items()) if c >= 400)
    return {
        "capacities": (slow.capacity, fast.capacity),
        "seconds": seconds,
        "ideal": ideal,
        "ratio": seconds / ideal,
        "sent": report.sent,
        "received": (len(slow_ids), len(fast_ids)),
        "share_fast": len(fast_ids) / max(1, len(slow_ids) + len(fast_ids)),
        "per_route": [(r.route, r.sent, r.limits_text) for r in report.routes],
        "duplicates": sum(n - 1 for n in arrivals.values() if n > 1),
        "lost": count - len(arrivals) - report.failed,
        "throttles": throttles,
        "peaks": (slow_peak, fast_peak),
    }


def alone(fields: tuple[dict[str, Any], dict[str, Any]], count: int) -> list[dict[str, Any]]:
    """Each route alone with the share of messages it would carry in the group."""
    rows = []
    for one, part in zip(fields, (0.25, 0.75), strict=True):
        n = round(count * part)
        sb = SandboxProcess("strict", **one)
        try:
            seconds, report = send([Route(host=sb.host, port=sb.port, timeout=10.0)], n)
        finally:
            sb.stop()
        ideal = n / sb.capacity
        rows.append(
            {"messages": n, "sent": report.sent, "seconds": seconds, "ideal": ideal}
            | {"ratio": seconds / ideal}
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--shape", choices=("connections", "rate"), default="connections")
    parser.add_argument("--command-ms", type=float, default=10.0, help="latency per command")
    parser.add_argument("--data-ms", type=float, default=40.0, help="latency after the final .")
    parser.add_argument("--alone", action="store_true", help="also run each route alone")
    args = parser.parse_args()
    fields = shapes(args.command_ms / 1000, args.data_ms / 1000)[args.shape]
    result = group(fields, args.messages)
    slow_cap, fast_cap = result["capacities"]
    print(
        f"group of 2 routes ({args.shape}; command {args.command_ms:g} ms, after DATA"
        f" {args.data_ms:g} ms), capacities {slow_cap:.1f} + {fast_cap:.1f} msg/s,"
        f" {args.messages} messages"
    )
    print(
        f"  {result['seconds']:.2f} s vs ideal {result['ideal']:.2f} s:"
        f" ratio {result['ratio']:.3f} (≤ 1.1 asked)"
    )
    print(
        f"  share of the 3x route: {result['share_fast']:.1%} (ideal 75%);"
        f" received {result['received'][0]} + {result['received'][1]}"
    )
    for route, sent, learned in result["per_route"]:
        print(f"  {route}: sent {sent} — learned: {learned}")
    print(
        f"  sent {result['sent']}, lost {result['lost']}, duplicates {result['duplicates']},"
        f" replies ≥ 400: {result['throttles']}, peak connections {result['peaks']}"
    )
    if args.alone:
        ratios = []
        for name, row in zip(("1x", "3x"), alone(fields, args.messages), strict=True):
            ratios.append(row["ratio"])
            print(
                f"  alone {name}: {row['sent']}/{row['messages']} sent in {row['seconds']:.2f} s"
                f" vs ideal {row['ideal']:.2f} s: ratio {row['ratio']:.3f}"
            )
        print(f"  grouping's own cost: ratio ÷ slower alone = {result['ratio'] / max(ratios):.3f}")


if __name__ == "__main__":
    main()
