"""A route's shared budget in SQL (migration 0004), for :class:`~mailpacer.store.sqlstore.SqlStore`.

Connection slots and members are rows under short leases; a change to them (or to the learned
limits) takes the route's lock first (``lock_route``: a transaction-scoped advisory lock on
PostgreSQL; SQLite's ``BEGIN IMMEDIATE`` already holds the file's write lock), so choosing the
lowest free slot and taking it is one step. The shared rate clock is one upsert statement.
"""

from __future__ import annotations

import json
from contextlib import AbstractContextManager
from typing import Any

from mailpacer.store.base import (
    RouteMember,
    RouteShare,
    dump_json,
    lowest_free_slot,
    merge_patch,
)

__all__ = ["SharedRoutesSql"]


class SharedRoutesSql:
    """The route-budget operations of the :class:`~mailpacer.store.Store` protocol, over a
    dialect's named queries (the SQL store provides the plumbing below)."""

    _q: dict[str, str]

    def _write(self) -> AbstractContextManager[Any]:  # pragma: no cover - SqlStore's
        raise NotImplementedError

    def _statement(self) -> AbstractContextManager[Any]:  # pragma: no cover - SqlStore's
        raise NotImplementedError

    def acquire_route_slot(
        self, route_key: str, *, holder: str, limit: int, lease_seconds: float, now: float
    ) -> int | None:
        if limit <= 0:
            return None
        key = {"key": route_key, "now": now}
        with self._write() as conn:
            conn.execute(self._q["lock_route"], key)
            conn.execute(self._q["expire_route_slots"], key)
            held = {row[0] for row in conn.execute(self._q["route_slots"], key)}
            slot = lowest_free_slot(held, limit)
            if slot is not None:
                params = {**key, "slot": slot, "holder": holder, "lease_until": now + lease_seconds}
                conn.execute(self._q["take_route_slot"], params)
        return slot

    def release_route_slot(self, route_key: str, *, holder: str, slot: int) -> None:
        params = {"key": route_key, "holder": holder, "slot": slot}
        with self._statement() as conn:
            conn.execute(self._q["release_route_slot"], params)

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
        params = {
            "key": route_key,
            "holder": holder,
            "wants": max(0, wants),
            "target": max(0, target),
            "now": now,
            "lease_until": now + lease_seconds,
        }
        with self._write() as conn:
            conn.execute(self._q["lock_route"], params)
            conn.execute(self._q["expire_route_slots"], params)
            conn.execute(self._q["expire_route_members"], params)
            conn.execute(self._q["renew_route_slots"], params)
            conn.execute(self._q["upsert_route_member"], params)
            slots = conn.execute(self._q["route_slots"], params).fetchall()
            members = conn.execute(self._q["route_members"], params).fetchall()
            row = conn.execute(self._q["route_limits_version"], params).fetchone()
        counts: dict[str, int] = {}
        for _, who in slots:
            counts[who] = counts.get(who, 0) + 1
        return RouteShare(
            tuple(RouteMember(who, int(w), counts.get(who, 0), int(t)) for who, w, t in members),
            held=len(slots),
            limits_version=0 if row is None else int(row[0]),
        )

    def leave_route(self, route_key: str, *, holder: str) -> None:
        params = {"key": route_key, "holder": holder}
        with self._write() as conn:
            conn.execute(self._q["leave_route_slots"], params)
            conn.execute(self._q["leave_route_member"], params)

    def reserve_route_send(self, route_key: str, *, interval: float, now: float) -> float:
        params = {"key": route_key, "interval": max(0.0, interval), "now": now}
        with self._statement() as conn:
            return float(conn.execute(self._q["reserve_route_send"], params).fetchone()[0])

    def patch_route_limits(self, route_key: str, patch: dict[str, Any], *, now: float) -> int:
        key = {"key": route_key}
        with self._write() as conn:
            conn.execute(self._q["lock_route"], key)
            row = conn.execute(self._q["route_limits_for_update"], key).fetchone()
            stored = {} if row is None else dict(json.loads(row[0]))
            merged = dump_json(merge_patch(stored, patch), "route limits")
            params = {**key, "limits": merged, "now": now}
            return int(conn.execute(self._q["write_route_limits"], params).fetchone()[0])
