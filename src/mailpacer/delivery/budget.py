"""A route's budget: the seam between a route runtime and every other process on the route.

:class:`RouteBudget` is what :class:`~mailpacer.delivery.route_runtime.RouteRuntime` asks before it
opens a connection (a slot), before a paced send (the shared clock), on each heartbeat (keep my
slots, tell me what others learned) and when its pacer learns something (publish). Two
implementations: :class:`LocalBudget` (this process alone, nothing shared: the slots are counted
here and the limits saved whole, as before) and :class:`StoreBudget` (slots, members, the clock
and the limits in the store, shared by every process on the database: two ``mailpacer send`` on
one SQLite file, or workers on several machines over PostgreSQL). Decisions are
:mod:`mailpacer.delivery.shares`'s; this module does the I/O.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from mailpacer.core.errors import StoreError
from mailpacer.core.limits import Limits
from mailpacer.delivery.shares import fair_shares, limits_patch, must_yield
from mailpacer.store import AsyncStore
from mailpacer.store.base import RouteMember, lowest_free_slot

__all__ = ["LocalBudget", "RouteBudget", "StoreBudget"]

log = logging.getLogger("mailpacer")


class RouteBudget(Protocol):
    """What a route runtime needs from the processes it shares a route with."""

    @property
    def others(self) -> int:
        """Connection slots other processes hold on the route (as last seen)."""
        ...

    @property
    def others_target(self) -> int:
        """The most connections another process's pacer would have the route open (0: none)."""
        ...

    async def acquire(self, limit: int) -> int | None:
        """A connection slot below ``limit`` for a new connection, or ``None`` (all taken, or
        this process has its fair share while others want theirs)."""
        ...

    async def release(self, slot: int) -> None:
        """The connection on ``slot`` has closed."""
        ...

    def keeps(self, slot: int) -> bool:
        """False when the connection on ``slot`` should close so another process gets its
        fair share."""
        ...

    async def pace(self, interval: float) -> float:
        """Book a send on the route's shared clock, ``interval`` seconds after the previous one
        (by any process); returns seconds to wait before it starts."""
        ...

    async def sync(self, wants: int, target: int) -> Limits | None:
        """The heartbeat, called often (it decides itself when to go to the store): say how
        many connections this process would use and what its pacer's target is, keep its
        slots; returns the route's stored limits when another process changed them."""
        ...

    async def publish(self, before: dict[str, Any], after: dict[str, Any]) -> None:
        """This process's pacer learned something: its limits went from ``before`` to
        ``after`` (:meth:`Limits.to_dict`)."""
        ...

    async def leave(self) -> None:
        """The route runtime has ended: give everything back."""
        ...


class LocalBudget:
    """One process alone on the route: slots counted here, limits saved whole."""

    def __init__(self, save_limits: Callable[[dict[str, Any]], Awaitable[None]]) -> None:
        self._save = save_limits
        self._mine: set[int] = set()

    def __repr__(self) -> str:
        return f"<LocalBudget slots={sorted(self._mine)}>"

    @property
    def others(self) -> int:
        return 0

    @property
    def others_target(self) -> int:
        return 0

    async def acquire(self, limit: int) -> int | None:
        slot = lowest_free_slot(self._mine, limit)
        if slot is not None:
            self._mine.add(slot)
        return slot

    async def release(self, slot: int) -> None:
        self._mine.discard(slot)

    def keeps(self, slot: int) -> bool:
        return True

    async def pace(self, interval: float) -> float:
        return 0.0  # the pacer's own bucket is the route's

    async def sync(self, wants: int, target: int) -> Limits | None:
        return None

    async def publish(self, before: dict[str, Any], after: dict[str, Any]) -> None:
        await self._save(after)

    async def leave(self) -> None:
        self._mine.clear()


