"""The built-in profiles that word and signal their limits unlike the first ones (SES, Microsoft
365, a pipelining MTA, a firewall, a 5xx rate limit) against the real client, told nothing: every
message delivered once, the connection limit learned, a 1,000-message campaign in about the time
the profile's capacity says."""

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


@pytest.mark.slow
@pytest.mark.parametrize(
    "profile", ["ses-like", "o365-like", "pipelining", "firewall", "fivexx-rate"]
)
def test_thousand_messages_on_the_new_profiles(store: Store, sandbox: Any, profile: str) -> None:
    """1,000 messages: all sent, none failed, lost or duplicated; connections learned at the
    profile's limit; few refusals; pipelined where PIPELINING is offered (two round trips saved
    per transaction); done in at most twice the time the stated capacity allows."""
    sb = sandbox(profile)
    record = campaign(store, 1000)
    report = run(store, record, sb)
    assert (report.sent, report.failed, report.state) == (1000, 0, "done"), report
    assert_no_loss_no_duplicates(store, record, sb, report)
    assert report.limits["connections"] == sb.profile.max_connections
    refusals = sum(n for code, n in sb.counters.replies.items() if code >= 400)
    assert refusals <= 20, sb.counters.refusals
    transactions = sb.counters.accepted + refusals
    if sb.profile.pipelining:
        assert sb.counters.pipelined >= 2 * sb.counters.accepted
        assert sb.counters.pipelined <= 2 * transactions
    else:
        assert sb.counters.pipelined == 0
    assert report.seconds <= 2 * 1000 / sb.profile.capacity, report
