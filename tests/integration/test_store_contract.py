"""The store contract: every implementation (memory, SQLite, PostgreSQL: the ``backend`` fixture)
behaves the same. Real databases, a fresh one per test, never mocks. Several workers on one
database: test_store_workers.py; crash accounting and state races: test_store_races.py."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Protocol

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict

from mailpacer.core.errors import InvalidTransition, NotFound, StoreError
from mailpacer.core.states import CampaignState, MessageState
from mailpacer.store import (
    CampaignRecord,
    ClaimedMessage,
    NewMessage,
    Outcome,
    SqliteStore,
    Store,
)
from mailpacer.store.postgres import PostgresStore
from mailpacer.store.sql import migrations

M = MessageState
C = CampaignState
NOW = 1_000_000.0

# -- helpers (the backend and store fixtures are in conftest.py) ---------------------------


class Backend(Protocol):
    """What the ``backend`` fixture gives: a fresh database, opened as often as needed."""

    name: str
    target: str | Path  #: what open_store is given: a file path or a postgresql:// URL

    def open(self) -> Store:
        """A new store (a new connection) on the same database."""
        ...


def campaign(
    store: Store, key: str = "c1", messages: int = 0, *, running: bool = True
) -> CampaignRecord:
    """A campaign with ``messages`` recipients u1@example.org … in rows 1..n, ``running`` (so its
    messages can be claimed) unless told otherwise."""
    record, _ = store.get_or_create_campaign(
        key, name=f"campaign {key}", route_key="smtp://127.0.0.1:2525", options={"from": "a@b.c"}
    )
    store.add_messages(record.id, recipients(messages))
    if running:
        record = store.set_campaign_state(record.id, C.RUNNING)
    return record


def recipients(n: int, start: int = 1) -> Iterator[NewMessage]:
    """Recipients ``u{row}@example.org`` with one variable each."""
    for row in range(start, start + n):
        yield NewMessage(row, f"u{row}@example.org", {"name": f"User {row}", "row": str(row)})


def claim(store: Store, cid: int, limit: int = 100, worker: str = "w1", now: float = NOW) -> Any:
    """Claim with a 60 s lease."""
    return store.claim(cid, worker=worker, limit=limit, lease_seconds=60.0, now=now)


def out(
    message: ClaimedMessage | int, state: MessageState, verdict: str = "accepted", **kw: Any
) -> Outcome:
    """An outcome with a plausible reply."""
    mid = message if isinstance(message, int) else message.id
    fields: dict[str, Any] = {
        "code": 250,
        "enhanced": "2.0.0",
        "text": "2.0.0 Ok: queued",
        "at": NOW,
    }
    fields.update(kw)
    return Outcome(mid, state, verdict, **fields)


def states(store: Store, cid: int) -> dict[int, MessageState]:
    """Message id → state."""
    return {m.id: m.state for m in store.messages(cid, limit=10_000)}


# -- campaigns ------------------------------------------------------------------------------


def test_same_key_continues_the_campaign(store: Store) -> None:
    """A second get_or_create with the same key returns the existing campaign, not a new one."""
    first, created = store.get_or_create_campaign(
        "k", name="Spring", route_key="r", options={"max_rate": 60, "名": "值"}
    )
    again, created_again = store.get_or_create_campaign(
        "k", name="other", route_key="other", options={}
    )
    assert created and not created_again
    assert again == first
    assert (first.state, first.reason, first.options) == (
        C.QUEUED,
        None,
        {"max_rate": 60, "名": "值"},
    )
    assert store.list_campaigns() == [first]


def test_update_campaign_replaces_route_and_settings_only(store: Store) -> None:
    """A campaign re-sent through another route keeps its key, state and messages; its route
    and stored settings are the new ones. An unknown campaign is NotFound."""
    first, _ = store.get_or_create_campaign("k", name="n", route_key="old", options={"a": 1})
    store.add_messages(first.id, recipients(3))
    store.set_campaign_state(first.id, C.PAUSED, "route failed")
    updated = store.update_campaign(first.id, route_key="new", options={"a": 2, "b": "é"})
    assert (updated.key, updated.state, updated.reason) == ("k", C.PAUSED, "route failed")
    assert (updated.route_key, updated.options) == ("new", {"a": 2, "b": "é"})
    assert store.get_campaign(first.id) == updated
    assert store.stats(first.id).total == 3
    with pytest.raises(NotFound):
        store.update_campaign(999, route_key="x", options={})


def test_delete_campaign_removes_it_with_its_messages(store: Store) -> None:
    """Deleting a campaign removes it, its messages, attempts and events; other campaigns stay;
    the suppression list stays (its entry no longer names the campaign)."""
    gone, _ = store.get_or_create_campaign("gone", name="g", route_key="r", options={})
    kept, _ = store.get_or_create_campaign("kept", name="k", route_key="r", options={})
    store.add_messages(gone.id, recipients(2))
    store.add_messages(kept.id, recipients(2))
    store.set_campaign_state(gone.id, C.RUNNING)
    [m, _] = claim(store, gone.id)
    store.record([out(m, M.FAILED, "recipient-rejected", code=550, enhanced="5.1.1")])
    store.add_event(gone.id, "state", {"state": "running"})
    store.delete_campaign(gone.id)
    assert [c.id for c in store.list_campaigns()] == [kept.id]
    assert store.events(gone.id) == []
    assert store.attempts(m.id) == []
    with pytest.raises(NotFound):
        store.get_campaign(gone.id)
    with pytest.raises(NotFound):
        store.delete_campaign(gone.id)
    assert store.stats(kept.id).total == 2
    [bounced] = store.suppressions()
    assert bounced.email == m.email and bounced.campaign_id is None


def test_campaign_found_by_id_key_or_digits(store: Store) -> None:
    """get_campaign takes an id, a key, or an id written as text; anything else is NotFound."""
    record = campaign(store, "spring-2025", running=False)
    assert store.get_campaign(record.id) == record
    assert store.get_campaign("spring-2025") == record
    assert store.get_campaign(str(record.id)) == record
    with pytest.raises(NotFound, match="nope"):
        store.get_campaign("nope")
    with pytest.raises(NotFound):
        store.get_campaign(999)


def test_campaign_transitions_are_checked(store: Store) -> None:
    """Allowed changes are written with the reason; a refused one raises and changes nothing."""
    record = campaign(store, running=False)
    running = store.set_campaign_state(record.id, C.RUNNING)
    assert running.state is C.RUNNING and running.updated_at >= record.updated_at
    waiting = store.set_campaign_state(record.id, C.WAITING, "quota used up")
    assert (waiting.state, waiting.reason) == (C.WAITING, "quota used up")
    store.set_campaign_state(record.id, C.RUNNING)
    store.set_campaign_state(record.id, C.DONE)
    with pytest.raises(InvalidTransition, match="'done' to 'waiting'"):
        store.set_campaign_state(record.id, C.WAITING, "never")
    assert store.get_campaign(record.id).state is C.DONE


def test_same_campaign_state_again_only_updates_the_reason(store: Store) -> None:
    """Setting the current state again is no error; it only replaces the reason."""
    record = campaign(store)
    store.set_campaign_state(record.id, C.PAUSED, "paused by user")
    again = store.set_campaign_state(record.id, C.PAUSED, "route failed: 535 auth")
    assert (again.state, again.reason) == (C.PAUSED, "route failed: 535 auth")


# -- messages -------------------------------------------------------------------------------


def test_add_messages_is_idempotent_per_email(store: Store) -> None:
    """Re-adding the same recipients inserts only new emails and leaves existing rows untouched."""
    record = campaign(store)
    assert store.add_messages(record.id, recipients(10), batch_size=3) == 10
    changed = [NewMessage(1, "u1@example.org", {"name": "changed"})]
    assert store.add_messages(record.id, [*changed, *recipients(5, start=9)], batch_size=4) == 3
    listed = store.messages(record.id, limit=100)
    assert [m.row for m in listed] == list(range(1, 14))
    assert listed[0].variables == {"name": "User 1", "row": "1"}
    assert all(m.state is M.QUEUED and m.attempts == 0 for m in listed)


def test_add_messages_streams_in_batches(store: Store) -> None:
    """A generator is consumed batch by batch: earlier batches are committed before it ends."""
    record = campaign(store)
    seen_committed: list[int] = []

    def feed() -> Iterator[NewMessage]:
        for message in recipients(25):
            if message.row == 21:
                seen_committed.append(store.stats(record.id).total)
            yield message

    assert store.add_messages(record.id, feed(), batch_size=10) == 25
    assert seen_committed == [20]


def test_add_messages_to_a_missing_campaign(store: Store) -> None:
    """Adding to a campaign that does not exist is NotFound, not a database error."""
    with pytest.raises(NotFound):
        store.add_messages(42, recipients(1))


def test_messages_listing_filters_and_pages(store: Store) -> None:
    """messages() is in row order, filtered by state, with limit and offset."""
    record = campaign(store, messages=6)
    claimed = claim(store, record.id, limit=2)
    store.record([out(claimed[0], M.SENT), out(claimed[1], M.FAILED, "recipient-rejected")])
    assert [m.row for m in store.messages(record.id, limit=2, offset=1)] == [2, 3]
    assert [m.row for m in store.messages(record.id, state=M.QUEUED)] == [3, 4, 5, 6]
    assert [m.row for m in store.messages(record.id, state=M.FAILED)] == [2]
    assert store.messages(record.id, state=M.DEFERRED) == []


# -- claims and leases ----------------------------------------------------------------------


def test_claim_takes_queued_messages_in_row_order_under_a_lease(store: Store) -> None:
    """Claimed messages carry their variables and lease, and are not claimed twice."""
    record = campaign(store)
    store.add_messages(record.id, [NewMessage(r, f"r{r}@x.org", {}) for r in (5, 3, 9, 1)])
    first = claim(store, record.id, limit=3)
    assert [m.row for m in first] == [1, 3, 5]
    assert all(m.lease_until == NOW + 60.0 and m.attempts == 0 for m in first)
    assert first[0].first_attempt_at is None and first[0].campaign_id == record.id
    rest = claim(store, record.id, limit=3, worker="w2")
    assert [m.row for m in rest] == [9]
    assert claim(store, record.id) == []
    assert store.stats(record.id).counts[M.SENDING] == 4
    assert claim(store, record.id, limit=0) == []


def test_deferred_messages_are_claimed_only_when_due(store: Store) -> None:
    """A deferred message comes back (with its attempt count) once retry_at has passed."""
    record = campaign(store, messages=2)
    first = claim(store, record.id)
    store.record(
        [
            out(first[0], M.DEFERRED, "transient", code=451, text="try later", retry_at=NOW + 30),
            out(first[1], M.DEFERRED, "greylist", code=451, text="greylisted", retry_at=NOW + 90),
        ]
    )
    assert store.next_retry_at(record.id) == NOW + 30
    assert claim(store, record.id, now=NOW + 29.9) == []
    due = claim(store, record.id, now=NOW + 30)
    assert [(m.row, m.attempts, m.first_attempt_at) for m in due] == [(1, 1, NOW)]
    assert store.next_retry_at(record.id) == NOW + 90
    assert [m.row for m in claim(store, record.id, now=NOW + 500)] == [2]
    assert store.next_retry_at(record.id) is None


def test_release_requeues_without_an_attempt(store: Store) -> None:
    """Released messages are queued again, no attempt written; another worker's are untouched."""
    record = campaign(store, messages=4)
    mine = claim(store, record.id, limit=2, worker="w1")
    theirs = claim(store, record.id, limit=2, worker="w2")
    store.release("w1", [m.id for m in mine + theirs])
    now = states(store, record.id)
    assert [now[m.id] for m in mine] == [M.QUEUED, M.QUEUED]
    assert [now[m.id] for m in theirs] == [M.SENDING, M.SENDING]
    assert store.stats(record.id).attempts == 0
    assert store.attempts(mine[0].id) == []


