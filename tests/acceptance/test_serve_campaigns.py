"""``mailpacer serve`` as a user runs it: a real uvicorn on 127.0.0.1, the strict sandbox, a
real SQLite file. Create → live events → done; pause / resume; cancel mid-run; retry failed;
SIGKILL and restart."""

from __future__ import annotations

import collections
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from service_helpers import (
    TEMPLATE,
    Served,
    create,
    recipients,
    sse_events,
    wait_for,
    write_config,
)

from mailpacer.store import open_store

pytestmark = pytest.mark.slow


@pytest.fixture
def serve(tmp_path: Path, sandbox: Any) -> Iterator[Callable[..., tuple[Served, Any]]]:
    """Start ``serve`` on a new sandbox (profile and overrides as ``sandbox``), with the
    ``hello`` template created; every server started is stopped at teardown."""
    started: list[Served] = []

    def start(profile: str = "strict", *args: str, **overrides: Any) -> tuple[Served, Any]:
        sb = sandbox(profile, **overrides)
        served = Served(tmp_path, write_config(tmp_path, sb), *args).start()
        started.append(served)
        with served.client() as client:
            assert client.post("/api/templates", json=TEMPLATE).status_code == 201
        return served, sb

    yield start
    for served in started:
        served.stop()


def test_create_then_live_events_then_done(serve: Any) -> None:
    """A campaign created paused, followed over SSE and resumed: the stream says snapshot,
    started, progress, one outcome per message and finished; every message is sent once."""
    served, sb = serve()
    with served.client() as client:
        made = create(client, recipients(40), start=False)
        assert made["state"] == "paused" and made["total"] == 40
        seen: collections.Counter[str] = collections.Counter()
        with client.stream("GET", f"/api/campaigns/{made['id']}/events") as stream:
            events = sse_events(stream, limit=1000)
            kind, snapshot = next(events)
            assert kind == "snapshot" and snapshot["id"] == made["id"]
            assert client.post(f"/api/campaigns/{made['id']}/resume").json()["state"] == "queued"
            for kind, data in events:
                seen[kind] += 1
                if kind == "finished":
                    assert data["state"] == "done" and data["sent"] == 40
                    break
        assert seen["started"] == 1 and seen["progress"] >= 1 and seen["outcome"] == 40
        final = client.get(f"/api/campaigns/{made['id']}").json()
    assert final["state"] == "done" and final["counts"]["sent"] == 40 and final["progress"] == 1
    assert sorted(collections.Counter(m.message_id for m in sb.messages).values()) == [1] * 40


def test_pause_then_resume(serve: Any) -> None:
    """Pausing mid-run answers once in-flight messages are recorded: the sandbox receives
    nothing more while it is paused; resumed, the campaign ends done, each message once."""
    served, sb = serve("strict", data_latency=0.05)
    with served.client() as client:
        made = create(client, recipients(150))
        wait_for(client, made["id"], lambda c: c["counts"]["sent"] >= 10)
        paused = client.post(f"/api/campaigns/{made['id']}/pause").json()
        assert paused["state"] == "paused" and paused["counts"]["sending"] == 0
        received = len(sb.messages)
        time.sleep(1.0)  # would be long enough for ~40 more messages
        assert len(sb.messages) == received
        assert 10 <= paused["counts"]["sent"] < 150 and paused["waiting"] == "paused by user"
        assert client.post(f"/api/campaigns/{made['id']}/resume").json()["state"] == "queued"
        done = wait_for(client, made["id"], lambda c: c["state"] == "done")
    assert done["counts"]["sent"] == 150
    assert max(collections.Counter(m.message_id for m in sb.messages).values()) == 1


def test_cancel_mid_run_sends_nothing_after_the_answer(serve: Any) -> None:
    """Cancel answers when no message is on the wire: the sandbox receives nothing after the
    answer, every unsent message is ``cancelled``, none is left queued or sending."""
    served, sb = serve("strict", data_latency=0.05)
    with served.client() as client:
        made = create(client, recipients(200))
        wait_for(client, made["id"], lambda c: c["counts"]["sent"] >= 10)
        answer = client.post(f"/api/campaigns/{made['id']}/cancel")
        received = len(sb.messages)
        cancelled = answer.json()
        time.sleep(1.0)
        assert len(sb.messages) == received
        again = client.get(f"/api/campaigns/{made['id']}").json()
    counts = again["counts"]
    assert cancelled["state"] == "cancelled" == again["state"]
    assert counts["queued"] == counts["sending"] == counts["deferred"] == 0
    assert counts["cancelled"] > 0 and counts["sent"] + counts["cancelled"] == 200
    assert counts["sent"] == received


def test_retry_failed_sends_them_again(serve: Any) -> None:
    """Five recipients the server refuses fail with its reply; retry queues them again (the
    campaign reopens) and they are offered to the server a second time."""
    served, sb = serve()
    with served.client() as client:
        made = create(client, recipients(30, nouser=5))
        done = wait_for(client, made["id"], lambda c: c["state"] == "done")
        assert done["counts"]["failed"] == 5 and done["counts"]["sent"] == 25
        page = client.get(f"/api/campaigns/{made['id']}/messages?state=failed&limit=2").json()
        assert len(page["items"]) == 2 and page["next_offset"] == 2
        assert page["items"][0]["last_code"] == 550 and page["items"][0]["last_text"]
        refused = sb.counters.count(550)
        retried = client.post(f"/api/campaigns/{made['id']}/retry", json={"failed": True}).json()
        assert retried["queued"] == 5 and retried["campaign"]["state"] == "queued"
        wait_for(client, made["id"], lambda c: c["state"] == "done")
    assert sb.counters.count(550) == refused + 5
    assert len(sb.messages) == 25


def test_sigkill_mid_campaign_then_restart_continues_without_loss(
    serve: Any, tmp_path: Path
) -> None:
    """SIGKILL the service mid-campaign and start it again on the same database: the campaign
    continues to done, every message is received, duplicates only among messages reported
    uncertain."""
    served, sb = serve("strict", data_latency=0.03)
    with served.client() as client:
        made = create(client, recipients(300))
        wait_for(client, made["id"], lambda c: c["counts"]["sent"] >= 40)
    served.kill()
    served.start()
    with served.client() as client:
        done = wait_for(client, made["id"], lambda c: c["state"] == "done", timeout=90)
    assert done["counts"]["sent"] == 300
    store = open_store(served.db)
    try:
        messages = store.messages(made["id"], limit=1000)
    finally:
        store.close()
    got = collections.Counter(r for m in sb.messages for r in m.rcpt_tos)
    assert set(got) == {m.email for m in messages}  # 0 lost
    uncertain = {m.email for m in messages if m.ever_uncertain}
    assert {e for e, n in got.items() if n > 1} <= uncertain
