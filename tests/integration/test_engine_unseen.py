"""The engine against servers that word and signal their limits unlike any rule we ship.

The sandbox's reply templates are changed to wording none of the default rules know, so only
what the route has shown (``mailpacer.core.context``) can tell a limit from a refusal. Told nothing,
every message must still be delivered, none failed, and the limit learned.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from test_engine_sandbox import assert_no_loss_no_duplicates, campaign, run

from mailpacer.store import Store, open_store


@pytest.fixture
def store(tmp_path: Path) -> Any:
    """A real SQLite store in a temporary file."""
    s = open_store(tmp_path / "mailpacer.db")
    yield s
    s.close()


def throttle_replies(sb: Any) -> int:
    """Replies of 400 and above that the sandbox sent (the recipients here all exist)."""
    return sum(n for code, n in sb.counters.replies.items() if code >= 400)


def test_greeting_refused_with_an_unknown_5xx(store: Store, sandbox: Any) -> None:
    """`554 … not accepting connections` at the greeting while two connections work: a
    connection limit, not a dead server — learned as 2, nothing failed, the campaign done."""
    sb = sandbox("strict", connection_reply="554 mx.example.net ESMTP not accepting connections")
    record = campaign(store, 300)
    report = run(store, record, sb)
    assert (report.sent, report.failed, report.state) == (300, 0, "done"), report
    assert report.limits["connections"] == 2
    assert throttle_replies(sb) <= 3
    assert_no_loss_no_duplicates(store, record, sb, report)


def test_rate_limit_answered_with_an_unknown_5xx(store: Store, sandbox: Any) -> None:
    """A token bucket that answers `550 5.7.1 Sender not accepted at this moment` at MAIL: the
    sender was accepted before, so it is a limit; every message is delivered, none failed."""
    sb = sandbox("rate-limited", rate_reply="550 5.7.1 Sender not accepted at this moment")
    record = campaign(store, 400)
    report = run(store, record, sb)
    assert (report.sent, report.failed, report.state) == (400, 0, "done"), report
    assert report.route_error is None
    assert throttle_replies(sb) <= 20
    assert_no_loss_no_duplicates(store, record, sb, report)


def test_per_connection_cap_with_a_bare_421(store: Store, sandbox: Any) -> None:
    """Sessions closed with a bare `421 closing` after 20 messages each: the cap is learned from
    the repeated count and connections are retired before it."""
    sb = sandbox("exchange-like", per_connection_reply="421 {host} closing")
    record = campaign(store, 300)
    report = run(store, record, sb)
    assert (report.sent, report.failed, report.state) == (300, 0, "done"), report
    assert report.limits["messages_per_connection"] == 20
    assert throttle_replies(sb) <= 6
    assert_no_loss_no_duplicates(store, record, sb, report)


# profile → limits the engine must learn (None: not checked)
SERVERS = {
    "ses-like": {"connections": 4, "messages_per_connection": 50},
    "o365-like": {"connections": 3},
    "pipelining": {"connections": 3, "messages_per_connection": 25},
    "firewall": {"connections": 3},
    "fivexx-rate": {"connections": None},
}


@pytest.mark.slow
@pytest.mark.parametrize("profile", sorted(SERVERS))
def test_servers_unlike_ours_thousand_messages(store: Store, sandbox: Any, profile: str) -> None:
    """Servers with other wording and signalling (SES's 454 and per-session cap, Microsoft's 432
    greeting, PIPELINING + LIMITS with a silent close, a firewall that closes the socket, a rate
    limit said with a 5xx): 1,000 messages, told nothing — all sent, none failed or lost, at most
    one reply of 400 or above per 100 messages, the limits learned, and PIPELINING used where it
    is offered."""
    sb = sandbox(profile)
    record = campaign(store, 1000)
    report = run(store, record, sb)
    assert (report.sent, report.failed, report.state) == (1000, 0, "done"), report
    assert_no_loss_no_duplicates(store, record, sb, report)
    assert throttle_replies(sb) <= 10, sb.counters.replies
    for key, value in SERVERS[profile].items():
        if value is not None:
            assert report.limits[key] == value, report.limits
    assert sb.counters.peak_concurrent <= (sb.profile.max_connections or 1000) + 1
    if sb.profile.pipelining:  # MAIL, RCPT and DATA in one write: two round trips saved each
        assert sb.counters.pipelined >= 2 * sb.counters.accepted
    else:
        assert sb.counters.pipelined == 0
