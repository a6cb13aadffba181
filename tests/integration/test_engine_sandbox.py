"""The engine against the sandbox over loopback, told nothing about the server's limits."""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import hashlib
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from mailpacer.config.campaign import CampaignSettings
from mailpacer.core.events import Observer
from mailpacer.core.retry import RetryPolicy
from mailpacer.core.route import Route, TlsMode
from mailpacer.core.states import CampaignState, MessageState
from mailpacer.delivery import runner
from mailpacer.delivery.report import Report
from mailpacer.delivery.scheduler import Timing
from mailpacer.pacing.pacer import Limits, PacerConfig
from mailpacer.store import CampaignRecord, NewMessage, Store, open_store

SENDER = "sender@example.com"


def message_id(email: str) -> str:
    """A deterministic Message-ID per recipient, as the composer makes."""
    return f"<{hashlib.sha256(email.encode()).hexdigest()[:20]}@example.com>"


def render(variables: Mapping[str, str]) -> bytes:
    """A small, valid message for one recipient (the engine does not care how it was made)."""
    email = variables["email"]
    return (
        f"From: {SENDER}\r\nTo: {email}\r\nSubject: hello {variables.get('name', '')}\r\n"
        f"Message-ID: {message_id(email)}\r\n\r\nHello.\r\n.leading dot line\r\n"
    ).encode()


@pytest.fixture
def store(tmp_path: Path) -> Any:
    """A real SQLite store in a temporary file."""
    s = open_store(tmp_path / "mailpacer.db")
    yield s
    s.close()


def campaign(store: Store, count: int, *, nouser: int = 0, key: str = "c1") -> CampaignRecord:
    """A campaign of ``count`` recipients, the first ``nouser`` of which the sandbox rejects."""
    record, _ = store.get_or_create_campaign(key, name=key, route_key="test", options={})
    store.add_messages(
        record.id,
        (
            NewMessage(
                row=i + 1,
                email=f"{'nouser' if i < nouser else 'worker'}{i}@example.com",
                variables={
                    "email": f"{'nouser' if i < nouser else 'worker'}{i}@example.com",
                    "name": f"W{i}",
                },
            )
            for i in range(count)
        ),
    )
    return record


def tls_route(sb: Any, *, password: str | None = None, trusted: bool = True) -> Route:
    """STARTTLS + AUTH to an `auth-tls` sandbox, trusting its certificate unless told not to."""
    user, real_password = sb.credentials
    return Route(
        host=sb.host,
        port=sb.port,
        tls=TlsMode.STARTTLS,
        username=user,
        password=password or real_password,
        cafile=str(sb.cafile) if trusted else None,
        timeout=5.0,
    )


_TIMING = {f.name for f in dataclasses.fields(Timing)}


def run_engine(
    store: Store,
    record: CampaignRecord,
    route: Route,
    *,
    pacer: PacerConfig | None = None,
    observers: Sequence[Observer] = (),
    **options: Any,
) -> Report:
    """Run an engine on the campaign through ``route`` and return its report. ``options`` are
    :class:`Timing` fields (lease_seconds, ...) or :class:`CampaignSettings` fields."""
    timing = Timing(**{k: v for k, v in options.items() if k in _TIMING})
    fields = {k: v for k, v in options.items() if k not in _TIMING}
    settings = CampaignSettings(
        recipients=Path("recipients.csv"),
        template=Path("templates"),
        route=route,
        sender=SENDER,
        **fields,
    )

    return asyncio.run(
        runner.run(
            store,
            store.get_campaign(record.id),
            settings,
            render,
            observers=observers,
            timing=timing,
            pacer=pacer,
        )
    )


def run(store: Store, record: CampaignRecord, sb: Any, **options: Any) -> Report:
    """Run an engine on the campaign against the sandbox ``sb`` and return its report."""
    route = options.pop("route", None) or Route(host=sb.host, port=sb.port, timeout=10.0)
    return run_engine(store, record, route, **options)


