"""The engine when the world changes under it: a co-worker dies holding leases, the server goes
away mid-campaign, or a message is refused for itself in words that read like a limit."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest
from test_engine_sandbox import campaign, run, run_engine

from mailpacer.core.route import Route
from mailpacer.core.states import CampaignState, MessageState
from mailpacer.store import Store, open_store


@pytest.fixture
def store(tmp_path: Path) -> Any:
    """A real SQLite store in a temporary file."""
    s = open_store(tmp_path / "mailpacer.db")
    yield s
    s.close()


def test_a_dead_co_workers_messages_are_recovered_while_sending(store: Store, sandbox: Any) -> None:
    """Another machine's worker claimed three messages and died; once its lease runs out the
    running engine recovers them (no restart needed), sends them and finishes."""
    sb = sandbox("unlimited")
    record = campaign(store, 20)
    store.set_campaign_state(record.id, CampaignState.RUNNING)
    dead = store.claim(
        record.id, worker="otherhost:123:gone", limit=3, lease_seconds=1.0, now=time.time()
    )
    assert len(dead) == 3
    report = run(store, record, sb, lease_seconds=1.5)
    assert (report.state, report.sent) == ("done", 20), report
    assert store.stats(record.id).counts[MessageState.SENDING] == 0


def test_server_gone_mid_campaign_pauses_with_the_reason(store: Store, sandbox: Any) -> None:
    """The server stops after 20 messages: connect failures are not taken for a connection
    limit (nothing is open), the route fails, the campaign pauses, nothing is marked failed."""
    sb = sandbox("unlimited", data_latency=0.05)
    record = campaign(store, 300)

    def stop_server() -> None:
        deadline = time.monotonic() + 30
        while len(sb.messages) < 20 and time.monotonic() < deadline:
            time.sleep(0.01)
        sb.close()

    threading.Thread(target=stop_server, daemon=True).start()
    route = Route(host=sb.host, port=sb.port, timeout=3.0)
    report = run_engine(store, record, route)
    assert report.state == "paused"
    assert report.route_error and "cannot connect" in report.route_error
    assert report.failed == 0 and report.sent >= 20


def test_a_message_refused_for_itself_in_limit_words_fails_instead_of_looping(
    store: Store, sandbox: Any
) -> None:
    """One recipient always gets "550 … unusual rate … blocked" after DATA while the others go
    through: it is requeued as a throttle a few times, then failed with the server's reason;
    the campaign finishes."""
    sb = sandbox("unlimited")
    record = campaign(store, 60)
    real = sb.handler.handle_DATA

    async def handle_data(server: Any, session: Any, envelope: Any) -> str:
        if "worker3@" in envelope.rcpt_tos[0]:
            return "550 5.7.1 unusual rate of unsolicited mail from your IP; message blocked"
        return str(await real(server, session, envelope))

    sb.handler.handle_DATA = handle_data
    report = run(store, record, sb)
    assert (report.state, report.sent, report.failed) == ("done", 59, 1), report
    assert "unusual rate" in report.failures[0].reason
