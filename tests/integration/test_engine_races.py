"""The engine's races (issue #10): a pause during a quota wait, a cancel racing claims, a rate
delay longer than the lease, a bug in a connection. Run against the engine before the
redesign (its API, same scenarios), three failed: 117 messages sent after the cancel,
duplicates (5 of 6), a hang; the pause test passed there (its 0.5 s poll saw the pause before
the stale write; the race it guards needs a pause within the poll's blind spot)."""

from __future__ import annotations

import asyncio
import collections
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from test_engine_sandbox import SENDER, campaign, render

from mailpacer.config.campaign import CampaignSettings
from mailpacer.core.limits import Limits
from mailpacer.core.route import Route
from mailpacer.core.states import CampaignState, MessageState
from mailpacer.delivery import runner
from mailpacer.delivery.report import Report
from mailpacer.delivery.scheduler import Timing, claim_size
from mailpacer.store import CampaignRecord, Store, open_store


@pytest.fixture
def db(tmp_path: Path) -> Path:
    """A SQLite file that the engine and the "other process" (a second connection) share."""
    return tmp_path / "mailpacer.db"


def settings_for(sb: Any, **fields: Any) -> CampaignSettings:
    """Campaign settings sending to the sandbox ``sb``."""
    return CampaignSettings(
        recipients=Path("recipients.csv"),
        template=Path("templates"),
        route=Route(host=sb.host, port=sb.port, timeout=10.0),
        sender=SENDER,
        **fields,
    )


def send(
    store: Store,
    record: CampaignRecord,
    settings: CampaignSettings,
    *,
    render_fn: Any = render,
    timing: Timing | None = None,
) -> Report:
    """Run the campaign to its end (bounded: 60 s) and return the report."""
    coro = runner.run(store, store.get_campaign(record.id), settings, render_fn, timing=timing)
    return asyncio.run(asyncio.wait_for(coro, 60))


def when(condition: Any, then: Any, *, limit: float = 30.0) -> threading.Thread:
    """Run ``then()`` in a thread as soon as ``condition()`` holds (checked every 10 ms)."""

    def watch() -> None:
        deadline = time.monotonic() + limit
        while not condition() and time.monotonic() < deadline:
            time.sleep(0.01)
        then()

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def test_a_pause_during_a_quota_wait_ends_paused_with_a_report(db: Path, sandbox: Any) -> None:
    """The quota is used up and the campaign is ``waiting``; a user pauses it from another
    process just before the window ends. The run ends with a report saying ``paused``, and
    nothing is sent after the pause. (The engine used to write ``running`` over a pause it had
    not read yet, from the ``waiting`` it last read: the table allows ``paused → running``.)"""
    sb = sandbox("quota", quota=20, quota_window_seconds=2.0)
    store = open_store(db)
    record = campaign(store, 60)
    other = open_store(db)
    paused_at: list[int] = []

    def window_nearly_over() -> bool:
        waiting = other.get_campaign(record.id).state is CampaignState.WAITING
        return waiting and time.time() >= sb.messages[0].time + 1.9

    def pause() -> None:
        paused_at.append(len(sb.messages))
        other.set_campaign_state(record.id, CampaignState.PAUSED, "paused by user")

    waiting = when(window_nearly_over, pause)
    settings = settings_for(sb, ceilings=Limits(quota_window_seconds=2.0))
    report = send(store, record, settings)
    waiting.join()
    assert report.state == "paused", report
    assert report.reason == "paused by user"
    assert paused_at and len(sb.messages) == paused_at[0] == 20
    assert store.stats(record.id).counts[MessageState.SENDING] == 0
    other.close()
    store.close()