def assert_no_loss_no_duplicates(
    store: Store, record: CampaignRecord, sb: Any, report: Report
) -> None:
    """Every sent message was received; duplicates only among messages reported uncertain."""
    received = collections.Counter(m.message_id for m in sb.messages)
    sent = store.messages(record.id, state=MessageState.SENT, limit=1_000_000)
    for m in sent:
        assert received[message_id(m.email)] >= 1, f"{m.email} marked sent but not received"
    uncertain = {
        message_id(m.email) for m in store.messages(record.id, limit=1_000_000) if m.ever_uncertain
    }
    duplicated = {mid for mid, n in received.items() if n > 1}
    assert duplicated <= uncertain, f"duplicates not reported uncertain: {duplicated - uncertain}"
    assert report.uncertain == len(uncertain)


@pytest.mark.slow
@pytest.mark.parametrize("profile", ["strict", "exchange-like", "rate-limited"])
def test_thousand_messages_without_limits_given(store: Store, sandbox: Any, profile: str) -> None:
    """1,000 messages, no limits given: all sent, none lost or duplicated, ≤1 throttle per 100,
    and the learned limits match what the profile enforces."""
    sb = sandbox(profile)
    record = campaign(store, 1000)
    report = run(store, record, sb)
    assert report.sent == 1000, report
    assert report.failed == 0 and report.queued == 0 and report.deferred == 0
    assert report.state == CampaignState.DONE.value
    assert_no_loss_no_duplicates(store, record, sb, report)
    assert len({m.message_id for m in sb.messages}) == 1000
    throttles = sum(n for code, n in sb.counters.replies.items() if 400 <= code < 500)
    # <= 1 per 100. rate-limited (connections could offer ~5x its rate) measured 4-6 per 1,000
    # once the rate is timed between throttles and nothing new is booked after one.
    allowed = 10
    assert throttles <= allowed, sb.counters
    assert report.throttles <= allowed
    limit = sb.profile.max_connections
    if limit is not None:
        assert sb.counters.peak_concurrent <= limit + 1
        assert report.limits["connections"] is not None and report.limits["connections"] <= limit


def test_unknown_users_fail_with_the_servers_reason(store: Store, sandbox: Any) -> None:
    """`nouser…` recipients fail with 550 and the server's text; the others are sent."""
    sb = sandbox("unlimited")
    record = campaign(store, 30, nouser=3)
    report = run(store, record, sb)
    assert (report.sent, report.failed) == (27, 3)
    assert all(f.code == 550 for f in report.failures)
    assert all("5.1.1" in f.reason for f in report.failures)
    assert report.exit_code == 0


@pytest.mark.slow
def test_flaky_every_deliverable_message_sent_uncertain_counted(store: Store, sandbox: Any) -> None:
    """On `flaky` (faults, drops after DATA, greylisting) every message is delivered and the
    ambiguous ones are reported uncertain; duplicates only among those."""
    sb = sandbox("flaky", greylist_seconds=0.5)
    record = campaign(store, 300)
    policy = RetryPolicy(max_attempts=12, base_seconds=0.2, cap_seconds=2.0, max_age_seconds=120.0)
    report = run(store, record, sb, retry=policy)
    assert report.sent == 300, report
    assert report.failed == 0
    assert report.uncertain >= 1  # the profile drops some connections after DATA
    assert_no_loss_no_duplicates(store, record, sb, report)
    assert {message_id(f"worker{i}@example.com") for i in range(300)} <= {
        m.message_id for m in sb.messages
    }


@pytest.mark.slow
def test_quota_waits_without_failing_then_resumes(store: Store, sandbox: Any) -> None:
    """`quota`: the campaign goes `waiting` with a reason, nothing fails, and it finishes once
    the window resets."""
    sb = sandbox("quota", quota=40, quota_window_seconds=3.0)
    record = campaign(store, 100)
    states: list[tuple[str, str | None]] = []
    route = Route(host=sb.host, port=sb.port, timeout=10.0)
    report = run_engine(
        store,
        record,
        route,
        ceilings=Limits(quota_window_seconds=3.0),
        observers=[
            lambda e: (
                states.append((e.data["state"], e.data["reason"])) if e.kind == "state" else None
            )
        ],
    )
    assert report.sent == 100 and report.failed == 0, report
    waiting = [reason for state, reason in states if state == "waiting"]
    assert waiting and "quota" in (waiting[0] or "")
    assert report.state == "done"
    assert report.limits["quota"] == 40


