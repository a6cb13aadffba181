"""A route's shared budget in plain Python objects (migration 0004), for
:class:`~mailpacer.store.memory.MemoryStore`: the same contract as the SQL stores'
(:mod:`mailpacer.store.route_share`), under the memory store's one lock."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

from mailpacer.store.base import (
    RouteMember,
    RouteShare,
    dump_json,
    lowest_free_slot,
    merge_patch,
)

__all__ = ["RouteTables", "SharedRoutesMemory"]


@dataclass
class RouteTables:
    """The 0004 tables: slots, members, pace clocks, and the limits' versions."""

    #: (route, slot) -> (holder, lease_until)
    slots: dict[tuple[str, int], tuple[str, float]] = field(default_factory=dict)
    #: (route, holder) -> (wants, target, lease_until)
    members: dict[tuple[str, str], tuple[int, int, float]] = field(default_factory=dict)
    pace: dict[str, float] = field(default_factory=dict)
    versions: dict[str, int] = field(default_factory=dict)

    def expire(self, route_key: str, now: float) -> None:
        """Drop the route's slots and members whose lease has ended."""
        for k, (_, until) in list(self.slots.items()):
            if k[0] == route_key and until <= now:
                del self.slots[k]
        for m, (_, _, until) in list(self.members.items()):
            if m[0] == route_key and until <= now:
                del self.members[m]


class SharedRoutesMemory:
    """The route-budget operations of the :class:`~mailpacer.store.Store` protocol in memory."""

    def _lock(self) -> AbstractContextManager[Any]:  # pragma: no cover - MemoryStore's
        raise NotImplementedError

    def _slots_of(self, t: RouteTables, route_key: str) -> Iterator[tuple[int, str]]:
        return ((k[1], v[0]) for k, v in sorted(t.slots.items()) if k[0] == route_key)

    def acquire_route_slot(
        self, route_key: str, *, holder: str, limit: int, lease_seconds: float, now: float
    ) -> int | None:
        with self._lock() as tables:
            t: RouteTables = tables.shared
            t.expire(route_key, now)
            slot = lowest_free_slot({s for s, _ in self._slots_of(t, route_key)}, limit)
            if slot is not None:
                t.slots[(route_key, slot)] = (holder, now + lease_seconds)
            return slot

    def release_route_slot(self, route_key: str, *, holder: str, slot: int) -> None:
        with self._lock() as tables:
            t: RouteTables = tables.shared
            if t.slots.get((route_key, slot), ("",))[0] == holder:
                del t.slots[(route_key, slot)]

    def sync_route(
        self,
        route_key: str,
        *,
        holder: str,
        wants: int,
        lease_seconds: float,
        now: float,
        target: int = 0,
    ) -> RouteShare:
        until = now + lease_seconds
        with self._lock() as tables:
            t: RouteTables = tables.shared
            t.expire(route_key, now)
            for k, (who, _) in t.slots.items():
                if k[0] == route_key and who == holder:
                    t.slots[k] = (who, until)
            t.members[(route_key, holder)] = (max(0, wants), max(0, target), until)
            counts: dict[str, int] = {}
            for _, who in self._slots_of(t, route_key):
                counts[who] = counts.get(who, 0) + 1
            members = sorted(
                (m[1], w, target) for m, (w, target, _) in t.members.items() if m[0] == route_key
            )
            return RouteShare(
                tuple(RouteMember(who, w, counts.get(who, 0), tg) for who, w, tg in members),
                held=sum(counts.values()),
                limits_version=t.versions.get(route_key, 0),
            )

    def leave_route(self, route_key: str, *, holder: str) -> None:
        with self._lock() as tables:
            t: RouteTables = tables.shared
            for k, (who, _) in list(t.slots.items()):
                if k[0] == route_key and who == holder:
                    del t.slots[k]
            t.members.pop((route_key, holder), None)

    def reserve_route_send(self, route_key: str, *, interval: float, now: float) -> float:
        with self._lock() as tables:
            t: RouteTables = tables.shared
            start = max(t.pace.get(route_key, now), now)
            t.pace[route_key] = start + max(0.0, interval)
            return start

    def patch_route_limits(self, route_key: str, patch: dict[str, Any], *, now: float) -> int:
        with self._lock() as tables:
            t: RouteTables = tables.shared
            text = tables.routes.get(route_key)
            stored = {} if text is None else dict(json.loads(text))
            tables.routes[route_key] = dump_json(merge_patch(stored, patch), "route limits")
            t.versions[route_key] = t.versions.get(route_key, 0) + 1
            return t.versions[route_key]
