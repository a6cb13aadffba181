"""Every :class:`~mailpacer.store.Store` operation, written once over a dialect's named queries.

:class:`SqlStore` holds what the SQLite and PostgreSQL stores share: which query runs, with which
parameters, the transition checks (:mod:`mailpacer.core.states`, through :mod:`.outcomes`) and the
records built from rows. A subclass opens the connection, owns transactions (``_read`` /
``_write``), says how a list is passed (``_array``) and translates its driver's errors. Both
dialects keep the same query names; JSON columns come back as text.
"""

from __future__ import annotations

import abc
import itertools
import json
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol, Self

from mailpacer.core.errors import NotFound, StoreError
from mailpacer.core.states import (
    CampaignState,
    MessageState,
    StateConflict,
    check_campaign_transition,
    check_message_transition,
)
from mailpacer.store import outcomes as outcomes_mod
from mailpacer.store.base import (
    SUPPRESSION_SOURCES,
    AttemptRecord,
    CampaignRecord,
    CampaignStats,
    ClaimedMessage,
    EventRecord,
    MessageRecord,
    NewMessage,
    Outcome,
    Recovery,
    SuppressionRecord,
    dump_json,
    is_hard_bounce,
)
from mailpacer.store.route_share import SharedRoutesSql

M = MessageState
Row = tuple[Any, ...]


class Cursor(Protocol):
    """What the shared code reads from a driver's cursor."""

    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def __iter__(self) -> Iterator[Any]: ...


class Connection(Protocol):
    """What the shared code asks of a connection inside ``_read`` / ``_write``."""

    def execute(self, query: str, params: Any = ..., /) -> Cursor: ...

    def executemany(self, query: str, rows: Sequence[Mapping[str, Any]], /) -> Cursor: ...


