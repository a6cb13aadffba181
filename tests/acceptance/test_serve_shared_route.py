"""Campaigns side by side on one route share its budget (issue #11): three 1,000-message
campaigns at once on the strict sandbox (2 connections), and a 50-message high-priority one
started among them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from service_helpers import TEMPLATE, Served, create, recipients, wait_for, write_config

pytestmark = [pytest.mark.slow, pytest.mark.timeout(400)]


@pytest.fixture
def served(tmp_path: Path, sandbox: Any) -> Iterator[tuple[Served, Any]]:
    """``serve`` on the strict sandbox with the ``hello`` template."""
    sb = sandbox("strict")
    server = Served(tmp_path, write_config(tmp_path, sb)).start()
    with server.client() as client:
        assert client.post("/api/templates", json=TEMPLATE).status_code == 201
    yield server, sb
    server.stop()


def test_three_campaigns_share_two_connections_and_priority_goes_first(
    served: tuple[Served, Any],
) -> None:
    """Three bulk campaigns of 1,000 run at once: the sandbox never sees more than its 2
    connections, at most 1 throttle reply per 100 messages; a 50-message campaign of higher
    priority, created once they are under way, finishes before any of them; all 3,050 are
    received exactly once."""
    server, sb = served
    with server.client() as client:
        bulk = [create(client, recipients(1000, prefix=f"b{n}-"))["id"] for n in range(3)]
        wait_for(client, bulk[0], lambda c: c["counts"]["sent"] >= 50)
        urgent = create(client, recipients(50, prefix="reset-"), priority=10)["id"]
        finished = wait_for(client, urgent, lambda c: c["state"] == "done", timeout=120)
        others = [client.get(f"/api/campaigns/{i}").json() for i in bulk]
        assert all(c["state"] == "running" and c["counts"]["queued"] > 0 for c in others)
        done = [
            wait_for(client, i, lambda c: c["state"] == "done", timeout=300)["updated_at"]
            for i in bulk
        ]
    assert finished["updated_at"] < min(done)
    counters = sb.counters
    assert counters.peak_concurrent <= 2
    throttles = sum(n for (code, _), n in counters.refusals.items() if code == 421)
    assert throttles <= 3050 / 100
    assert counters.accepted == 3050 and len({m.message_id for m in sb.messages}) == 3050
