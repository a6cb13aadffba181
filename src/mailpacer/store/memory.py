"""The store in plain Python objects, shipped for tests and rehearsals: nothing is written to disk.

:class:`MemoryStore` keeps the whole :class:`~mailpacer.store.Store` contract, checked by the same
contract suite as the SQL stores: the same transition checks (:mod:`mailpacer.core.states`, via
:mod:`.outcomes`), the same errors, JSON values stored as JSON text (so what comes back is a copy,
and what JSON cannot hold is refused the same way). One lock makes every operation atomic; several
stores made with :meth:`MemoryStore.connect` share one set of tables, like connections to one
database. ``open_store("memory:")`` opens a new, empty one. Sized for tests: an operation on a
campaign scans its messages.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import threading
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Self

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
    is_throttle,
)
from mailpacer.store.memory_routes import RouteTables, SharedRoutesMemory

M = MessageState


@dataclass
class _Campaign:
    """A campaigns row (options as JSON text)."""

    id: int
    key: str
    name: str
    state: CampaignState
    reason: str | None
    route_key: str
    options: str
    created_at: float
    updated_at: float

    def record(self) -> CampaignRecord:
        options = json.loads(self.options)
        return CampaignRecord(
            self.id, self.key, self.name, self.state, self.reason, self.route_key, options,
            self.created_at, self.updated_at,
        )  # fmt: skip


@dataclass
class _Message:
    """A messages row (variables as JSON text)."""

    id: int
    campaign_id: int
    row: int
    email: str
    variables: str
    updated_at: float
    state: MessageState = M.QUEUED
    attempts: int = 0
    first_attempt_at: float | None = None
    retry_at: float | None = None
    worker: str | None = None
    lease_until: float | None = None
    started_at: float | None = None
    last_verdict: str | None = None
    last_code: int | None = None
    last_text: str | None = None
    ever_uncertain: bool = False

    def record(self) -> MessageRecord:
        return MessageRecord(
            self.id, self.campaign_id, self.row, self.email, json.loads(self.variables),
            self.state, self.attempts, self.retry_at, self.last_verdict, self.last_code,
            self.last_text, self.updated_at, self.ever_uncertain, self.started_at,
        )  # fmt: skip

    def claimable(self, now: float) -> bool:
        due = self.retry_at is not None and self.retry_at <= now
        return self.state is M.QUEUED or (self.state is M.DEFERRED and due)


@dataclass
class _Tables:
    """Everything one in-memory database holds, and the lock its stores share."""

    lock: threading.RLock = field(default_factory=threading.RLock)
    ids: dict[str, Iterator[int]] = field(
        default_factory=lambda: {t: itertools.count(1) for t in ("c", "m", "a", "e")}
    )
    campaigns: dict[int, _Campaign] = field(default_factory=dict)
    messages: dict[int, _Message] = field(default_factory=dict)
    attempts: dict[int, list[AttemptRecord]] = field(default_factory=dict)  #: by message id
    routes: dict[str, str] = field(default_factory=dict)
    events: list[tuple[int, int | None, float, str, str]] = field(default_factory=list)
    suppressed: dict[str, SuppressionRecord] = field(default_factory=dict)  #: by lower address
    shared: RouteTables = field(default_factory=RouteTables)  #: a route's budget (0004)


class MemoryStore(SharedRoutesMemory):
    """The :class:`~mailpacer.store.Store` in memory; any thread may call it."""

    where = "memory"

    def __init__(self, tables: _Tables | None = None) -> None:
        self._tables = _Tables() if tables is None else tables
        self._closed = False

    def connect(self) -> MemoryStore:
        """Another store on the same tables (as another connection to one database would be)."""
        return MemoryStore(self._tables)

    def __repr__(self) -> str:
        t = self._tables
        closed = " closed" if self._closed else ""
        return f"<MemoryStore campaigns={len(t.campaigns)} messages={len(t.messages)}{closed}>"

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- suppression list ----------------------------------------------------------------
    def add_suppressions(self, emails: Sequence[str], *, reason: str, source: str) -> int:
        if source not in SUPPRESSION_SOURCES:
            raise StoreError(f"suppression source {source!r}: one of {SUPPRESSION_SOURCES}")
        now = time.time()
        with self._lock() as t:
            new = [k for k in sorted({e.strip().lower() for e in emails if e.strip()})]
            new = [k for k in new if k not in t.suppressed]
            for key in new:
                t.suppressed[key] = SuppressionRecord(key, reason, source, None, now)
            return len(new)

    def remove_suppressions(self, emails: Sequence[str]) -> int:
        with self._lock() as t:
            keys = {e.strip().lower() for e in emails if e.strip()}
            return sum(t.suppressed.pop(k, None) is not None for k in keys)

    def suppressions(self, *, limit: int = 1000, offset: int = 0) -> list[SuppressionRecord]:
        with self._lock() as t:
            ordered = sorted(t.suppressed.values(), key=lambda s: (s.created_at, s.email))
            return ordered[offset : offset + limit]

    def suppressed_among(self, emails: Sequence[str]) -> dict[str, SuppressionRecord]:
        with self._lock() as t:
            keys = {e.strip().lower() for e in emails if e.strip()}
            return {k: t.suppressed[k] for k in keys if k in t.suppressed}

    def close(self) -> None:
        self._closed = True

    @contextmanager
    def _lock(self) -> Iterator[_Tables]:
        """The tables, under the lock: one operation at a time, each atomic."""
        with self._tables.lock:
            if self._closed:
                raise StoreError("the store memory is closed")
            yield self._tables

    def _campaign(self, t: _Tables, campaign_id: int) -> _Campaign:
        found = t.campaigns.get(campaign_id)
        if found is None:
            raise NotFound(f"no campaign {campaign_id} in {self.where}")
        return found

    def _of(self, t: _Tables, campaign_id: int) -> list[_Message]:
        """A campaign's messages in row order."""
        found = [m for m in t.messages.values() if m.campaign_id == campaign_id]
        return sorted(found, key=lambda m: (m.row, m.id))

    # -- campaigns -----------------------------------------------------------------------
    def get_or_create_campaign(
        self, key: str, *, name: str, route_key: str, options: dict[str, Any]
    ) -> tuple[CampaignRecord, bool]:
        text = dump_json(options, "campaign options")
        with self._lock() as t:
            for c in t.campaigns.values():
                if c.key == key:
                    return c.record(), False
            now = time.time()
            c = _Campaign(next(t.ids["c"]), key, name, CampaignState.QUEUED, None, route_key,
                          text, now, now)  # fmt: skip
            t.campaigns[c.id] = c
            return c.record(), True

    def get_campaign(self, ref: int | str) -> CampaignRecord:
        with self._lock() as t:
            if isinstance(ref, str):
                for c in t.campaigns.values():
                    if c.key == ref:
                        return c.record()
                if not ref.isdigit():
                    raise NotFound(f"no campaign with key {ref!r} in {self.where}")
            return self._campaign(t, int(ref)).record()

    def list_campaigns(self) -> list[CampaignRecord]:
        with self._lock() as t:
            return [t.campaigns[cid].record() for cid in sorted(t.campaigns)]

    def set_campaign_state(
        self,
        campaign_id: int,
        state: CampaignState,
        reason: str | None = None,
        *,
        expected: Collection[CampaignState] | None = None,
    ) -> CampaignRecord:
        with self._lock() as t:
            c = self._campaign(t, campaign_id)
            if expected is not None and c.state not in expected:
                raise StateConflict(campaign_id, c.state, state, expected)
            if c.state is not state:
                check_campaign_transition(c.state, state)
            c.state, c.reason, c.updated_at = state, reason, time.time()
            return c.record()

    def update_campaign(
        self, campaign_id: int, *, route_key: str, options: dict[str, Any]
    ) -> CampaignRecord:
        text = dump_json(options, "campaign options")
        with self._lock() as t:
            c = self._campaign(t, campaign_id)
            c.route_key, c.options, c.updated_at = route_key, text, time.time()
            return c.record()

    def delete_campaign(self, campaign_id: int) -> None:
        with self._lock() as t:
            self._campaign(t, campaign_id)
            del t.campaigns[campaign_id]
            gone = [mid for mid, m in t.messages.items() if m.campaign_id == campaign_id]
            for mid in gone:
                del t.messages[mid]
                t.attempts.pop(mid, None)
            t.events[:] = [e for e in t.events if e[1] != campaign_id]
            for key, s in list(t.suppressed.items()):
                if s.campaign_id == campaign_id:  # as ON DELETE SET NULL does
                    t.suppressed[key] = dataclasses.replace(s, campaign_id=None)

    # -- messages ------------------------------------------------------------------------
    def add_messages(
        self, campaign_id: int, messages: Iterable[NewMessage], *, batch_size: int = 5000
    ) -> int:
        with self._lock() as t:
            self._campaign(t, campaign_id)
        inserted = 0
        source = iter(messages)
        while batch := list(itertools.islice(source, max(1, batch_size))):
            rows = [(m, dump_json(m.variables, f"variables of row {m.row}")) for m in batch]
            with self._lock() as t:
                now = time.time()
                present = {m.email for m in t.messages.values() if m.campaign_id == campaign_id}
                for new, variables in rows:
                    if new.email not in present:
                        present.add(new.email)
                        mid = next(t.ids["m"])
                        t.messages[mid] = _Message(
                            mid, campaign_id, new.row, new.email, variables, now
                        )
                        inserted += 1
        return inserted

    def claim(
        self, campaign_id: int, *, worker: str, limit: int, lease_seconds: float, now: float
    ) -> list[ClaimedMessage]:
        check_message_transition(M.QUEUED, M.SENDING)
        check_message_transition(M.DEFERRED, M.SENDING)
        if limit <= 0:
            return []
        with self._lock() as t:
            c = t.campaigns.get(campaign_id)
            if c is None or c.state is not CampaignState.RUNNING:
                return []
            picked = [m for m in self._of(t, campaign_id) if m.claimable(now)][:limit]
            claimed = []
            for m in picked:
                m.state, m.worker, m.lease_until = M.SENDING, worker, now + lease_seconds
                m.retry_at = m.started_at = None
                m.updated_at = now
                claimed.append(
                    ClaimedMessage(m.id, m.campaign_id, m.row, m.email, json.loads(m.variables),
                                   m.attempts, m.first_attempt_at, m.lease_until)
                )  # fmt: skip
            return claimed

    def _held(self, t: _Tables, worker: str, message_ids: Sequence[int]) -> list[_Message]:
        found = (t.messages.get(mid) for mid in message_ids)
        return [m for m in found if m and m.state is M.SENDING and m.worker == worker]

    def extend_leases(self, worker: str, message_ids: Sequence[int], lease_until: float) -> None:
        with self._lock() as t:
            for m in self._held(t, worker, message_ids):
                m.lease_until = lease_until

    def mark_started(self, worker: str, message_ids: Sequence[int], at: float) -> None:
        with self._lock() as t:
            for m in self._held(t, worker, message_ids):
                if m.started_at is None:
                    m.started_at = at

    def release(self, worker: str, message_ids: Sequence[int]) -> None:
        check_message_transition(M.SENDING, M.QUEUED)
        with self._lock() as t:
            now = time.time()
            for m in self._held(t, worker, message_ids):
                _requeue(m, now)

    def record(self, outcomes: Sequence[Outcome], *, worker: str | None = None) -> list[Outcome]:
        if not outcomes:
            return []
        with self._lock() as t:
            return self._apply(t, outcomes, worker)

    def _apply(
        self, t: _Tables, outcomes: Sequence[Outcome], worker: str | None = None
    ) -> list[Outcome]:
        """Check every outcome against the current states (nothing written if one is refused),
        then write them all in order."""
        current = {
            m.id: outcomes_mod.Current(m.campaign_id, m.state, m.worker)
            for m in (t.messages.get(o.message_id) for o in outcomes)
            if m is not None
        }
        planned = outcomes_mod.plan(current, outcomes, worker=worker)
        for row in planned.rows:
            m = t.messages[row["id"]]
            t.attempts.setdefault(m.id, []).append(
                AttemptRecord(next(t.ids["a"]), m.id, row["at"], row["verdict"], row["code"],
                              row["enhanced"], row["text"], row["route_key"])
            )  # fmt: skip
            m.state = MessageState(row["state"])
            m.attempts += row["counted"]
            if row["counted"] and m.first_attempt_at is None:
                m.first_attempt_at = row["at"]
            m.retry_at, m.worker, m.lease_until, m.started_at = row["retry_at"], None, None, None
            m.last_verdict, m.last_code, m.last_text = row["verdict"], row["code"], row["text"]
            m.ever_uncertain = m.ever_uncertain or bool(row["uncertain"])
            m.updated_at = row["at"]
            if is_hard_bounce(row["verdict"], row["enhanced"]):
                reason = " ".join(str(x) for x in (row["code"], row["enhanced"], row["text"]) if x)
                key = m.email.strip().lower()
                t.suppressed.setdefault(
                    key, SuppressionRecord(key, reason, "bounce", m.campaign_id, row["at"])
                )
        return planned.skipped

    def recover(
        self, campaign_id: int, *, now: float, resend: bool, is_alive: Callable[[str], bool]
    ) -> Recovery:
        with self._lock() as t:
            self._campaign(t, campaign_id)
            sending = [
                (m.id, m.worker or "", m.lease_until or 0.0, m.started_at)
                for m in sorted(self._of(t, campaign_id), key=lambda m: m.id)
                if m.state is M.SENDING
            ]
            lost = outcomes_mod.recovery(sending, now=now, resend=resend, is_alive=is_alive)
            for mid in lost.unstarted:
                _requeue(t.messages[mid], now)
            if lost.outcomes:
                self._apply(t, lost.outcomes)
        return Recovery(lost.uncertain, lost.unstarted)

    def retry(self, campaign_id: int, states: Collection[MessageState]) -> int:
        for state in states:
            check_message_transition(state, M.QUEUED)
        with self._lock() as t:
            self._campaign(t, campaign_id)
            now = time.time()
            chosen = [m for m in self._of(t, campaign_id) if m.state in states]
            for m in chosen:
                m.state, m.attempts, m.first_attempt_at, m.retry_at = M.QUEUED, 0, None, None
                m.updated_at = now
            return len(chosen)

    def cancel_pending(self, campaign_id: int) -> int:
        check_message_transition(M.QUEUED, M.CANCELLED)
        check_message_transition(M.DEFERRED, M.CANCELLED)
        with self._lock() as t:
            self._campaign(t, campaign_id)
            now = time.time()
            chosen = [m for m in self._of(t, campaign_id) if m.state in (M.QUEUED, M.DEFERRED)]
            for m in chosen:
                m.state, m.retry_at, m.updated_at = M.CANCELLED, None, now
            return len(chosen)

    # -- reading -------------------------------------------------------------------------
    def stats(self, campaign_id: int) -> CampaignStats:
        with self._lock() as t:
            self._campaign(t, campaign_id)
            counts = dict.fromkeys(MessageState, 0)
            mine = self._of(t, campaign_id)
            for m in mine:
                counts[m.state] += 1
            verdicts = [a.verdict for m in mine for a in t.attempts.get(m.id, ())]
            throttles = sum(map(is_throttle, verdicts))
            uncertain = sum(m.ever_uncertain for m in mine)
        return CampaignStats(counts, len(mine), len(verdicts), throttles, uncertain)

    def next_retry_at(self, campaign_id: int) -> float | None:
        with self._lock() as t:
            due = [
                m.retry_at
                for m in t.messages.values()
                if m.campaign_id == campaign_id and m.state is M.DEFERRED and m.retry_at is not None
            ]
        return min(due, default=None)

    def sent_by_route(self, campaign_id: int) -> dict[str, int]:
        with self._lock() as t:
            self._campaign(t, campaign_id)
            sent: dict[str, int] = {}
            for m in self._of(t, campaign_id):
                for a in t.attempts.get(m.id, ()):
                    if a.verdict == "accepted" and a.route is not None:
                        sent[a.route] = sent.get(a.route, 0) + 1
        return sent

    def messages(
        self,
        campaign_id: int,
        *,
        state: MessageState | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[MessageRecord]:
        with self._lock() as t:
            found = [m for m in self._of(t, campaign_id) if state is None or m.state is state]
            return [m.record() for m in found[offset : offset + limit]]

    def attempts(self, message_id: int) -> list[AttemptRecord]:
        with self._lock() as t:
            return list(t.attempts.get(message_id, ()))

    # -- routes and events ---------------------------------------------------------------
    def load_route_limits(self, route_key: str) -> dict[str, Any] | None:
        with self._lock() as t:
            text = t.routes.get(route_key)
        return None if text is None else dict(json.loads(text))

    def save_route_limits(self, route_key: str, limits: dict[str, Any]) -> None:
        text = dump_json(limits, "route limits")
        with self._lock() as t:
            t.routes[route_key] = text
            t.shared.versions[route_key] = t.shared.versions.get(route_key, 0) + 1

    def add_event(
        self, campaign_id: int | None, kind: str, data: dict[str, Any], *, at: float | None = None
    ) -> int:
        text = dump_json(data, f"{kind} event data")
        with self._lock() as t:
            if campaign_id is not None and campaign_id not in t.campaigns:
                raise StoreError(f"database {self.where}: an event for no campaign {campaign_id}")
            event_id = next(t.ids["e"])
            t.events.append((event_id, campaign_id, time.time() if at is None else at, kind, text))
            return event_id

    def events(
        self, campaign_id: int | None = None, *, after_id: int = 0, limit: int = 100
    ) -> list[EventRecord]:
        with self._lock() as t:
            found = [e for e in t.events if e[0] > after_id and campaign_id in (None, e[1])][:limit]
        return [EventRecord(*e[:4], json.loads(e[4])) for e in found]


def _requeue(m: _Message, now: float) -> None:
    """Back to ``queued`` with nothing recorded (a release, or a lease lost before it started)."""
    m.state, m.worker, m.lease_until, m.started_at, m.updated_at = M.QUEUED, None, None, None, now
