"""The pacer against simulated servers: throughput / capacity and throttle replies per 100.

Run: .venv/bin/python bench/pacer_sim.py [MESSAGES]

Each model is a discrete-event server (tests/unit/simserver.py) driven by an engine-like client
that is told nothing about the limits. Throughput is measured after the first quarter of the
messages (the warm-up); throttles count every throttle reply, 421 greetings included.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "unit"))

from simserver import ServerModel, simulate

from mailpacer.core.classify import Verdict
from mailpacer.pacing.pacer import Limits

#: Exchange words its per-minute limit and (on some servers) a per-session cap alike
EXCHANGE_RATE = (
    "421 4.4.2 Message submission rate for this client has exceeded the configured limit, "
    "closing transmission channel"
)

MODELS = {
    "strict (2 conns, 421 greeting)": ServerModel(max_connections=2, service_time=0.1),
    "exchange-like (3 conns, 30/min)": ServerModel(
        max_connections=3, service_time=0.2, rate_per_second=0.5, burst=5
    ),
    "rate-limited (20/s, burst 20)": ServerModel(
        max_connections=8, service_time=0.1, rate_per_second=20, burst=20
    ),
    "anvil-like (5 conns, 120/min)": ServerModel(
        max_connections=5, service_time=0.15, rate_per_second=2, burst=10
    ),
    "ses-like (14/s, 50 per session)": ServerModel(
        max_connections=4,
        service_time=0.05,
        connect_time=0.2,
        rate_per_second=14,
        burst=14,
        per_connection=50,
    ),
    "strict bucket (25/s, burst 1)": ServerModel(
        max_connections=4, service_time=0.05, rate_per_second=25, burst=1
    ),
    "many conns (8, 421 greeting)": ServerModel(max_connections=8, service_time=0.3),
    # limiter shapes (DESIGN §9)
    "anvil fixed window (2 conns, 50 per 10 s)": ServerModel(
        max_connections=2, service_time=0.02, window_shape="fixed"
    ),
    "sliding window (3 conns, 60 per 20 s)": ServerModel(
        max_connections=3,
        service_time=0.05,
        window_shape="sliding",
        window_count=60,
        window_seconds=20.0,
    ),
    "per-minute counter (3 conns, 120/min)": ServerModel(
        max_connections=3,
        service_time=0.05,
        window_shape="fixed",
        window_count=120,
        window_seconds=60.0,
    ),
    # misleading words
    "30 per connection worded as a rate": ServerModel(
        max_connections=3,
        service_time=0.05,
        connect_time=0.1,
        per_connection=30,
        per_connection_verdict=Verdict.THROTTLE_RATE,
        per_connection_reply=EXCHANGE_RATE,
    ),
    # a sink: no stated limit, 4 workers
    "sink (4 workers, no limit)": ServerModel(max_connections=1000, service_time=0.05, workers=4),
    # limits that change mid-campaign
    "rate raised 10 -> 30/s after 300": ServerModel(
        max_connections=4,
        service_time=0.05,
        rate_per_second=10,
        burst=5,
        change_after=300,
        later=ServerModel(max_connections=4, service_time=0.05, rate_per_second=30, burst=5),
    ),
    "rate lowered 30 -> 10/s after 300": ServerModel(
        max_connections=4,
        service_time=0.05,
        rate_per_second=30,
        burst=5,
        change_after=300,
        later=ServerModel(max_connections=4, service_time=0.05, rate_per_second=10, burst=5),
    ),
    "conns raised 2 -> 4 after 300": ServerModel(
        max_connections=2,
        service_time=0.1,
        change_after=300,
        later=ServerModel(max_connections=4, service_time=0.1),
    ),
}

#: a route whose first campaign learned a wrong limit: (model, persisted limits)
HEALING = {
    "persisted rate 23% of a 20/s server": (
        ServerModel(max_connections=4, service_time=0.05, rate_per_second=20, burst=5),
        Limits(rate_per_minute=0.23 * 20 * 60),
    ),
    "persisted 1 connection of 4": (
        ServerModel(max_connections=4, service_time=0.1),
        Limits(connections=1),
    ),
    "persisted 5 per connection of a free server": (
        ServerModel(max_connections=3, service_time=0.05, connect_time=0.2),
        Limits(messages_per_connection=5),
    ),
}


HEADER = (
    "| model | capacity msg/s | throughput / capacity | throttles per 100 | most conns | learned |"
)


def main() -> None:
    """Print one row per model."""
    messages = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    print(HEADER)
    print("|---|---|---|---|---|---|")
    for name, model in MODELS.items():
        result = simulate(model, messages)
        ratio = result.ratio(messages // 4)
        per100 = result.throttles_per_100()
        learned = result.pacer.limits.describe()
        row = f"{model.capacity:.2f} | {ratio:.3f} | {per100:.2f} | {result.max_target}"
        print(f"| {name} | {row} | {learned} |")
    print()
    print("healing: a wrong persisted limit, throughput / capacity over messages 300-1000")
    print(HEADER)
    print("|---|---|---|---|---|---|")
    for name, (model, learned_before) in HEALING.items():
        result = simulate(model, 1000, learned=learned_before)
        ratio = result.ratio(300)
        per100 = result.throttles_per_100()
        learned = result.pacer.limits.describe()
        row = f"{model.capacity:.2f} | {ratio:.3f} | {per100:.2f} | {result.max_target}"
        print(f"| {name} | {row} | {learned} |")


if __name__ == "__main__":
    main()