def test_extended_leases_survive_recovery(store: Store) -> None:
    """A worker that extends its leases keeps its messages; a worker that does not loses them."""
    record = campaign(store, messages=4)
    kept = claim(store, record.id, limit=2, worker="w1")
    lost = claim(store, record.id, limit=2, worker="w2")
    store.extend_leases("w1", [m.id for m in kept], NOW + 600)
    store.extend_leases("w1", [m.id for m in lost], NOW + 600)  # not w1's: ignored
    store.mark_started("w2", [m.id for m in lost], NOW + 1)
    recovered = store.recover(record.id, now=NOW + 120, resend=False, is_alive=lambda w: True)
    assert (recovered.uncertain, recovered.unstarted) == (sorted(m.id for m in lost), [])
    assert {states(store, record.id)[m.id] for m in kept} == {M.SENDING}


# -- outcomes -------------------------------------------------------------------------------


def test_every_outcome_from_sending(store: Store) -> None:
    """sent / failed / deferred / uncertain count an attempt; a throttle requeue does not."""
    record = campaign(store, messages=5)
    c = claim(store, record.id)
    store.record(
        [
            out(c[0], M.SENT),
            out(c[1], M.FAILED, "recipient-rejected", code=550, enhanced="5.1.1", text="no user"),
            out(c[2], M.DEFERRED, "transient", code=421, enhanced="4.4.2", text="timeout",
                retry_at=NOW + 60),
            out(c[3], M.UNCERTAIN, "ambiguous", code=None, enhanced=None, text="no reply after ."),
            out(c[4], M.QUEUED, "throttle-rate", code=450, enhanced="4.7.1", text="slow down",
                count_attempt=False),
        ]
    )  # fmt: skip
    by_id = {m.id: m for m in store.messages(record.id)}
    got = [(by_id[m.id].state, by_id[m.id].attempts) for m in c]
    assert got == [(M.SENT, 1), (M.FAILED, 1), (M.DEFERRED, 1), (M.UNCERTAIN, 1), (M.QUEUED, 0)]
    failed = by_id[c[1].id]
    assert (failed.last_verdict, failed.last_code, failed.last_text) == (
        "recipient-rejected",
        550,
        "no user",
    )
    assert by_id[c[2].id].retry_at == NOW + 60 and by_id[c[0].id].retry_at is None
    assert [m.ever_uncertain for m in by_id.values()] == [False, False, False, True, False]
    again = claim(store, record.id, now=NOW + 1)
    assert [(m.id, m.first_attempt_at) for m in again] == [(c[4].id, None)]


