"""The engine over the in-memory store that ships in the package (no database file), against
the sandbox on loopback: what it holds while it runs, as its ``repr`` says."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from test_engine_sandbox import SENDER, campaign, render

from mailpacer.config.campaign import CampaignSettings
from mailpacer.core.events import Event
from mailpacer.core.route import Route
from mailpacer.core.states import MessageState
from mailpacer.delivery.engine import Engine
from mailpacer.delivery.route_runtime import LOOK_SECONDS
from mailpacer.store import MemoryStore, open_store


def settings_for(sb: Any, priority: int = 0) -> CampaignSettings:
    """Settings sending to the sandbox ``sb``."""
    return CampaignSettings(
        recipients=Path("recipients.csv"),
        template=Path("templates"),
        route=Route(host=sb.host, port=sb.port, timeout=10.0),
        sender=SENDER,
        priority=priority,
    )


def test_memory_store_runs_a_campaign_to_the_end(sandbox: Any) -> None:
    """`open_store("memory:")` is a whole store: a campaign runs on it to ``done``, every
    message sent once, and the learned limit is kept for the route."""
    sb = sandbox("strict")
    store = open_store("memory:")
    assert isinstance(store, MemoryStore)
    record = campaign(store, 80)

    async def go() -> Any:
        engine = Engine(store)
        try:
            return await engine.run(record, settings_for(sb), render)
        finally:
            await engine.close()

    report = asyncio.run(go())
    assert (report.state, report.sent) == ("done", 80)
    assert store.stats(record.id).counts[MessageState.SENT] == 80
    assert len({m.message_id for m in sb.messages}) == 80
    stored = store.load_route_limits(settings_for(sb).route.key)
    assert stored is not None and stored["connections"] == report.limits["connections"] == 2


def test_two_campaigns_feed_one_route_runtime(sandbox: Any) -> None:
    """While two campaigns on one server run in one engine, the engine has one route runtime
    with both as feeds (its repr says so), and each campaign run says what it holds."""
    sb = sandbox("strict", data_latency=0.02)
    store = open_store("memory:")
    first, second = campaign(store, 60, key="a"), campaign(store, 60, key="b")
    seen: list[str] = []

    async def go() -> list[Any]:
        engine = Engine(store)

        def look(event: Event) -> None:
            if event.kind == "progress" and len(engine.runs) == 2 and not seen:
                seen.append(repr(engine))
                seen.extend(repr(route) for route in engine.routes.values())
                seen.extend(repr(run) for run in engine.runs.values())

        engine.events.subscribe(look)
        try:
            return list(
                await asyncio.gather(
                    engine.run(first, settings_for(sb), render),
                    engine.run(second, settings_for(sb), render),
                )
            )
        finally:
            await engine.close()

    reports = asyncio.run(go())
    assert [r.sent for r in reports] == [60, 60]
    key = settings_for(sb).route.key
    assert seen[0] == f"<Engine campaigns=[1, 2] routes=['{key}']>"
    assert seen[1].startswith(f"<RouteRuntime {key} feeds=2 ")
    assert seen[2].startswith("<CampaignRun 1 ready=") and seen[2].endswith(" running>")
    assert sb.counters.peak_concurrent <= 2


def test_the_route_is_woken_not_polled_at_start_and_end(sandbox: Any) -> None:
    """Claimed work opens connections at once and the route ends as soon as its last connection
    closes: neither waits for the supervisor's safety-net look (a lost wake-up used to cost a
    second at each end of every campaign, 12 % of a 1,000-message run)."""
    sb = sandbox("strict")
    store = open_store("memory:")
    record = campaign(store, 10)
    times: dict[str, float] = {}

    def look(event: Event) -> None:
        if event.kind == "outcome":
            times.setdefault("first", time.monotonic())
            times["last"] = time.monotonic()

    async def go() -> Any:
        engine = Engine(store, observers=[look])
        try:
            times["start"] = time.monotonic()
            report = await engine.run(record, settings_for(sb), render)
            times["end"] = time.monotonic()
            return report
        finally:
            await engine.close()

    report = asyncio.run(go())
    assert report.sent == 10
    assert times["first"] - times["start"] < LOOK_SECONDS / 2
    assert times["end"] - times["last"] < LOOK_SECONDS / 2
