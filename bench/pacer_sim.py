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
}


def main() -> None:
    """Print one row per model."""
    messages = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    print("| model | capacity msg/s | throughput / capacity | throttles per 100 | learned |")
    print("|---|---|---|---|---|")
    for name, model in MODELS.items():
        result = simulate(model, messages)
        ratio = result.ratio(messages // 4)
        per100 = result.throttles_per_100()
        learned = result.pacer.limits.describe()
        print(f"| {name} | {model.capacity:.2f} | {ratio:.3f} | {per100:.2f} | {learned} |")


if __name__ == "__main__":
    main()