def test_attempt_history_keeps_every_reply(store: Store) -> None:
    """Each outcome writes one attempt row with verdict, codes and the full reply text."""
    record = campaign(store, messages=1)
    long_reply = "4.7.0 Try again later, closing connection.\n" * 20 + "送信制限 (quota)"
    (m,) = claim(store, record.id)
    store.record([out(m, M.QUEUED, "throttle-connections", code=421, enhanced="4.7.0",
                      text=long_reply, count_attempt=False)])  # fmt: skip
    (m,) = claim(store, record.id, now=NOW + 1)
    store.record([out(m, M.DEFERRED, "greylist", code=451, enhanced="4.7.1", text="greylisted",
                      at=NOW + 2, retry_at=NOW + 300)])  # fmt: skip
    (m,) = claim(store, record.id, now=NOW + 400)
    store.record([out(m, M.SENT, at=NOW + 401)])
    history = store.attempts(m.id)
    assert [(a.verdict, a.code, a.enhanced) for a in history] == [
        ("throttle-connections", 421, "4.7.0"),
        ("greylist", 451, "4.7.1"),
        ("accepted", 250, "2.0.0"),
    ]
    assert history[0].text == long_reply
    assert [a.at for a in history] == [NOW, NOW + 2, NOW + 401]
    assert m.attempts == 1 and m.first_attempt_at == NOW + 2