class SqlStore(SharedRoutesSql, abc.ABC):
    """The shared half of a SQL store; see the module docstring for what a subclass adds."""

    #: names the database in errors (a path, or a URL without its password)
    where: str
    _q: dict[str, str]

    # -- what a dialect provides -----------------------------------------------------------
    @abc.abstractmethod
    def _read(self) -> AbstractContextManager[Connection]:
        """The connection for reads, each statement on its own (one statement reads one
        consistent state)."""

    @abc.abstractmethod
    def _write(self) -> AbstractContextManager[Connection]:
        """One write transaction: committed on success, rolled back on any error."""

    def _statement(self) -> AbstractContextManager[Connection]:
        """For a write that is one statement (atomic by itself): by default a ``_write``; a
        dialect may run it without BEGIN / COMMIT round trips."""
        return self._write()

    @abc.abstractmethod
    def _array(self, values: Sequence[int | str]) -> Any:
        """A list of ids or states as the dialect's queries take it."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release the database; the store cannot be used afterwards."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _campaign_row(
        self, conn: Connection, campaign_id: int, query: str = "campaign_by_id"
    ) -> CampaignRecord:
        row = conn.execute(self._q[query], {"id": campaign_id}).fetchone()
        if row is None:
            raise NotFound(f"no campaign {campaign_id} in {self.where}")
        return _campaign(row)

    # -- campaigns -----------------------------------------------------------------------
    def get_or_create_campaign(
        self, key: str, *, name: str, route_key: str, options: dict[str, Any]
    ) -> tuple[CampaignRecord, bool]:
        params = {
            "key": key,
            "name": name,
            "route_key": route_key,
            "options": dump_json(options, "campaign options"),
            "now": time.time(),
        }
        with self._write() as conn:
            created = conn.execute(self._q["insert_campaign"], params).rowcount == 1
            row = conn.execute(self._q["campaign_by_key"], {"key": key}).fetchone()
        return _campaign(row), created

    def get_campaign(self, ref: int | str) -> CampaignRecord:
        with self._read() as conn:
            if isinstance(ref, str):
                row = conn.execute(self._q["campaign_by_key"], {"key": ref}).fetchone()
                if row is not None:
                    return _campaign(row)
                if not ref.isdigit():
                    raise NotFound(f"no campaign with key {ref!r} in {self.where}")
            return self._campaign_row(conn, int(ref))

    def list_campaigns(self) -> list[CampaignRecord]:
        with self._read() as conn:
            return [_campaign(row) for row in conn.execute(self._q["list_campaigns"], {})]

    def set_campaign_state(
        self,
        campaign_id: int,
        state: CampaignState,
        reason: str | None = None,
        *,
        expected: Collection[CampaignState] | None = None,
    ) -> CampaignRecord:
        with self._write() as conn:
            current = self._campaign_row(conn, campaign_id, "lock_campaign")  # locked until done
            if expected is not None and current.state not in expected:
                raise StateConflict(campaign_id, current.state, state, expected)
            if current.state is not state:
                check_campaign_transition(current.state, state)
            old, now = current.state.value, time.time()
            params = dict(id=campaign_id, state=state.value, old=old, reason=reason, now=now)
            conn.execute(self._q["update_campaign_state"], params)
            return self._campaign_row(conn, campaign_id)

    # -- messages ------------------------------------------------------------------------
    def update_campaign(
        self, campaign_id: int, *, route_key: str, options: dict[str, Any]
    ) -> CampaignRecord:
        params = {
            "id": campaign_id,
            "route_key": route_key,
            "options": dump_json(options, "campaign options"),
            "now": time.time(),
        }
        with self._write() as conn:
            self._campaign_row(conn, campaign_id, "lock_campaign")
            conn.execute(self._q["update_campaign"], params)
            return self._campaign_row(conn, campaign_id)

    def delete_campaign(self, campaign_id: int) -> None:
        with self._write() as conn:
            self._campaign_row(conn, campaign_id, "lock_campaign")
            conn.execute(self._q["delete_campaign"], {"id": campaign_id})

    def add_messages(
        self, campaign_id: int, messages: Iterable[NewMessage], *, batch_size: int = 5000
    ) -> int:
        with self._read() as conn:
            self._campaign_row(conn, campaign_id)
        inserted = 0
        source = iter(messages)
        while batch := list(itertools.islice(source, max(1, batch_size))):
            now = time.time()
            rows = [
                dict(
                    campaign_id=campaign_id,
                    row=m.row,
                    email=m.email,
                    now=now,
                    variables=dump_json(m.variables, f"variables of row {m.row}"),
                )
                for m in batch
            ]
            with self._write() as conn:
                inserted += conn.executemany(self._q["insert_message"], rows).rowcount
        return inserted

    def claim(
        self, campaign_id: int, *, worker: str, limit: int, lease_seconds: float, now: float
    ) -> list[ClaimedMessage]:
        check_message_transition(M.QUEUED, M.SENDING)
        check_message_transition(M.DEFERRED, M.SENDING)
        if limit <= 0:
            return []
        until = now + lease_seconds
        params = dict(
            campaign_id=campaign_id, worker=worker, limit=limit, now=now, lease_until=until
        )
        with self._statement() as conn:
            rows = conn.execute(self._q["claim_messages"], params).fetchall()
        rows.sort(key=lambda r: (r[2], r[0]))  # RETURNING has no order
        return [ClaimedMessage(r[0], r[1], r[2], r[3], json.loads(r[4]), *r[5:8]) for r in rows]

    def extend_leases(self, worker: str, message_ids: Sequence[int], lease_until: float) -> None:
        if not message_ids:
            return
        params = dict(worker=worker, ids=self._array(message_ids), lease_until=lease_until)
        with self._statement() as conn:
            conn.execute(self._q["extend_leases"], params)

    def mark_started(self, worker: str, message_ids: Sequence[int], at: float) -> None:
        if not message_ids:
            return
        params = dict(worker=worker, ids=self._array(message_ids), at=at)
        with self._statement() as conn:
            conn.execute(self._q["mark_started"], params)

    def release(self, worker: str, message_ids: Sequence[int]) -> None:
        check_message_transition(M.SENDING, M.QUEUED)
        if not message_ids:
            return
        params = dict(worker=worker, ids=self._array(message_ids), now=time.time())
        with self._statement() as conn:
            conn.execute(self._q["release_messages"], params)

    def record(self, outcomes: Sequence[Outcome], *, worker: str | None = None) -> list[Outcome]:
        if not outcomes:
            return []
        with self._write() as conn:
            return self._apply(conn, outcomes, worker)

    def _apply(
        self, conn: Connection, outcomes: Sequence[Outcome], worker: str | None = None
    ) -> list[Outcome]:
        """Check every outcome against the current states, then write them all (in order)."""
        ids = self._array(sorted({o.message_id for o in outcomes}))
        current = {
            row[0]: outcomes_mod.Current(row[1], MessageState(row[2]), row[3])
            for row in conn.execute(self._q["message_states"], {"ids": ids})
        }
        planned = outcomes_mod.plan(current, outcomes, worker=worker)
        rows = planned.rows
        if rows:
            conn.executemany(self._q["insert_attempt"], rows)
            changed = conn.executemany(self._q["apply_outcome"], rows).rowcount
            if changed != len(rows):  # cannot happen: the messages are locked for the transaction
                raise StoreError(f"{len(rows) - changed} outcome(s) found their message changed")
            self._suppress_bounces(conn, rows)
        return planned.skipped

    def recover(
        self, campaign_id: int, *, now: float, resend: bool, is_alive: Callable[[str], bool]
    ) -> Recovery:
        params = {"campaign_id": campaign_id}
        known: dict[str, bool] = {}

        def alive(worker: str) -> bool:  # asked once per worker over both looks
            if worker not in known:
                known[worker] = is_alive(worker)
            return known[worker]

        with self._read() as conn:  # most heartbeats find nothing to take: no write lock then
            self._campaign_row(conn, campaign_id)
            sending = conn.execute(self._q["sending_messages"], params).fetchall()
        first = outcomes_mod.recovery(sending, now=now, resend=resend, is_alive=alive)
        if not first.outcomes and not first.unstarted:
            return Recovery([], [])
        with self._write() as conn:
            sending = conn.execute(self._q["sending_messages"], params).fetchall()
            lost = outcomes_mod.recovery(sending, now=now, resend=resend, is_alive=alive)
            if lost.unstarted:
                back = {"ids": self._array(lost.unstarted), "now": now}
                changed = conn.execute(self._q["requeue_unstarted"], back).rowcount
                if changed != len(lost.unstarted):  # cannot happen: the rows are locked
                    raise StoreError(f"{len(lost.unstarted) - changed} lease(s) changed meanwhile")
            if lost.outcomes:
                self._apply(conn, lost.outcomes)
        return Recovery(lost.uncertain, lost.unstarted)

    def retry(self, campaign_id: int, states: Collection[MessageState]) -> int:
        for state in states:
            check_message_transition(state, M.QUEUED)
        params = {
            "campaign_id": campaign_id,
            "states": self._array(sorted(s.value for s in states)),
            "now": time.time(),
        }
        with self._write() as conn:
            self._campaign_row(conn, campaign_id)
            return int(conn.execute(self._q["retry_messages"], params).rowcount)

    def cancel_pending(self, campaign_id: int) -> int:
        check_message_transition(M.QUEUED, M.CANCELLED)
        check_message_transition(M.DEFERRED, M.CANCELLED)
        with self._write() as conn:
            self._campaign_row(conn, campaign_id)
            params = {"campaign_id": campaign_id, "now": time.time()}
            return int(conn.execute(self._q["cancel_pending"], params).rowcount)

    # -- reading -------------------------------------------------------------------------
    def stats(self, campaign_id: int) -> CampaignStats:
        counts = dict.fromkeys(MessageState, 0)
        attempts = throttles = uncertain = found = 0
        with self._read() as conn:
            for row in conn.execute(self._q["campaign_stats"], {"campaign_id": campaign_id}):
                if row[0] is not None:
                    counts[MessageState(row[0])] = row[1]
                else:
                    attempts, throttles, uncertain, found = row[2:6]
        if not found:
            raise NotFound(f"no campaign {campaign_id} in {self.where}")
        return CampaignStats(counts, sum(counts.values()), attempts, throttles, uncertain)

    def next_retry_at(self, campaign_id: int) -> float | None:
        with self._read() as conn:
            row = conn.execute(self._q["next_retry_at"], {"campaign_id": campaign_id}).fetchone()
        return None if row[0] is None else float(row[0])

    def sent_by_route(self, campaign_id: int) -> dict[str, int]:
        with self._read() as conn:
            self._campaign_row(conn, campaign_id)
            rows = conn.execute(self._q["sent_by_route"], {"campaign_id": campaign_id})
            return {str(key): int(count) for key, count in rows if key is not None}

    def messages(
        self,
        campaign_id: int,
        *,
        state: MessageState | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[MessageRecord]:
        params: dict[str, Any] = {"campaign_id": campaign_id, "limit": limit, "offset": offset}
        name = "list_messages"
        if state is not None:
            name, params["state"] = "list_messages_in_state", state.value
        with self._read() as conn:
            rows = conn.execute(self._q[name], params).fetchall()
        return [_message(row) for row in rows]

    def attempts(self, message_id: int) -> list[AttemptRecord]:
        with self._read() as conn:
            rows = conn.execute(self._q["message_attempts"], {"message_id": message_id})
            return [AttemptRecord(*row) for row in rows]

    # -- routes and events ---------------------------------------------------------------
    def load_route_limits(self, route_key: str) -> dict[str, Any] | None:
        with self._read() as conn:
            row = conn.execute(self._q["load_route_limits"], {"key": route_key}).fetchone()
        return None if row is None else dict(json.loads(row[0]))

    def save_route_limits(self, route_key: str, limits: dict[str, Any]) -> None:
        params = {"key": route_key, "limits": dump_json(limits, "route limits"), "now": time.time()}
        with self._statement() as conn:
            conn.execute(self._q["save_route_limits"], params)

    def add_event(
        self, campaign_id: int | None, kind: str, data: dict[str, Any], *, at: float | None = None
    ) -> int:
        params = {
            "campaign_id": campaign_id,
            "at": time.time() if at is None else at,
            "kind": kind,
            "data": dump_json(data, f"{kind} event data"),
        }
        with self._statement() as conn:
            return int(conn.execute(self._q["insert_event"], params).fetchone()[0])

    def events(
        self, campaign_id: int | None = None, *, after_id: int = 0, limit: int = 100
    ) -> list[EventRecord]:
        params = {"campaign_id": campaign_id, "after_id": after_id, "limit": limit}
        name = "all_events" if campaign_id is None else "campaign_events"
        with self._read() as conn:
            rows = conn.execute(self._q[name], params).fetchall()
        return [EventRecord(r[0], r[1], r[2], r[3], json.loads(r[4])) for r in rows]

    # -- suppression list (migration 0003) -----------------------------------------------
    def _suppress_bounces(self, conn: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
        """With the outcomes: the addresses of hard bounces go on the suppression list."""
        bounced = [
            {
                "id": r["id"],
                "at": r["at"],
                "reason": " ".join(str(x) for x in (r["code"], r["enhanced"], r["text"]) if x),
            }
            for r in rows
            if is_hard_bounce(r["verdict"], r["enhanced"])
        ]
        if bounced:
            conn.executemany(self._q["suppress_bounced"], bounced)

    def add_suppressions(self, emails: Sequence[str], *, reason: str, source: str) -> int:
        if source not in SUPPRESSION_SOURCES:
            raise StoreError(f"suppression source {source!r}: one of {SUPPRESSION_SOURCES}")
        now = time.time()
        keys = sorted({e.strip().lower() for e in emails if e.strip()})
        rows = [dict(email=e, reason=reason, source=source, now=now) for e in keys]
        if not rows:
            return 0
        with self._write() as conn:
            return int(conn.executemany(self._q["insert_suppression"], rows).rowcount)

    def remove_suppressions(self, emails: Sequence[str]) -> int:
        keys = sorted({e.strip().lower() for e in emails if e.strip()})
        if not keys:
            return 0
        with self._write() as conn:
            rows = [{"email": e} for e in keys]
            return int(conn.executemany(self._q["delete_suppression"], rows).rowcount)

    def suppressions(self, *, limit: int = 1000, offset: int = 0) -> list[SuppressionRecord]:
        with self._read() as conn:
            params = {"limit": limit, "offset": offset}
            rows = conn.execute(self._q["list_suppressions"], params).fetchall()
        return [SuppressionRecord(*row) for row in rows]

    def suppressed_among(self, emails: Sequence[str]) -> dict[str, SuppressionRecord]:
        keys = sorted({e.strip().lower() for e in emails if e.strip()})
        if not keys:
            return {}
        with self._read() as conn:
            params = {"emails": self._array(keys)}
            rows = conn.execute(self._q["suppressed_among"], params).fetchall()
        return {row[0]: SuppressionRecord(*row) for row in rows}


def _campaign(row: Row) -> CampaignRecord:
    return CampaignRecord(
        row[0], row[1], row[2], CampaignState(row[3]), row[4], row[5], json.loads(row[6]), *row[7:9]
    )


def _message(r: Row) -> MessageRecord:
    variables, state, uncertain = json.loads(r[4]), MessageState(r[5]), bool(r[12])
    fields = (r[6], r[7], r[8], r[9], r[10], r[11])  # attempts … updated_at
    return MessageRecord(r[0], r[1], r[2], r[3], variables, state, *fields, uncertain, r[13])
