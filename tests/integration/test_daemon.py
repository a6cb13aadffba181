"""The loop that runs every due campaign (``delivery.daemon``), on real SQLite files and the
strict sandbox: side by side on one route, continued after a crash, re-picked after a resume,
shared by two processes' engines without a duplicate."""

from __future__ import annotations

import asyncio
import collections
import shutil
import socket
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from test_engine_sandbox import SENDER, campaign, message_id, render

from mailpacer.config.campaign import CampaignSettings
from mailpacer.core.events import Event, EventKind
from mailpacer.core.route import Route
from mailpacer.core.states import CampaignState, MessageState
from mailpacer.delivery import runner
from mailpacer.delivery.daemon import Daemon, run_due
from mailpacer.delivery.engine import Engine
from mailpacer.delivery.scheduler import Timing
from mailpacer.store import CampaignRecord, Store, open_store

C = CampaignState
M = MessageState
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "worker-qr"
TIMING = Timing(idle_close_seconds=0.5, poll_interval=0.1)


def settings_for(sb: Any, priority: int = 0) -> CampaignSettings:
    """Settings that send to the sandbox ``sb`` (recipients and template are not read)."""
    return CampaignSettings(
        recipients=Path("recipients.csv"),
        template=Path("templates"),
        route=Route(host=sb.host, port=sb.port, timeout=10.0),
        sender=SENDER,
        priority=priority,
    )


def fixed(sb: Any) -> Callable[[CampaignRecord], tuple[CampaignSettings, Any]]:
    """A ``runnable`` that sends every campaign to ``sb`` with the test renderer."""
    return lambda record: (settings_for(sb), render)


async def until(condition: Callable[[], bool], limit: float = 60.0) -> None:
    """Wait until ``condition()`` holds, checked every 20 ms; fail after ``limit`` seconds."""
    async with asyncio.timeout(limit):
        while not condition():  # noqa: ASYNC110 - the condition is in the store, not an Event
            await asyncio.sleep(0.02)


def finished(store: Store, *ids: int) -> Callable[[], bool]:
    """True once every campaign in ``ids`` is done."""
    return lambda: all(store.get_campaign(i).state is C.DONE for i in ids)


async def with_daemon(
    store: Store, sb: Any, body: Callable[[Daemon], Awaitable[None]], **options: Any
) -> None:
    """Run a daemon (its own engine) while ``body`` runs, then stop it (bounded)."""
    engine = Engine(store, timing=TIMING)
    daemon = Daemon(store, engine, poll=0.1, runnable=options.pop("runnable", fixed(sb)))
    stop = asyncio.Event()
    task = asyncio.create_task(daemon.run(stop))
    try:
        await body(daemon)
    finally:
        stop.set()
        async with asyncio.timeout(30):
            await task
        await engine.close()


def test_two_queued_campaigns_run_side_by_side_to_done(tmp_path: Path, sandbox: Any) -> None:
    """Two queued campaigns on one strict route are both sent to the end by one daemon; the
    sandbox never sees more than its 2 connections at once."""
    sb = sandbox("strict")
    store = open_store(tmp_path / "m.db")
    a = campaign(store, 60, key="a")
    b = campaign(store, 60, key="b")

    async def body(daemon: Daemon) -> None:
        await until(finished(store, a.id, b.id))

    asyncio.run(with_daemon(store, sb, body))
    assert store.stats(a.id).counts[M.SENT] == 60
    assert store.stats(b.id).counts[M.SENT] == 60
    assert sb.counters.peak_concurrent <= 2
    store.close()


def test_a_campaign_left_running_by_a_dead_process_is_continued(
    tmp_path: Path, sandbox: Any
) -> None:
    """A campaign ``running`` with messages claimed (some started) by a process that no longer
    exists is picked up: every message ends sent, none lost, duplicates only among those
    reported uncertain."""
    sb = sandbox("strict")
    store = open_store(tmp_path / "m.db")
    record = campaign(store, 40)
    store.set_campaign_state(record.id, C.RUNNING)
    dead = f"{socket.gethostname()}:99999999:dead"  # this host, a pid that does not exist
    claimed = store.claim(record.id, worker=dead, limit=10, lease_seconds=600, now=time.time())
    store.mark_started(dead, [m.id for m in claimed[:4]], time.time())

    async def body(daemon: Daemon) -> None:
        await until(finished(store, record.id))

    asyncio.run(with_daemon(store, sb, body))
    stats = store.stats(record.id)
    assert stats.counts[M.SENT] == 40
    assert stats.uncertain_ever == 4
    received = collections.Counter(m.message_id for m in sb.messages)
    every = store.messages(record.id, limit=1000)
    assert all(received[message_id(m.email)] == 1 for m in every)
    store.close()


def test_a_paused_campaign_waits_and_a_resumed_one_is_picked_again(
    tmp_path: Path, sandbox: Any
) -> None:
    """A paused campaign is not run; set ``queued`` again (a resume) and woken, it is run to
    the end by the same daemon."""
    sb = sandbox("strict")
    store = open_store(tmp_path / "m.db")
    record = campaign(store, 30)
    store.set_campaign_state(record.id, C.PAUSED, "paused by user")

    async def body(daemon: Daemon) -> None:
        await asyncio.sleep(0.3)  # a few scans
        assert not daemon.tasks
        assert store.stats(record.id).counts[M.QUEUED] == 30
        store.set_campaign_state(record.id, C.QUEUED, None, expected=(C.PAUSED,))
        daemon.wake()
        await until(finished(store, record.id))

    asyncio.run(with_daemon(store, sb, body))
    assert store.stats(record.id).counts[M.SENT] == 30
    store.close()


