"""Async access to a store without blocking the event loop: :class:`AsyncStore`.

The stores are synchronous: a SQLite write may wait up to its busy timeout for another process's
lock, a PostgreSQL call for the network. :class:`AsyncStore` owns one thread (a single-worker
executor) in which it opens the store and runs every call, so the loop keeps serving connections
while the store waits, calls run one at a time in the order they were made, and SQLite's
connection stays in the thread that made it. Each :class:`~mailpacer.store.Store` method is here
as an ``async def`` of the same name and parameters; results and exceptions come back as they
were. Callbacks given to the store (``recover``'s ``is_alive``) run in the store's thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Callable, Collection, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self, TypeVar

from mailpacer.core.errors import StoreError
from mailpacer.core.states import CampaignState, MessageState

if TYPE_CHECKING:
    from mailpacer.store.base import (
        AttemptRecord,
        CampaignRecord,
        CampaignStats,
        ClaimedMessage,
        EventRecord,
        MessageRecord,
        NewMessage,
        Outcome,
        Recovery,
        RouteShare,
        Store,
        SuppressionRecord,
    )

T = TypeVar("T")


class AsyncStore:
    """A :class:`~mailpacer.store.Store` used from async code, run in a thread of its own.

    ``factory`` is called in that thread to open the store; an error it raises comes back from
    the first call (or from ``async with``, which waits for the store to be open). Close with
    ``await close()`` (or leave the ``async with`` block): the store is closed in its thread and
    the thread ends.
    """

    def __init__(self, factory: Callable[[], Store], *, owns: bool = True) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mailpacer-store")
        self._opened: Future[Store] = self._executor.submit(factory)
        self._closed = False
        self._owns = owns  #: close the store with this object (False: the caller closes it)

    @classmethod
    def open(cls, url_or_path: str | Path) -> AsyncStore:
        """An :class:`AsyncStore` on :func:`~mailpacer.store.open_store`'s ``url_or_path``."""
        from mailpacer.store import open_store

        return cls(lambda: open_store(url_or_path))

    def __repr__(self) -> str:
        if self._closed:
            return "<AsyncStore closed>"
        if not self._opened.done():
            return "<AsyncStore opening>"
        if self._opened.exception() is not None:
            return "<AsyncStore failed to open>"
        return f"<AsyncStore {self._opened.result()!r}>"

    async def __aenter__(self) -> Self:
        await asyncio.wrap_future(self._opened)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def _call(self, operation: Callable[[Store], T]) -> T:
        """Run ``operation(store)`` in the store's thread; the loop is free meanwhile."""
        if self._closed:
            raise StoreError("the async store is closed")
        loop = asyncio.get_running_loop()
        run = functools.partial(_in_thread, self._opened, operation)
        return await loop.run_in_executor(self._executor, run)

    async def run(self, operation: Callable[[Store], T]) -> T:
        """Run ``operation(store)`` — several store calls, or a reader such as a report — in the
        store's thread."""
        return await self._call(operation)

    async def close(self) -> None:
        """Close the store in its thread (after the calls already made), then end the thread.
        Closing twice is fine; so is closing a store that failed to open."""
        if self._closed:
            return
        self._closed = True  # no new calls from here
        try:
            with contextlib.suppress(Exception):  # a failed open has nothing to close
                await asyncio.wrap_future(self._opened)
            if self._owns and self._opened.exception() is None:
                loop = asyncio.get_running_loop()
                await loop.run_in_executor(self._executor, self._opened.result().close)
        finally:
            self._executor.shutdown(wait=False)  # the thread ends once its queue is empty

    # -- the Store protocol, each method run in the store's thread -----------------------------
    async def get_or_create_campaign(
        self, key: str, *, name: str, route_key: str, options: dict[str, Any]
    ) -> tuple[CampaignRecord, bool]:
        return await self._call(
            lambda s: s.get_or_create_campaign(key, name=name, route_key=route_key, options=options)
        )

    async def get_campaign(self, ref: int | str) -> CampaignRecord:
        return await self._call(lambda s: s.get_campaign(ref))

    async def list_campaigns(self) -> list[CampaignRecord]:
        return await self._call(lambda s: s.list_campaigns())

    async def set_campaign_state(
        self,
        campaign_id: int,
        state: CampaignState,
        reason: str | None = None,
        *,
        expected: Collection[CampaignState] | None = None,
    ) -> CampaignRecord:
        return await self._call(
            lambda s: s.set_campaign_state(campaign_id, state, reason, expected=expected)
        )

    async def update_campaign(
        self, campaign_id: int, *, route_key: str, options: dict[str, Any]
    ) -> CampaignRecord:
        return await self._call(
            lambda s: s.update_campaign(campaign_id, route_key=route_key, options=options)
        )

    async def delete_campaign(self, campaign_id: int) -> None:
        await self._call(lambda s: s.delete_campaign(campaign_id))

    async def add_messages(
        self, campaign_id: int, messages: Iterable[NewMessage], *, batch_size: int = 5000
    ) -> int:
        return await self._call(
            lambda s: s.add_messages(campaign_id, messages, batch_size=batch_size)
        )

    async def claim(
        self, campaign_id: int, *, worker: str, limit: int, lease_seconds: float, now: float
    ) -> list[ClaimedMessage]:
        return await self._call(
            lambda s: s.claim(
                campaign_id, worker=worker, limit=limit, lease_seconds=lease_seconds, now=now
            )
        )

    async def extend_leases(
        self, worker: str, message_ids: Sequence[int], lease_until: float
    ) -> None:
        await self._call(lambda s: s.extend_leases(worker, message_ids, lease_until))

    async def mark_started(self, worker: str, message_ids: Sequence[int], at: float) -> None:
        await self._call(lambda s: s.mark_started(worker, message_ids, at))

    async def release(self, worker: str, message_ids: Sequence[int]) -> None:
        await self._call(lambda s: s.release(worker, message_ids))

    async def record(
        self, outcomes: Sequence[Outcome], *, worker: str | None = None
    ) -> list[Outcome]:
        return await self._call(lambda s: s.record(outcomes, worker=worker))

    async def recover(
        self, campaign_id: int, *, now: float, resend: bool, is_alive: Callable[[str], bool]
    ) -> Recovery:
        return await self._call(
            lambda s: s.recover(campaign_id, now=now, resend=resend, is_alive=is_alive)
        )

    async def stats(self, campaign_id: int) -> CampaignStats:
        return await self._call(lambda s: s.stats(campaign_id))

    async def next_retry_at(self, campaign_id: int) -> float | None:
        return await self._call(lambda s: s.next_retry_at(campaign_id))

    async def sent_by_route(self, campaign_id: int) -> dict[str, int]:
        return await self._call(lambda s: s.sent_by_route(campaign_id))

    async def retry(self, campaign_id: int, states: Collection[MessageState]) -> int:
        return await self._call(lambda s: s.retry(campaign_id, states))

    async def cancel_pending(self, campaign_id: int) -> int:
        return await self._call(lambda s: s.cancel_pending(campaign_id))

    async def messages(
        self,
        campaign_id: int,
        *,
        state: MessageState | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[MessageRecord]:
        return await self._call(
            lambda s: s.messages(campaign_id, state=state, limit=limit, offset=offset)
        )

    async def attempts(self, message_id: int) -> list[AttemptRecord]:
        return await self._call(lambda s: s.attempts(message_id))

    async def load_route_limits(self, route_key: str) -> dict[str, Any] | None:
        return await self._call(lambda s: s.load_route_limits(route_key))

    async def save_route_limits(self, route_key: str, limits: dict[str, Any]) -> None:
        await self._call(lambda s: s.save_route_limits(route_key, limits))

    async def add_event(
        self, campaign_id: int | None, kind: str, data: dict[str, Any], *, at: float | None = None
    ) -> int:
        return await self._call(lambda s: s.add_event(campaign_id, kind, data, at=at))

    async def events(
        self, campaign_id: int | None = None, *, after_id: int = 0, limit: int = 100
    ) -> list[EventRecord]:
        return await self._call(lambda s: s.events(campaign_id, after_id=after_id, limit=limit))

    # -- the suppression list ----------------------------------------------------------------
    async def add_suppressions(self, emails: Sequence[str], *, reason: str, source: str) -> int:
        return await self._call(lambda s: s.add_suppressions(emails, reason=reason, source=source))

    async def remove_suppressions(self, emails: Sequence[str]) -> int:
        return await self._call(lambda s: s.remove_suppressions(emails))

    async def suppressions(self, *, limit: int = 1000, offset: int = 0) -> list[SuppressionRecord]:
        return await self._call(lambda s: s.suppressions(limit=limit, offset=offset))

    async def suppressed_among(self, emails: Sequence[str]) -> dict[str, SuppressionRecord]:
        return await self._call(lambda s: s.suppressed_among(emails))

    # -- a route's shared budget (migration 0004) ----------------------------------------------
    async def acquire_route_slot(
        self, route_key: str, *, holder: str, limit: int, lease_seconds: float, now: float
    ) -> int | None:
        return await self._call(
            lambda s: s.acquire_route_slot(
                route_key, holder=holder, limit=limit, lease_seconds=lease_seconds, now=now
            )
        )

    async def release_route_slot(self, route_key: str, *, holder: str, slot: int) -> None:
        await self._call(lambda s: s.release_route_slot(route_key, holder=holder, slot=slot))

    async def sync_route(
        self,
        route_key: str,
        *,
        holder: str,
        wants: int,
        lease_seconds: float,
        now: float,
        target: int = 0,
    ) -> RouteShare:
        return await self._call(
            lambda s: s.sync_route(
                route_key,
                holder=holder,
                wants=wants,
                lease_seconds=lease_seconds,
                now=now,
                target=target,
            )
        )

    async def leave_route(self, route_key: str, *, holder: str) -> None:
        await self._call(lambda s: s.leave_route(route_key, holder=holder))

    async def reserve_route_send(self, route_key: str, *, interval: float, now: float) -> float:
        return await self._call(
            lambda s: s.reserve_route_send(route_key, interval=interval, now=now)
        )

    async def patch_route_limits(self, route_key: str, patch: dict[str, Any], *, now: float) -> int:
        return await self._call(lambda s: s.patch_route_limits(route_key, patch, now=now))


def _in_thread(opened: Future[Store], operation: Callable[[Store], T]) -> T:
    """In the store's thread: the open already ran (one worker, calls in order), so this does
    not wait; a failed open raises its error here, for every call."""
    return operation(opened.result())