def test_attempts_remember_their_route_and_sent_is_counted_per_route(store: Store) -> None:
    """Each attempt keeps the key of the route it went through; ``sent_by_route`` counts the
    accepted ones per route (a throttle on one route, then sent through another, counts once,
    for the other; attempts without a route are left out)."""
    a, b = "smtp://127.0.0.1:2525", "smtp://127.0.0.1:2526"
    record = campaign(store, messages=4)
    m1, m2, m3, m4 = claim(store, record.id)
    store.record([
        out(m1, M.QUEUED, "throttle-rate", code=450, count_attempt=False, route=a),
        out(m2, M.SENT, route=b),
        out(m3, M.SENT, route=a),
        out(m4, M.SENT),
    ])  # fmt: skip
    (again,) = claim(store, record.id, now=NOW + 1)
    store.record([out(again, M.SENT, at=NOW + 2, route=b)])
    assert [(x.verdict, x.route) for x in store.attempts(m1.id)] == [
        ("throttle-rate", a),
        ("accepted", b),
    ]
    assert store.attempts(m4.id)[0].route is None
    assert store.sent_by_route(record.id) == {a: 1, b: 2}
    assert store.sent_by_route(campaign(store, "c2").id) == {}
    with pytest.raises(NotFound):
        store.sent_by_route(999)


def test_several_outcomes_for_one_message_apply_in_order(store: Store) -> None:
    """uncertain then queued (resend) in one batch: both checked in sequence, both recorded."""
    record = campaign(store, messages=1)
    (m,) = claim(store, record.id)
    store.record(
        [
            out(m, M.UNCERTAIN, "ambiguous", code=None, text="connection lost after ."),
            out(m, M.QUEUED, "resend", code=None, text="resent", count_attempt=False),
        ]
    )
    (listed,) = store.messages(record.id)
    assert (listed.state, listed.attempts, listed.ever_uncertain) == (M.QUEUED, 1, True)
    assert [a.verdict for a in store.attempts(m.id)] == ["ambiguous", "resend"]


@pytest.mark.parametrize(
    ("bad", "error"),
    [
        (lambda c: out(c[2].id, M.SENT), InvalidTransition),  # sent → sent
        (lambda c: out(c[1].id, M.CANCELLED), InvalidTransition),  # sending → cancelled
        (lambda c: out(c[1].id, M.DEFERRED, "transient", retry_at=None), StoreError),
        (lambda c: out(c[1].id, M.SENDING), StoreError),
        (lambda c: out(999_999, M.SENT), NotFound),
    ],
    ids=["sent-again", "sending-to-cancelled", "deferred-without-time", "to-sending", "unknown"],
)
def test_a_refused_outcome_rolls_back_the_whole_batch(
    store: Store, bad: Callable[[list[ClaimedMessage]], Outcome], error: type[Exception]
) -> None:
    """One refused outcome raises and nothing of its batch is written (states, attempts)."""
    record = campaign(store, messages=3)
    c = claim(store, record.id)
    store.record([out(c[2], M.SENT)])
    before = (states(store, record.id), store.stats(record.id))
    with pytest.raises(error):
        store.record([out(c[0], M.SENT), out(c[1], M.FAILED, "message-rejected"), bad(c)])
    assert (states(store, record.id), store.stats(record.id)) == before
    assert store.attempts(c[0].id) == []


