"""AsyncStore: every Store method as a coroutine, run in one thread of the store's own, so a store
that waits (here: a SQLite write lock another connection holds) never blocks the event loop.
Real stores (memory, SQLite files), real threads; no mocks."""

from __future__ import annotations

import asyncio
import inspect
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from mailpacer.core.errors import NotFound, StoreError
from mailpacer.core.states import CampaignState, MessageState, StateConflict
from mailpacer.store import (
    AsyncStore,
    MemoryStore,
    NewMessage,
    Outcome,
    SqliteStore,
    Store,
    open_store,
)

C = CampaignState
PROTOCOL = [name for name in dir(Store) if not name.startswith("_")]


def test_every_store_method_is_a_coroutine_with_the_same_signature() -> None:
    """AsyncStore has each public Store method, as ``async def``, with the same parameters,
    defaults and annotations (so nothing drifts when the protocol grows)."""
    assert len(PROTOCOL) >= 20
    for name in PROTOCOL:
        mine = getattr(AsyncStore, name)
        assert inspect.iscoroutinefunction(mine), name
        assert inspect.signature(mine) == inspect.signature(getattr(Store, name)), name


def test_open_store_memory_is_a_new_memory_store() -> None:
    """``memory:`` opens a new, empty in-memory store each time."""
    first, second = open_store("memory:"), open_store("MEMORY://")
    assert isinstance(first, MemoryStore) and isinstance(second, MemoryStore)
    first.get_or_create_campaign("k", name="n", route_key="r", options={})
    assert repr(first) == "<MemoryStore campaigns=1 messages=0>"
    assert second.list_campaigns() == []
    first.close()
    assert repr(first) == "<MemoryStore campaigns=1 messages=0 closed>"


def test_the_store_is_opened_and_used_in_one_thread_of_its_own() -> None:
    """The factory runs in the store's thread, not the loop's; every call (and a callback the
    store makes, recover's is_alive) runs there too; closing ends that thread."""
    seen: dict[str, threading.Thread] = {}

    def factory() -> Store:
        seen["open"] = threading.current_thread()
        return open_store("memory:")

    def is_alive(worker: str) -> bool:
        seen["callback"] = threading.current_thread()
        return False

    async def main() -> None:
        store = AsyncStore(factory)
        record, _ = await store.get_or_create_campaign("k", name="n", route_key="r", options={})
        await store.add_messages(record.id, [NewMessage(1, "a@x.org", {})])
        await store.set_campaign_state(record.id, C.RUNNING)
        (m,) = await store.claim(record.id, worker="gone", limit=5, lease_seconds=60, now=1.0)
        await store.mark_started("gone", [m.id], 2.0)
        recovered = await store.recover(record.id, now=3.0, resend=True, is_alive=is_alive)
        assert recovered.uncertain == [m.id]
        await store.close()
        assert repr(store) == "<AsyncStore closed>"

    asyncio.run(main())
    assert seen["open"] is seen["callback"] is not threading.main_thread()
    seen["open"].join(timeout=30)
    assert not seen["open"].is_alive()


def test_results_and_exceptions_cross_the_thread() -> None:
    """Records come back as the store made them; the store's exceptions are raised in the
    coroutine with their type and fields; calls made at once run one at a time, in order."""

    async def main() -> None:
        async with AsyncStore.open("memory:") as store:
            assert repr(store) == "<AsyncStore <MemoryStore campaigns=0 messages=0>>"
            record, created = await store.get_or_create_campaign(
                "k", name="n", route_key="r", options={"a": [1, 2]}
            )
            assert created and (await store.get_campaign("k")) == record
            with pytest.raises(NotFound, match="no campaign 42 in memory"):
                await store.get_campaign(42)
            with pytest.raises(StateConflict) as caught:
                await store.set_campaign_state(record.id, C.PAUSED, expected={C.RUNNING})
            assert caught.value.current is C.QUEUED
            ids = await asyncio.gather(
                *(store.add_event(record.id, "tick", {"n": n}) for n in range(30))
            )
            assert ids == sorted(ids)
            assert [e.data["n"] for e in await store.events(record.id, limit=50)] == [*range(30)]
            refused = Outcome(999, MessageState.SENT, "accepted", 250, None, "ok", 1.0)
            with pytest.raises(NotFound):
                await store.record([refused])
        with pytest.raises(StoreError, match="the async store is closed"):
            await store.list_campaigns()
        await store.close()  # twice is fine

    asyncio.run(main())


def test_a_store_that_cannot_open_says_so_at_the_first_await(tmp_path: Path) -> None:
    """The factory's error (here: a folder given as the database) is raised by ``async with``
    and by every call; closing such a store is fine."""

    async def main() -> None:
        store = AsyncStore.open(tmp_path)
        assert repr(store) in ("<AsyncStore opening>", "<AsyncStore failed to open>")
        with pytest.raises(StoreError, match="cannot open the database"):
            async with store:
                pass
        failed = AsyncStore.open(tmp_path)
        for _ in range(2):
            with pytest.raises(StoreError, match="cannot open the database"):
                await failed.list_campaigns()
        assert repr(failed) == "<AsyncStore failed to open>"
        await failed.close()

    asyncio.run(main())


def test_a_write_waiting_for_a_lock_does_not_block_the_event_loop(tmp_path: Path) -> None:
    """Another connection holds SQLite's write lock (BEGIN IMMEDIATE) for about a second; an
    AsyncStore write waits for it in the store's thread while a 10 ms ticker on the loop keeps
    ticking (called in the loop, the same write would stop the ticker for the whole wait). The
    write completes, after the other connection committed."""
    path = tmp_path / "locked.db"
    SqliteStore(path).close()
    held, committed = threading.Event(), threading.Event()

    def hold_the_lock() -> None:
        conn = sqlite3.connect(path, isolation_level=None)
        try:
            conn.execute("BEGIN IMMEDIATE")
            held.set()
            time.sleep(1.0)
            committed.set()
            conn.execute("COMMIT")
        finally:
            conn.close()

    async def main() -> tuple[int, float, bool]:
        async with AsyncStore.open(path) as store:
            holder = threading.Thread(target=hold_the_lock)
            holder.start()
            assert await asyncio.to_thread(held.wait, 30)
            ticks = 0

            async def ticker() -> None:
                nonlocal ticks
                for _ in range(100_000):  # bounded; cancelled when the write is done
                    await asyncio.sleep(0.01)
                    ticks += 1

            task = asyncio.create_task(ticker())
            began = time.monotonic()
            record, created = await store.get_or_create_campaign(
                "after-the-lock", name="n", route_key="r", options={}
            )
            waited = time.monotonic() - began
            after_commit = committed.is_set()
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await asyncio.to_thread(holder.join, 30)
            assert created and (await store.get_campaign(record.id)).key == "after-the-lock"
            return ticks, waited, after_commit

    ticks, waited, after_commit = asyncio.run(main())
    assert after_commit  # the write really waited for the lock
    assert ticks >= 10 and ticks >= 0.25 * waited / 0.01, (ticks, waited)
