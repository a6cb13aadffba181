"""Campaigns sharing a route in one engine (issue #10): one budget, no duplicates, priority."""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from test_engine_sandbox import SENDER, message_id, render

from mailpacer.config.campaign import CampaignSettings
from mailpacer.core.route import Route
from mailpacer.core.states import MessageState
from mailpacer.delivery.engine import Engine
from mailpacer.delivery.report import Report
from mailpacer.store import CampaignRecord, NewMessage, Store, open_store


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    """A real SQLite store in a temporary file."""
    s = open_store(tmp_path / "mailpacer.db")
    yield s
    s.close()


def campaign_of(store: Store, key: str, count: int) -> CampaignRecord:
    """A campaign of ``count`` recipients ``<key>0@example.com`` … (distinct per campaign)."""
    record, _ = store.get_or_create_campaign(key, name=key, route_key="test", options={})
    emails = [f"{key}{i}@example.com" for i in range(count)]
    store.add_messages(
        record.id, (NewMessage(i + 1, e, {"email": e, "name": key}) for i, e in enumerate(emails))
    )
    return record


def settings_for(sb: Any, *, priority: int = 0) -> CampaignSettings:
    """Settings sending to the sandbox ``sb``, told nothing about its limits."""
    return CampaignSettings(
        recipients=Path("recipients.csv"),
        template=Path("templates"),
        route=Route(host=sb.host, port=sb.port, timeout=10.0),
        sender=SENDER,
        priority=priority,
    )


def run_together(
    store: Store,
    runs: list[tuple[CampaignRecord, CampaignSettings]],
    *,
    before: list[Callable[[Engine], Awaitable[None]] | None] | None = None,
) -> list[Report]:
    """Run the campaigns on one engine (``before[i]``, when given, is awaited before the
    i-th starts); bounded: 120 s for all."""

    async def main() -> list[Report]:
        engine = Engine(store)

        async def one(i: int, record: CampaignRecord, settings: CampaignSettings) -> Report:
            wait = before[i] if before else None
            if wait is not None:
                await wait(engine)
            return await engine.run(store.get_campaign(record.id), settings, render)

        try:
            return list(
                await asyncio.wait_for(
                    asyncio.gather(*(one(i, r, s) for i, (r, s) in enumerate(runs))), 120
                )
            )
        finally:
            await engine.close()

    return asyncio.run(main())


def throttles(sb: Any) -> int:
    """Replies of 400 and above the sandbox sent (every recipient exists: each is a limit)."""
    return sum(n for code, n in sb.counters.replies.items() if code >= 400)


@pytest.mark.slow
def test_two_campaigns_at_once_share_the_strict_servers_two_connections(
    store: Store, sandbox: Any
) -> None:
    """Two 300-message campaigns started at once on one engine, `strict` (2 connections), told
    nothing: never more than 2 connections open, at most 1 throttle reply per 100 messages,
    every message delivered exactly once (duplicates only among those reported uncertain),
    both campaigns ``done``."""
    sb = sandbox("strict")
    first, second = campaign_of(store, "a", 300), campaign_of(store, "b", 300)
    reports = run_together(store, [(first, settings_for(sb)), (second, settings_for(sb))])
    assert [r.state for r in reports] == ["done", "done"], reports
    assert [r.sent for r in reports] == [300, 300]
    assert sb.counters.peak_concurrent <= 2, sb.counters
    assert throttles(sb) <= 6, sb.counters.refusals
    received = collections.Counter(m.message_id for m in sb.messages)
    for record, report in zip((first, second), reports, strict=True):
        messages = store.messages(record.id, limit=1000)
        assert all(m.state is MessageState.SENT for m in messages)
        uncertain = {message_id(m.email) for m in messages if m.ever_uncertain}
        for m in messages:
            mid = message_id(m.email)
            assert received[mid] == 1 or (received[mid] > 1 and mid in uncertain), m.email
        assert report.uncertain == len(uncertain)
    assert sum(received.values()) - len(received) <= sum(r.uncertain for r in reports)


@pytest.mark.slow
def test_two_campaigns_started_at_once_learn_the_servers_two_connections(
    store: Store, sandbox: Any
) -> None:
    """Two campaigns started in the same moment share one route, so together they learn what
    the server allows (2 connections, from one 421) and save that, not half of it. (It failed
    while the engine looked up a route and made its runtime with an await in between.)"""
    sb = sandbox("strict")
    first, second = campaign_of(store, "a", 60), campaign_of(store, "b", 60)
    settings = settings_for(sb)
    reports = run_together(store, [(first, settings), (second, settings)])
    assert [r.sent for r in reports] == [60, 60]
    learned = store.load_route_limits(settings.route.key)
    assert learned is not None and learned["connections"] == 2, learned
    assert sb.counters.replies.get(421, 0) <= 1


@pytest.mark.slow
def test_a_higher_priority_campaign_started_beside_a_larger_one_finishes_first(
    store: Store, sandbox: Any
) -> None:
    """A 400-message campaign is sending on `strict`; a 60-message one of higher priority
    joins it on the same engine. The small one's last message is accepted before the large
    one's, and while the small one is sending the large one gets little of the route (by the
    sandbox's records, not a clock): fewer than half as many of its messages are accepted
    between the small one's first and last."""
    sb = sandbox("strict")
    bulk, urgent = campaign_of(store, "bulk", 400), campaign_of(store, "urgent", 60)

    async def when_bulk_flows(engine: Engine) -> None:
        for _ in range(3000):  # at most ~30 s
            if len(sb.messages) >= 40:
                return
            await asyncio.sleep(0.01)
        raise AssertionError("the bulk campaign never got going")

    reports = run_together(
        store,
        [(bulk, settings_for(sb)), (urgent, settings_for(sb, priority=5))],
        before=[None, when_bulk_flows],
    )
    assert [r.state for r in reports] == ["done", "done"], reports
    accepted = sb.messages
    urgent_times = [m.time for m in accepted if m.rcpt_tos[0].startswith("urgent")]
    bulk_times = [m.time for m in accepted if m.rcpt_tos[0].startswith("bulk")]
    assert len(urgent_times) >= 60 and len(bulk_times) >= 400
    assert max(urgent_times) < max(bulk_times)
    during = [t for t in bulk_times if min(urgent_times) <= t <= max(urgent_times)]
    assert len(during) < 30, f"{len(during)} bulk messages accepted while urgent was sending"