# -- stats, recovery, retry, cancel ----------------------------------------------------------


def test_stats_count_states_attempts_throttles_and_uncertain(store: Store) -> None:
    """Every state is present; throttles are throttle-*/quota attempt rows; uncertain is ever."""
    record = campaign(store, messages=6)
    empty = store.stats(record.id)
    assert empty.counts == {**dict.fromkeys(M, 0), M.QUEUED: 6} and empty.total == 6
    c = claim(store, record.id, limit=4)
    store.record(
        [
            out(c[0], M.QUEUED, "throttle-connections", code=421, count_attempt=False),
            out(c[1], M.QUEUED, "quota", code=550, enhanced="5.4.5", count_attempt=False),
            out(c[2], M.UNCERTAIN, "ambiguous", code=None),
            out(c[2], M.QUEUED, "resend", code=None, count_attempt=False),
            out(c[3], M.SENT),
        ]
    )
    stats = store.stats(record.id)
    assert stats.counts == {**dict.fromkeys(M, 0), M.QUEUED: 5, M.SENT: 1}
    assert (stats.total, stats.attempts, stats.throttles, stats.uncertain_ever) == (6, 5, 2, 1)
    with pytest.raises(NotFound):
        store.stats(record.id + 1)


@pytest.mark.parametrize("resend", [True, False])
def test_recover_expired_leases(store: Store, resend: bool) -> None:
    """Expired leases of started messages become uncertain (an uncounted lease-expired attempt),
    then queued again under resend; the unstarted one goes back to queued with nothing
    recorded."""
    record = campaign(store, messages=4)
    c = claim(store, record.id, limit=3)
    store.mark_started("w1", [c[0].id, c[1].id], NOW + 1)
    recovered = store.recover(record.id, now=NOW + 61, resend=resend, is_alive=lambda w: True)
    assert (recovered.uncertain, recovered.unstarted) == ([c[0].id, c[1].id], [c[2].id])
    expected = M.QUEUED if resend else M.UNCERTAIN
    listed = store.messages(record.id)
    assert [(m.state, m.ever_uncertain, m.attempts, m.started_at) for m in listed[:3]] == [
        (expected, True, 0, None),
        (expected, True, 0, None),
        (M.QUEUED, False, 0, None),
    ]
    verdicts = [a.verdict for a in store.attempts(c[0].id)]
    assert verdicts == (["lease-expired", "resend"] if resend else ["lease-expired"])
    assert "w1" in store.attempts(c[0].id)[0].text
    assert store.attempts(c[2].id) == []
    stats = store.stats(record.id)
    assert (stats.uncertain_ever, stats.attempts) == (2, 4 if resend else 2)
    again = store.recover(record.id, now=NOW + 61, resend=resend, is_alive=lambda w: True)
    assert (again.uncertain, again.unstarted, bool(again)) == ([], [], False)


def test_recover_takes_a_dead_workers_messages_before_their_lease_ends(store: Store) -> None:
    """A worker that is gone loses its messages at once; a live one with a lease keeps them."""
    record = campaign(store, messages=4)
    dead = claim(store, record.id, limit=2, worker="host:1:dead")
    alive = claim(store, record.id, limit=2, worker="host:2:alive")
    store.mark_started("host:1:dead", [dead[0].id], NOW)
    asked: list[str] = []

    def is_alive(worker: str) -> bool:
        asked.append(worker)
        return worker.endswith("alive")

    recovered = store.recover(record.id, now=NOW + 1, resend=True, is_alive=is_alive)
    assert (recovered.uncertain, recovered.unstarted) == ([dead[0].id], [dead[1].id])
    now = states(store, record.id)
    assert [now[m.id] for m in dead + alive] == [M.QUEUED, M.QUEUED, M.SENDING, M.SENDING]
    assert sorted(asked) == ["host:1:dead", "host:2:alive"]  # once per worker