def test_a_cancel_from_another_process_stops_claims(db: Path, sandbox: Any) -> None:
    """A cancel committed by another process while messages flow: the run ends ``cancelled``,
    no message is claimed after it (only those this process held already may still leave until
    it reads the cancel: a claim's worth plus one per connection), no message is left
    ``sending``, and the rest are ``cancelled``."""
    sb = sandbox("unlimited", data_latency=0.01)
    store = open_store(db)
    record = campaign(store, 400)
    other = open_store(db)
    at_cancel: list[int] = []

    def cancel() -> None:
        other.set_campaign_state(record.id, CampaignState.CANCELLED, "cancelled by user")
        at_cancel.append(len(sb.messages))
        time.sleep(0.3)  # the CLI's cancel_pending comes a moment later: claims must not
        other.cancel_pending(record.id)

    watcher = when(lambda: len(sb.messages) >= 50, cancel)
    report = send(store, record, settings_for(sb, ceilings=Limits(connections=4)))
    watcher.join()
    stats = store.stats(record.id)
    assert report.state == "cancelled", report
    assert stats.counts[MessageState.SENDING] == 0
    assert stats.counts[MessageState.QUEUED] == 0
    held = claim_size(ready=0, connections=4) + 4
    assert len(sb.messages) - at_cancel[0] <= held
    assert stats.counts[MessageState.SENT] == len(sb.messages)
    assert stats.counts[MessageState.CANCELLED] == 400 - len(sb.messages)
    other.close()
    store.close()


def test_a_rate_wait_longer_than_the_lease_sends_nothing_twice(db: Path, sandbox: Any) -> None:
    """A message waiting for its rate slot longer than the lease keeps its lease: the
    heartbeat's recovery does not requeue it behind the engine's back (which sent it twice)."""
    sb = sandbox("unlimited")
    store = open_store(db)
    record = campaign(store, 6)
    settings = settings_for(sb, ceilings=Limits(connections=1, rate_per_minute=120.0))
    report = send(store, record, settings, timing=Timing(lease_seconds=0.3))
    received = collections.Counter(m.rcpt_tos[0] for m in sb.messages)
    assert report.sent == 6 and report.uncertain == 0, report
    assert max(received.values()) == 1, received
    store.close()


def test_a_bug_in_a_connection_is_reported_not_swallowed(db: Path, sandbox: Any) -> None:
    """Rendering one recipient raises an unexpected error (a bug, not a template error): the
    run stops and its report names the error; the campaign is paused with that reason, and the
    message is not marked failed or sent."""
    sb = sandbox("unlimited")
    store = open_store(db)
    record = campaign(store, 30)

    def buggy(variables: Mapping[str, str]) -> bytes:
        if variables["email"].startswith("worker7@"):
            raise ZeroDivisionError("division by zero in a template filter")
        return render(variables)

    report = send(store, record, settings_for(sb), render_fn=buggy)
    assert report.state == "paused", report
    assert report.reason and "ZeroDivisionError" in report.reason
    assert report.exit_code != 0
    worker7 = [m for m in store.messages(record.id, limit=100) if m.email.startswith("worker7@")]
    assert worker7[0].state not in (MessageState.SENT, MessageState.FAILED)
    store.close()


def test_status_during_a_quota_wait_shows_queued_messages_and_the_learned_limits(
    db: Path, sandbox: Any
) -> None:
    """Issue 14.7: while the campaign waits for its quota window, another process sees the
    messages this run had claimed back in ``queued`` (not ``sending`` for the whole wait: only
    what was on the wire), and the route's learned limits already saved."""
    sb = sandbox("quota", quota=20, quota_window_seconds=2.0)
    store = open_store(db)
    record = campaign(store, 60)
    other = open_store(db)
    seen: list[tuple[int, Any]] = []
    settings = settings_for(sb, ceilings=Limits(quota_window_seconds=2.0))

    def look() -> None:
        time.sleep(0.3)
        sending = other.stats(record.id).counts[MessageState.SENDING]
        seen.append((sending, other.load_route_limits(settings.route.key)))

    watcher = when(lambda: other.get_campaign(record.id).state is CampaignState.WAITING, look)
    report = send(store, record, settings)
    watcher.join()
    assert (report.state, report.sent) == ("done", 60), report
    [(sending, limits)] = seen
    assert sending == 0
    assert limits is not None and limits["quota"] == 20
    other.close()
    store.close()