class StoreBudget:
    """The route's budget in the store, shared with every process on the database.

    Slots are held under leases of ``lease_seconds``, renewed every ``sync_seconds`` by
    :meth:`sync`: a process that dies frees its slots within ``lease_seconds``. A store error
    never stops sending here: a slot is not taken, a heartbeat is tried again, a paced send
    waits one interval.
    """

    def __init__(
        self,
        db: AsyncStore,
        route_key: str,
        holder: str,
        *,
        lease_seconds: float = 5.0,
        sync_seconds: float = 1.0,
        retry_seconds: float = 0.5,
    ) -> None:
        self.db = db
        self.route_key = route_key
        self.holder = holder
        self.lease_seconds = lease_seconds
        self.sync_seconds = sync_seconds
        self.retry_seconds = retry_seconds  #: after a refused slot, ask the store again after
        self._mine: set[int] = set()
        self._members: tuple[RouteMember, ...] = ()
        self._held = 0  #: slots held on the route by anyone, at the last sync
        self._wants = 0
        self._limit = 0  #: the last limit asked for (the route's connection target here)
        self._version: int | None = None
        self._next_sync = 0.0
        self._refused: tuple[float, int] | None = None  #: (until when, limit) a slot was refused
        #: until when (monotonic) our leases surely hold: renewed by each sync; past it, another
        #: process may have taken our slots (we were starved, or the store was slow)
        self._sure_until = 0.0

    def __repr__(self) -> str:
        return (
            f"<StoreBudget {self.route_key} slots={sorted(self._mine)} others={self.others}"
            f" members={len(self._members)}>"
        )

    @property
    def others(self) -> int:
        return max(0, self._held - len(self._mine))

    @property
    def others_target(self) -> int:
        return max((m.target for m in self._members if m.holder != self.holder), default=0)

    def _views(self, limit: int) -> tuple[dict[str, int], dict[str, int]]:
        """What each member wants and holds, with this process's own figures up to date."""
        wants = {m.holder: m.wants for m in self._members}
        held = {m.holder: m.held for m in self._members}
        wants[self.holder] = min(limit, self._wants) if self._members else limit
        held[self.holder] = len(self._mine)
        return wants, held

    async def acquire(self, limit: int) -> int | None:
        self._limit = limit
        wants, _ = self._views(limit)
        if len(self._mine) >= fair_shares(limit, wants)[self.holder]:
            return None
        now = time.monotonic()
        if self._refused is not None and now < self._refused[0] and limit <= self._refused[1]:
            return None
        try:
            slot = await self.db.acquire_route_slot(
                self.route_key,
                holder=self.holder,
                limit=limit,
                lease_seconds=self.lease_seconds,
                now=time.time(),
            )
        except StoreError as exc:
            log.warning("route %s: no connection slot (%s)", self.route_key, exc)
            slot = None
        if slot is None:
            self._refused = (now + self.retry_seconds, limit)
            return None
        self._refused = None
        if not self._mine:
            self._sure_until = now + self.lease_seconds - self.sync_seconds
        self._mine.add(slot)
        self._held += 1
        return slot

    async def release(self, slot: int) -> None:
        if slot not in self._mine:
            return
        self._mine.discard(slot)
        self._held = max(0, self._held - 1)
        self._refused = None
        try:
            await self.db.release_route_slot(self.route_key, holder=self.holder, slot=slot)
        except StoreError as exc:  # its lease ends by itself
            log.warning("route %s: slot %d not given back (%s)", self.route_key, slot, exc)

    def keeps(self, slot: int) -> bool:
        if slot in self._mine and time.monotonic() > self._sure_until:
            return False  # our lease may have lapsed: never hold a connection on a lost slot
        if slot not in self._mine or not self._members:
            return True
        wants, held = self._views(self._limit)
        if not must_yield(self.holder, self._limit, wants, held):
            return True
        return slot != max(self._mine)  # the highest goes first, one at a time

    async def pace(self, interval: float) -> float:
        try:
            start = await self.db.reserve_route_send(
                self.route_key, interval=interval, now=time.time()
            )
        except StoreError as exc:
            log.warning("route %s: shared pace unavailable (%s)", self.route_key, exc)
            return interval
        return max(0.0, start - time.time())

    async def sync(self, wants: int, target: int) -> Limits | None:
        self._wants = wants
        now = time.monotonic()
        if now < self._next_sync:
            return None
        self._next_sync = now + self.sync_seconds
        try:
            share = await self.db.sync_route(
                self.route_key,
                holder=self.holder,
                wants=wants,
                lease_seconds=self.lease_seconds,
                now=time.time(),
                target=target,
            )
            self._members, self._held = share.members, share.held
            self._sure_until = now + self.lease_seconds - self.sync_seconds
            if share.limits_version == self._version:
                return None
            stored = await self.db.load_route_limits(self.route_key)
        except StoreError as exc:
            log.warning("route %s: heartbeat failed (%s)", self.route_key, exc)
            return None
        self._version = share.limits_version
        return Limits.from_dict(stored) if stored else None

    async def publish(self, before: dict[str, Any], after: dict[str, Any]) -> None:
        patch = limits_patch(before, after)
        if not patch:
            return
        version = await self.db.patch_route_limits(self.route_key, patch, now=time.time())
        if self._version is not None and version == self._version + 1:
            self._version = version  # nobody else wrote in between: nothing new to read

    async def leave(self) -> None:
        self._mine.clear()
        try:
            await self.db.leave_route(self.route_key, holder=self.holder)
        except StoreError as exc:  # the leases end by themselves
            log.warning("route %s: not left cleanly (%s)", self.route_key, exc)
