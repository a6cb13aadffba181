"""The engine when the world changes under it: a co-worker dies holding leases, the server goes
away mid-campaign, or a message is refused for itself in words that read like a limit."""

from __future__ import annotations

import collections
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
    """The server stops after 20 messages and stays away longer than the outage wait (1 s
    here): connect failures are not taken for a connection limit, the route fails, the
    campaign pauses, nothing is marked failed."""
    sb = sandbox("unlimited", data_latency=0.05)
    record = campaign(store, 300)

    def stop_server() -> None:
        deadline = time.monotonic() + 30
        while len(sb.messages) < 20 and time.monotonic() < deadline:
            time.sleep(0.01)
        sb.close()

    threading.Thread(target=stop_server, daemon=True).start()
    route = Route(host=sb.host, port=sb.port, timeout=3.0)
    report = run_engine(store, record, route, outage_seconds=1.0)
    assert report.state == "paused"
    assert report.route_error and "cannot connect" in report.route_error
    assert report.failed == 0 and report.sent >= 20


@pytest.mark.slow
def test_an_outage_is_waited_out_and_teaches_nothing(store: Store, sandbox: Any) -> None:
    """Issue 15.9: the `strict` server stops 2 s into a 400-message campaign and comes back on
    the same port 30 s later. The campaign finishes by itself: nothing lost or failed,
    duplicates only among uncertain messages, and the learned limit is the server's 2
    connections (as without the outage), not "1 connection" learned from the silence."""
    first = sandbox("strict", data_latency=0.02)
    port = first.port
    record = campaign(store, 400)
    later: list[Any] = []

    def outage() -> None:
        deadline = time.monotonic() + 30
        while len(first.messages) < 60 and time.monotonic() < deadline:
            time.sleep(0.01)
        first.close()
        time.sleep(30)
        later.append(sandbox("strict", data_latency=0.02, port=port))

    thread = threading.Thread(target=outage, daemon=True)
    thread.start()
    route = Route(host=first.host, port=port, timeout=3.0)
    report = run_engine(store, record, route)
    thread.join()
    assert (report.state, report.sent, report.failed) == ("done", 400, 0), report
    received = collections.Counter(m.message_id for sb in (first, *later) for m in sb.messages)
    assert len(received) == 400
    duplicated = sum(n - 1 for n in received.values())
    assert duplicated <= report.uncertain
    assert report.limits["connections"] == 2, report.limits


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