def test_a_campaign_that_cannot_be_run_is_paused_with_the_reason(
    tmp_path: Path, sandbox: Any
) -> None:
    """A campaign whose template folder is gone is paused with a reason naming it, once (not
    restarted in a loop), and the daemon carries on with the others."""
    sb = sandbox("strict")
    store = open_store(tmp_path / "m.db")
    settings = CampaignSettings(
        recipients=tmp_path / "r.csv",
        template=tmp_path / "no-such-template",
        route=Route(host=sb.host, port=sb.port),
        sender=SENDER,
    )
    broken, _ = store.get_or_create_campaign(
        "broken", name="broken", route_key="x", options=settings.to_stored()
    )
    ok = campaign(store, 10, key="ok")

    def pick(record: CampaignRecord) -> tuple[CampaignSettings, Any]:
        from mailpacer.delivery.daemon import runnable

        return runnable(record) if record.key == "broken" else (settings_for(sb), render)

    async def body(daemon: Daemon) -> None:
        await until(lambda: store.get_campaign(broken.id).state is C.PAUSED)
        await until(finished(store, ok.id))

    asyncio.run(with_daemon(store, sb, body, runnable=pick))
    paused = store.get_campaign(broken.id)
    assert paused.reason is not None and "cannot run" in paused.reason
    assert "no-such-template" in paused.reason
    store.close()


#: a second process: ``run_due`` on the database in argv[1] until campaign argv[2] is done
WORKER = """
import asyncio, sys
from mailpacer.delivery.daemon import run_due
from mailpacer.delivery.engine import Engine
from mailpacer.store import open_store

async def main():
    store = open_store(sys.argv[1])
    engine = Engine(store)
    stop = asyncio.Event()
    loop = asyncio.create_task(run_due(store, engine, stop=stop, poll=0.05))
    async with asyncio.timeout(60):
        while store.get_campaign(int(sys.argv[2])).state.value != "done":
            await asyncio.sleep(0.05)
    stop.set()
    await loop
    await engine.close()
    store.close()

asyncio.run(main())
"""


def test_two_processes_share_one_campaign_without_duplicates(tmp_path: Path, sandbox: Any) -> None:
    """``run_due`` in this process and in a second one, on one SQLite file, run the same
    campaign (stored settings, the worker-qr template) at once; claims are atomic, so both
    send some and each message is received exactly once."""
    sb = sandbox("unlimited", data_latency=0.02)
    db = tmp_path / "m.db"
    folder = tmp_path / "worker-qr"
    shutil.copytree(EXAMPLE, folder)
    csv = folder / "workers.csv"
    lines = csv.read_text(encoding="utf-8-sig").splitlines(keepends=True)
    csv.write_text("".join(lines[:151]), encoding="utf-8")
    settings = CampaignSettings(
        recipients=folder / "workers.csv",
        template=folder / "templates",
        route=Route(host=sb.host, port=sb.port),
        sender=SENDER,
    )
    store = open_store(db)
    record = runner.prepare(store, settings, runner.check(settings)).campaign
    ours = collections.Counter[str]()

    def count(event: Event) -> None:
        if event.kind is EventKind.OUTCOME:
            ours[event.data["verdict"]] += 1

    async def main() -> None:
        worker = await asyncio.create_subprocess_exec(
            sys.executable, "-c", WORKER, str(db), str(record.id)
        )
        # ours joins once the other process is sending
        await until(lambda: store.stats(record.id).counts[M.SENT] > 0)
        stop = asyncio.Event()
        engine = Engine(store, timing=TIMING, observers=[count])
        loop = asyncio.create_task(run_due(store, engine, stop=stop, poll=0.05))
        try:
            await until(finished(store, record.id))
        finally:
            stop.set()
            async with asyncio.timeout(60):
                await loop
                assert await worker.wait() == 0
            await engine.close()

    asyncio.run(main())
    stats = store.stats(record.id)
    assert stats.counts[M.SENT] + stats.counts[M.FAILED] == 150, stats
    received = collections.Counter(m.message_id for m in sb.messages)
    assert len(received) == stats.counts[M.SENT] and max(received.values()) == 1
    assert 0 < ours["accepted"] < stats.counts[M.SENT]  # the other process sent the rest
    store.close()


def test_run_due_stops_when_told(tmp_path: Path) -> None:
    """``run_due`` on a store with nothing due returns soon after ``stop`` is set."""
    store = open_store(tmp_path / "m.db")

    async def main() -> None:
        stop = asyncio.Event()
        engine = Engine(store, timing=TIMING)
        task = asyncio.create_task(run_due(store, engine, stop=stop, poll=0.05))
        await asyncio.sleep(0.2)
        assert not task.done()
        stop.set()
        async with asyncio.timeout(10):
            await task
        await engine.close()

    asyncio.run(main())
    store.close()