def test_retry_requeues_with_a_fresh_attempt_counter(store: Store) -> None:
    """retry() moves failed/uncertain/cancelled back to queued; counters reset, history kept."""
    record = campaign(store, messages=4)
    c = claim(store, record.id, limit=3)
    store.record(
        [
            out(c[0], M.FAILED, "recipient-rejected", code=550),
            out(c[1], M.UNCERTAIN, "ambiguous", code=None),
            out(c[2], M.SENT),
        ]
    )
    store.cancel_pending(record.id)
    assert store.retry(record.id, {M.FAILED}) == 1
    listed = {m.id: m for m in store.messages(record.id)}
    assert (listed[c[0].id].state, listed[c[0].id].attempts) == (M.QUEUED, 0)
    assert len(store.attempts(c[0].id)) == 1
    assert store.retry(record.id, [M.UNCERTAIN, M.CANCELLED]) == 2
    (again,) = [m for m in claim(store, record.id) if m.id == c[0].id]
    assert (again.attempts, again.first_attempt_at) == (0, None)
    with pytest.raises(InvalidTransition):
        store.retry(record.id, {M.SENT})
    assert store.retry(record.id, []) == 0


def test_cancel_pending_leaves_in_flight_messages_alone(store: Store) -> None:
    """Queued and deferred messages are cancelled; sending ones finish and are recorded."""
    record = campaign(store, messages=4)
    c = claim(store, record.id, limit=2)
    store.record([out(c[0], M.DEFERRED, "transient", code=451, retry_at=NOW + 10)])
    assert store.cancel_pending(record.id) == 3
    assert store.stats(record.id).counts[M.CANCELLED] == 3
    assert store.next_retry_at(record.id) is None
    store.record([out(c[1], M.SENT)])
    assert claim(store, record.id, now=NOW + 100) == []
    assert store.cancel_pending(record.id) == 0


# -- routes, events, lifecycle --------------------------------------------------------------


def test_route_limits_persist_across_reopen(backend: Backend) -> None:
    """Learned limits are kept per route and survive closing and reopening the store."""
    first = backend.open()
    assert first.load_route_limits("smtp://mx:25") is None
    first.save_route_limits("smtp://mx:25", {"connections": 3, "rate": 2.5})
    first.save_route_limits("smtp://mx:25", {"connections": 2, "rate": 1.9, "per_connection": 100})
    first.save_route_limits("smtps://other:465", {"connections": 1})
    first.close()
    second = backend.open()
    assert second.load_route_limits("smtp://mx:25") == {
        "connections": 2,
        "rate": 1.9,
        "per_connection": 100,
    }
    assert second.load_route_limits("smtps://other:465") == {"connections": 1}


def test_events_are_kept_in_order_and_followable(store: Store) -> None:
    """Events come back oldest first, per campaign or all, after a given id."""
    a, b = campaign(store, "a"), campaign(store, "b")
    ids = [
        store.add_event(a.id, "state", {"state": "running"}, at=NOW),
        store.add_event(b.id, "state", {"state": "paused", "reason": "暂停"}),
        store.add_event(None, "limits", {"connections": 2}),
        store.add_event(a.id, "finished", {"sent": 10}),
    ]
    assert ids == sorted(ids)
    assert [e.kind for e in store.events()] == ["state", "state", "limits", "finished"]
    only_a = store.events(a.id)
    assert [(e.id, e.at, e.data) for e in only_a[:1]] == [(ids[0], NOW, {"state": "running"})]
    assert [e.id for e in store.events(a.id, after_id=ids[0])] == [ids[3]]
    assert [e.id for e in store.events(after_id=ids[0], limit=2)] == ids[1:3]
    assert store.events(b.id)[0].data == {"state": "paused", "reason": "暂停"}


def test_the_store_can_be_used_from_another_thread(store: Store) -> None:
    """The engine's thread and an HTTP thread may both call the store (one at a time)."""
    record = campaign(store, messages=3)
    result: list[int] = []
    thread = threading.Thread(target=lambda: result.append(len(claim(store, record.id))))
    thread.start()
    thread.join(timeout=30)
    assert result == [3]


def test_a_closed_store_says_so(store: Store) -> None:
    """After close() every call raises a clear StoreError; closing twice is fine."""
    store.close()
    store.close()
    with pytest.raises(StoreError, match="closed"):
        store.list_campaigns()


def test_repr_names_the_file_and_schema(tmp_path: Path) -> None:
    """The SQLite store's repr carries its path, schema version and whether it is closed."""
    store = SqliteStore(tmp_path / "x.db")
    assert (
        repr(store) == f"<SqliteStore path={tmp_path / 'x.db'} schema={migrations()[-1].version}>"
    )
    store.close()
    assert repr(store).endswith(f"schema={migrations()[-1].version} closed>")


def test_postgres_repr_names_the_server_and_schema(pg_database: str) -> None:
    """The PostgreSQL store's repr names user, server and database (never a password), the
    schema version and whether it is closed."""
    info = conninfo_to_dict(pg_database)
    store = PostgresStore(pg_database)
    where = f"postgresql://{info['user']}@{info['host']}:{info['port']}/{info['dbname']}"
    assert repr(store) == f"<PostgresStore {where} schema={migrations()[-1].version}>"
    store.close()
    assert repr(store) == f"<PostgresStore {where} schema={migrations()[-1].version} closed>"


