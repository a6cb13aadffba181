"""The embedded store: one SQLite file in WAL mode, created (with its folder) on first use.

Sync API over :mod:`sqlite3`; one connection guarded by a lock, so any thread may call it, one at a
time. Writes are ``BEGIN IMMEDIATE`` transactions, so several processes sharing the file never
claim the same message. SQL lives in ``sql/queries.sql``; sqlite3 errors become
:class:`~mailpacer.errors.StoreError` here and nowhere else.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import sqlite3
import threading
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from mailpacer.errors import NotFound, StoreError
from mailpacer.states import (
    CampaignState,
    MessageState,
    check_campaign_transition,
    check_message_transition,
)
from mailpacer.store import outcomes as outcomes_mod
from mailpacer.store.base import (
    AttemptRecord,
    CampaignRecord,
    CampaignStats,
    ClaimedMessage,
    EventRecord,
    MessageRecord,
    NewMessage,
    Outcome,
)
from mailpacer.store.migrate import migrate, schema_version
from mailpacer.store.sql import queries

M = MessageState
Row = tuple[Any, ...]


class SqliteStore:
    """The :class:`~mailpacer.store.Store` on a SQLite file."""

    def __init__(self, path: str | Path, *, busy_timeout: float = 30.0) -> None:
        self.path = Path(path)
        self.busy_timeout = busy_timeout
        self._q = queries()
        self._lock = threading.RLock()
        with _errors(self.path, busy_timeout):
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreError(f"cannot create the folder for {self.path}: {exc}") from exc
            conn = sqlite3.connect(
                self.path, timeout=busy_timeout, isolation_level=None, check_same_thread=False
            )
            try:
                conn.execute("PRAGMA journal_mode = WAL")
                conn.execute("PRAGMA synchronous = NORMAL")
                conn.execute("PRAGMA foreign_keys = ON")
                migrate(conn, str(self.path))
                self.schema_version = schema_version(conn)
            except BaseException:
                conn.close()
                raise
        self._conn: sqlite3.Connection | None = conn

    def __repr__(self) -> str:
        closed = " closed" if self._conn is None else ""
        return f"<SqliteStore path={self.path} schema={self.schema_version}{closed}>"

    def __enter__(self) -> SqliteStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- plumbing ------------------------------------------------------------------------
    @contextlib.contextmanager
    def _read(self, *, snapshot: bool = False) -> Iterator[sqlite3.Connection]:
        """The connection, under the lock; ``snapshot`` reads several statements consistently."""
        with self._lock, _errors(self.path, self.busy_timeout):
            conn = self._open_connection()
            if not snapshot:
                yield conn
                return
            conn.execute("BEGIN")
            try:
                yield conn
            finally:
                conn.execute("COMMIT")

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One ``BEGIN IMMEDIATE`` transaction: committed on success, rolled back on any error."""
        with self._lock, _errors(self.path, self.busy_timeout):
            conn = self._open_connection()
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def _open_connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StoreError(f"the store {self.path} is closed")
        return self._conn

    def _campaign_row(self, conn: sqlite3.Connection, campaign_id: int) -> CampaignRecord:
        row = conn.execute(self._q["campaign_by_id"], {"id": campaign_id}).fetchone()
        if row is None:
            raise NotFound(f"no campaign {campaign_id} in {self.path}")
        return _campaign(row)

    # -- campaigns -----------------------------------------------------------------------
    def get_or_create_campaign(
        self, key: str, *, name: str, route_key: str, options: dict[str, Any]
    ) -> tuple[CampaignRecord, bool]:
        params = {
            "key": key,
            "name": name,
            "route_key": route_key,
            "options": _dump(options, "campaign options"),
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
                    raise NotFound(f"no campaign with key {ref!r} in {self.path}")
            return self._campaign_row(conn, int(ref))

    def list_campaigns(self) -> list[CampaignRecord]:
        with self._read() as conn:
            return [_campaign(row) for row in conn.execute(self._q["list_campaigns"])]

    def set_campaign_state(
        self, campaign_id: int, state: CampaignState, reason: str | None = None
    ) -> CampaignRecord:
        with self._write() as conn:
            current = self._campaign_row(conn, campaign_id)
            if current.state is not state:
                check_campaign_transition(current.state, state)
            old, now = current.state.value, time.time()
            params = dict(id=campaign_id, state=state.value, old=old, reason=reason, now=now)
            conn.execute(self._q["update_campaign_state"], params)
            return self._campaign_row(conn, campaign_id)

    # -- messages ------------------------------------------------------------------------
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
                    variables=_dump(m.variables, f"variables of row {m.row}"),
                )
                for m in batch
            ]
            with self._write() as conn:
                before = conn.total_changes
                conn.executemany(self._q["insert_message"], rows)
                inserted += conn.total_changes - before
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
        with self._write() as conn:
            rows = conn.execute(self._q["claim_messages"], params).fetchall()
        rows.sort(key=lambda r: (r[2], r[0]))  # RETURNING has no order
        return [ClaimedMessage(r[0], r[1], r[2], r[3], json.loads(r[4]), *r[5:8]) for r in rows]

    def extend_leases(self, worker: str, message_ids: Sequence[int], lease_until: float) -> None:
        if not message_ids:
            return
        params = dict(worker=worker, ids=json.dumps(list(message_ids)), lease_until=lease_until)
        with self._write() as conn:
            conn.execute(self._q["extend_leases"], params)

    def release(self, worker: str, message_ids: Sequence[int]) -> None:
        check_message_transition(M.SENDING, M.QUEUED)
        if not message_ids:
            return
        params = dict(worker=worker, ids=json.dumps(list(message_ids)), now=time.time())
        with self._write() as conn:
            conn.execute(self._q["release_messages"], params)

    def record(self, outcomes: Sequence[Outcome]) -> None:
        if not outcomes:
            return
        with self._write() as conn:
            self._apply(conn, outcomes)

    def _apply(self, conn: sqlite3.Connection, outcomes: Sequence[Outcome]) -> None:
        """Check every outcome against the current states, then write them all (in order)."""
        ids = json.dumps(sorted({o.message_id for o in outcomes}))
        current = {
            row[0]: (row[1], MessageState(row[2]))
            for row in conn.execute(self._q["message_states"], {"ids": ids})
        }
        rows = outcomes_mod.plan(current, outcomes)
        conn.executemany(self._q["insert_attempt"], rows)
        changed = conn.executemany(self._q["apply_outcome"], rows).rowcount
        if changed != len(rows):  # cannot happen inside one IMMEDIATE transaction
            raise StoreError(f"{len(rows) - changed} outcome(s) found their message changed")

    def recover(
        self, campaign_id: int, *, now: float, resend: bool, is_alive: Callable[[str], bool]
    ) -> list[int]:
        with self._write() as conn:
            self._campaign_row(conn, campaign_id)
            params = {"campaign_id": campaign_id}
            sending = conn.execute(self._q["sending_messages"], params).fetchall()
            outcomes = outcomes_mod.recovery(sending, now=now, resend=resend, is_alive=is_alive)
            if outcomes:
                self._apply(conn, outcomes)
        return sorted({o.message_id for o in outcomes})

    def retry(self, campaign_id: int, states: Collection[MessageState]) -> int:
        for state in states:
            check_message_transition(state, M.QUEUED)
        params = {
            "campaign_id": campaign_id,
            "states": json.dumps(sorted(s.value for s in states)),
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
        params = {"campaign_id": campaign_id}
        with self._read(snapshot=True) as conn:
            self._campaign_row(conn, campaign_id)
            counts = dict.fromkeys(MessageState, 0)
            for state, count in conn.execute(self._q["state_counts"], params):
                counts[MessageState(state)] = count
            attempts, throttles = conn.execute(self._q["attempt_counts"], params).fetchone()
            uncertain = conn.execute(self._q["uncertain_ever"], params).fetchone()[0]
        return CampaignStats(counts, sum(counts.values()), attempts, throttles, uncertain)

    def next_retry_at(self, campaign_id: int) -> float | None:
        with self._read() as conn:
            row = conn.execute(self._q["next_retry_at"], {"campaign_id": campaign_id}).fetchone()
        return None if row[0] is None else float(row[0])

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
        params = {"key": route_key, "limits": _dump(limits, "route limits"), "now": time.time()}
        with self._write() as conn:
            conn.execute(self._q["save_route_limits"], params)

    def add_event(
        self, campaign_id: int | None, kind: str, data: dict[str, Any], *, at: float | None = None
    ) -> int:
        params = {
            "campaign_id": campaign_id,
            "at": time.time() if at is None else at,
            "kind": kind,
            "data": _dump(data, f"{kind} event data"),
        }
        with self._write() as conn:
            event_id = conn.execute(self._q["insert_event"], params).lastrowid
        assert event_id is not None
        return event_id

    def events(
        self, campaign_id: int | None = None, *, after_id: int = 0, limit: int = 100
    ) -> list[EventRecord]:
        params = {"campaign_id": campaign_id, "after_id": after_id, "limit": limit}
        name = "all_events" if campaign_id is None else "campaign_events"
        with self._read() as conn:
            rows = conn.execute(self._q[name], params).fetchall()
        return [EventRecord(r[0], r[1], r[2], r[3], json.loads(r[4])) for r in rows]

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                conn, self._conn = self._conn, None
                with _errors(self.path, self.busy_timeout):
                    conn.close()


def _campaign(row: Row) -> CampaignRecord:
    return CampaignRecord(
        row[0], row[1], row[2], CampaignState(row[3]), row[4], row[5], json.loads(row[6]), *row[7:9]
    )


def _message(r: Row) -> MessageRecord:
    variables, state, uncertain = json.loads(r[4]), MessageState(r[5]), bool(r[12])
    return MessageRecord(
        r[0], r[1], r[2], r[3], variables, state, r[6], r[7], r[8], r[9], r[10], r[11], uncertain
    )


def _dump(value: Any, what: str) -> str:
    try:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise StoreError(f"{what} cannot be stored as JSON: {exc}") from exc


@contextlib.contextmanager
def _errors(path: Path, busy_timeout: float) -> Iterator[None]:
    """Translate sqlite3 errors (the only place that does) into :class:`StoreError`."""
    try:
        yield
    except sqlite3.Error as exc:
        text = str(exc)
        if "not a database" in text or "malformed" in text:
            message = f"{path} is not a mailpacer database (or it is damaged): {text}"
        elif "locked" in text or "busy" in text:
            message = f"{path} is busy: another process held it for more than {busy_timeout:g} s"
        elif "unable to open" in text:
            message = f"cannot open the database {path}: {text}"
        else:
            message = f"database {path}: {text}"
        raise StoreError(message) from exc