@pytest.mark.slow
def test_quota_with_unknown_window_probes_learns_it_and_finishes(
    store: Store, sandbox: Any
) -> None:
    """`quota`, window not configured: the campaign goes `waiting`, probes with one message
    after a short wait (doubling), learns the quota and an upper bound of the 3 s window, and
    finishes in bounded time with nothing failed."""
    sb = sandbox("quota", quota=40, quota_window_seconds=3.0)
    record = campaign(store, 100)
    states: list[str] = []
    route = Route(host=sb.host, port=sb.port, timeout=10.0)
    started = time.monotonic()
    report = run_engine(
        store,
        record,
        route,
        pacer=PacerConfig(quota_wait_seconds=1.0),
        observers=[lambda e: states.append(e.data["state"]) if e.kind == "state" else None],
    )
    assert report.sent == 100 and report.failed == 0, report
    assert report.state == "done" and "waiting" in states
    assert time.monotonic() - started < 30.0  # 3 windows of 3 s, probes of 1, 2, 4 s at most
    assert report.limits["quota"] == 40
    window = report.limits["quota_window_seconds"]
    assert window is not None and 3.0 <= window <= 3.0 + 4.0 + 1.0
    refusals = sb.counters.replies.get(550, 0)
    assert refusals <= 8, sb.counters  # in flight at the first, then one per probe


def test_unreachable_server_pauses_without_failing(store: Store, unused_port: int) -> None:
    """Nothing listens: a clear route error, the campaign paused, no message failed."""
    record = campaign(store, 5)
    route = Route(host="127.0.0.1", port=unused_port, timeout=2.0)
    report = run_engine(store, record, route, max_connect_failures=2)
    assert report.state == "paused"
    assert report.route_error and "cannot connect" in report.route_error
    assert report.failed == 0 and report.queued == 5
    assert report.exit_code == 4


def test_wrong_password_pauses_with_the_servers_reason(store: Store, sandbox: Any) -> None:
    """AUTH refused: the campaign pauses with the server's reply; nothing failed."""
    sb = sandbox("auth-tls")
    record = campaign(store, 5)
    route = tls_route(sb, password="wrong")
    report = run(store, record, sb, route=route)
    assert report.state == "paused"
    assert report.route_error and "535" in report.route_error
    assert report.failed == 0 and report.sent == 0


def test_tls_certificate_verified_by_default(store: Store, sandbox: Any) -> None:
    """The sandbox's self-signed certificate is refused unless trusted: TLS failure pauses."""
    sb = sandbox("auth-tls")
    record = campaign(store, 3)
    route = tls_route(sb, trusted=False)
    report = run(store, record, sb, route=route)
    assert report.state == "paused" and report.sent == 0
    assert report.route_error and "certificate" in report.route_error.lower()


def test_auth_tls_delivers_with_trusted_certificate(store: Store, sandbox: Any) -> None:
    """STARTTLS + AUTH with the sandbox's certificate trusted: everything is sent."""
    sb = sandbox("auth-tls")
    record = campaign(store, 20)
    route = tls_route(sb)
    report = run(store, record, sb, route=route)
    assert report.sent == 20 and report.state == "done"


def test_learned_limits_persist_for_the_next_campaign(store: Store, sandbox: Any) -> None:
    """A second campaign on the same route starts from the learned connection limit."""
    sb = sandbox("strict")
    route = Route(host=sb.host, port=sb.port, timeout=10.0)
    run(store, campaign(store, 120, key="first"), sb, route=route)
    learned = store.load_route_limits(route.key)
    assert learned is not None and learned["connections"] == 2
    before = sum(n for code, n in sb.counters.replies.items() if code == 421)
    run(store, campaign(store, 60, key="second"), sb, route=route)
    after = sum(n for code, n in sb.counters.replies.items() if code == 421)
    assert after - before <= 1