def test_postgres_store_reconnects_after_the_server_drops_it(pg_database: str) -> None:
    """A connection the server ends (a restart, a failover) fails the call in flight with a
    StoreError; the next call reconnects and finds everything committed before."""
    name = f"mailpacer-reconnect-{uuid.uuid4().hex[:8]}"
    store = PostgresStore(f"{pg_database}&application_name={name}")
    try:
        record = campaign(store, messages=2)
        with psycopg.connect(pg_database, autocommit=True) as admin:
            ended = admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE application_name = %s",
                (name,),
            ).fetchall()
        assert ended == [(True,)]
        with pytest.raises(StoreError, match=r"PostgreSQL .* failed: terminating connection"):
            store.stats(record.id)
        assert store.stats(record.id).total == 2
    finally:
        store.close()


# -- suppression list (migration 0003) ------------------------------------------------------


def test_a_hard_bounce_is_suppressed_when_its_outcome_is_recorded(store: Store) -> None:
    """Issue 14.12: recording a recipient-rejected 5.1.x outcome puts the address on the
    suppression list (same transaction, lower-cased, with the reply); a 5.7.x refusal, a
    transient reply or a message rejection does not."""
    record = campaign(store, messages=4)
    m1, m2, m3, m4 = claim(store, record.id)
    store.record(
        [
            out(m1, M.FAILED, "recipient-rejected", code=550, enhanced="5.1.1", text="no user"),
            out(m2, M.FAILED, "recipient-rejected", code=550, enhanced="5.7.1", text="policy"),
            out(m3, M.FAILED, "message-rejected", code=554, enhanced="5.6.0", text="content"),
            out(m4, M.DEFERRED, "transient", code=451, enhanced="4.1.1", retry_at=NOW + 60),
        ],
        worker="w1",
    )
    [entry] = store.suppressions()
    assert (entry.email, entry.source, entry.campaign_id) == ("u1@example.org", "bounce", record.id)
    assert entry.reason == "550 5.1.1 no user"
    found = store.suppressed_among(["U1@Example.org", "u2@example.org"])
    assert list(found) == ["u1@example.org"]


def test_suppressions_added_listed_and_removed(store: Store) -> None:
    """Addresses added by hand keep their first reason; removing reports how many were there;
    an unknown source is refused."""
    assert (
        store.add_suppressions(["A@x.org", "b@x.org", "a@x.org"], reason="asked", source="manual")
        == 2
    )
    assert store.add_suppressions(["a@x.org"], reason="again", source="unsubscribe") == 0
    assert [(s.email, s.reason, s.source) for s in store.suppressions()] == [
        ("a@x.org", "asked", "manual"),
        ("b@x.org", "asked", "manual"),
    ]
    assert store.remove_suppressions(["B@X.org", "nobody@x.org"]) == 1
    assert list(store.suppressed_among(["a@x.org", "b@x.org"])) == ["a@x.org"]
    assert store.suppressed_among([]) == {}
    with pytest.raises(StoreError, match="suppression source 'spam'"):
        store.add_suppressions(["c@x.org"], reason="?", source="spam")


# -- a route's shared budget (migration 0004) -------------------------------------------------

ROUTE = "smtp://mx.example.org:25"


def test_route_slots_are_shared_below_the_limit(backend: Backend) -> None:
    """Two processes (two stores) take the lowest free slots below the limit, never one slot
    twice; a slot given back is taken again; another route's slots are its own."""
    one, two = backend.open(), backend.open()
    take = dict(limit=2, lease_seconds=5.0, now=NOW)
    assert one.acquire_route_slot(ROUTE, holder="h1", **take) == 0
    assert two.acquire_route_slot(ROUTE, holder="h2", **take) == 1
    assert two.acquire_route_slot(ROUTE, holder="h2", **take) is None
    assert one.acquire_route_slot(ROUTE, holder="h1", **{**take, "limit": 3}) == 2
    assert one.acquire_route_slot("smtp://other:25", holder="h1", **take) == 0
    two.release_route_slot(ROUTE, holder="h1", slot=1)  # not h1's: nothing happens
    assert one.acquire_route_slot(ROUTE, holder="h1", **take) is None
    two.release_route_slot(ROUTE, holder="h2", slot=1)
    assert one.acquire_route_slot(ROUTE, holder="h1", **take) == 1
    assert one.acquire_route_slot(ROUTE, holder="h1", **{**take, "limit": 0}) is None


def test_a_dead_holders_slots_free_when_its_lease_ends(backend: Backend) -> None:
    """A holder that stops renewing loses its slots when the lease ends; one that syncs keeps
    them; leaving gives them back at once."""
    one, two = backend.open(), backend.open()
    assert one.acquire_route_slot(ROUTE, holder="dead", limit=1, lease_seconds=5, now=NOW) == 0
    assert (
        two.acquire_route_slot(ROUTE, holder="h2", limit=1, lease_seconds=5, now=NOW + 4.9) is None
    )
    assert two.acquire_route_slot(ROUTE, holder="h2", limit=1, lease_seconds=5, now=NOW + 5) == 0
    two.sync_route(ROUTE, holder="h2", wants=1, lease_seconds=5, now=NOW + 9)  # until NOW + 14
    assert (
        one.acquire_route_slot(ROUTE, holder="h1", limit=1, lease_seconds=5, now=NOW + 13) is None
    )
    two.leave_route(ROUTE, holder="h2")
    assert one.acquire_route_slot(ROUTE, holder="h1", limit=1, lease_seconds=5, now=NOW + 13) == 0
    share = one.sync_route(ROUTE, holder="h1", wants=1, lease_seconds=5, now=NOW + 13)
    assert [m.holder for m in share.members] == ["h1"]


def test_sync_route_shows_every_member_and_its_slots(backend: Backend) -> None:
    """Each sync renews the holder's membership and slots and returns who carries the route,
    how many connections each wants, holds and would have the route open, and the slots held
    in all."""
    one, two = backend.open(), backend.open()
    for _ in range(2):
        one.acquire_route_slot(ROUTE, holder="h1", limit=4, lease_seconds=5, now=NOW)
    one.sync_route(ROUTE, holder="h1", wants=3, lease_seconds=5, now=NOW, target=3)
    share = two.sync_route(ROUTE, holder="h2", wants=2, lease_seconds=5, now=NOW + 1, target=4)
    assert share.held == 2
    assert [(m.holder, m.wants, m.held, m.target) for m in share.members] == [
        ("h1", 3, 2, 3),
        ("h2", 2, 0, 4),
    ]
    later = two.sync_route(ROUTE, holder="h2", wants=0, lease_seconds=5, now=NOW + 5.5)
    assert [(m.holder, m.wants, m.held) for m in later.members] == [("h2", 0, 0)]
    assert later.held == 0 and later.limits_version == 0


def test_the_shared_send_clock_gives_each_send_its_own_moment(backend: Backend) -> None:
    """The route's "next send at" clock hands out moments ``interval`` apart, never before
    ``now``; routes have clocks of their own; from two threads at once, no moment twice."""
    store = backend.open()
    got = [store.reserve_route_send(ROUTE, interval=0.5, now=NOW) for _ in range(3)]
    assert got == [NOW, NOW + 0.5, NOW + 1.0]
    assert store.reserve_route_send(ROUTE, interval=0.5, now=NOW + 10) == NOW + 10
    assert store.reserve_route_send("smtp://other:25", interval=1, now=NOW) == NOW
    stores = [backend.open(), backend.open()]
    moments: list[float] = []
    start = threading.Barrier(2, timeout=30)

    def book(s: Store) -> None:
        start.wait()
        for _ in range(40):
            moments.append(s.reserve_route_send("smtp://busy:25", interval=0.25, now=NOW))

    threads = [threading.Thread(target=book, args=(s,)) for s in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(moments) == [NOW + 0.25 * i for i in range(80)]


def test_patched_limits_merge_and_move_the_version(backend: Backend) -> None:
    """Two processes' lessons about different limits both stay (a JSON merge patch, evidence
    merged per limit, ``None`` removes); every write moves the version that syncs report."""
    one, two = backend.open(), backend.open()
    assert (
        one.patch_route_limits(ROUTE, {"connections": 2, "evidence": {"connections": "a"}}, now=NOW)
        == 1
    )
    assert (
        two.patch_route_limits(
            ROUTE, {"rate_per_minute": 60.0, "evidence": {"rate_per_minute": "b"}}, now=NOW
        )
        == 2
    )
    assert one.load_route_limits(ROUTE) == {
        "connections": 2,
        "rate_per_minute": 60.0,
        "evidence": {"connections": "a", "rate_per_minute": "b"},
    }
    two.patch_route_limits(
        ROUTE, {"rate_per_minute": None, "evidence": {"rate_per_minute": None}}, now=NOW
    )
    assert one.load_route_limits(ROUTE) == {"connections": 2, "evidence": {"connections": "a"}}
    one.save_route_limits(ROUTE, {"connections": 3})
    assert two.sync_route(ROUTE, holder="h", wants=0, lease_seconds=5, now=NOW).limits_version == 4
