"""The store contract, continued: campaign state changes that race (compare-and-set), claims only
from a running campaign (also against a cancel committed by another connection), and crash
accounting (``mark_started``: a lost lease counts against a message only if its SMTP transaction
had begun, and even then not as an attempt). Every implementation, via the ``backend`` fixture
(conftest.py); the helpers are the contract suite's."""

from __future__ import annotations

import threading

import pytest
from test_store_contract import NOW, Backend, campaign, claim, out, states

from mailpacer.core.errors import InvalidTransition, NotFound
from mailpacer.core.states import CampaignState, MessageState, StateConflict
from mailpacer.store import Store

M = MessageState
C = CampaignState

# -- compare-and-set campaign state ----------------------------------------------------------


def test_expected_state_sets_only_from_those_states(store: Store) -> None:
    """With ``expected`` the change is made when the campaign is in one of them; otherwise a
    StateConflict (an InvalidTransition) says what it is in, and nothing is written."""
    record = campaign(store, running=False)
    running = store.set_campaign_state(record.id, C.RUNNING, expected={C.QUEUED, C.PAUSED})
    assert running.state is C.RUNNING
    with pytest.raises(StateConflict) as caught:
        store.set_campaign_state(record.id, C.RUNNING, "resumed", expected=[C.PAUSED])
    error = caught.value
    assert isinstance(error, InvalidTransition)
    assert (error.current, error.campaign_id, error.expected) == (
        C.RUNNING,
        record.id,
        {C.PAUSED},
    )
    assert str(error) == (
        f"campaign {record.id} is 'running' (expected 'paused'): it was not set to 'running'"
    )
    assert store.get_campaign(record.id) == running  # reason and updated_at untouched
    with pytest.raises(StateConflict, match="expected no state at all"):
        store.set_campaign_state(record.id, C.PAUSED, expected=())
    paused = store.set_campaign_state(record.id, C.PAUSED, "by user", expected=(C.RUNNING,))
    assert (paused.state, paused.reason) == (C.PAUSED, "by user")


def test_expected_state_still_obeys_the_transition_table(store: Store) -> None:
    """A compare-and-set whose state matches but whose change the table refuses is an
    InvalidTransition, not a conflict; an unknown campaign is NotFound."""
    record = campaign(store)
    with pytest.raises(InvalidTransition, match="'running' to 'queued'") as caught:
        store.set_campaign_state(record.id, C.QUEUED, expected={C.RUNNING})
    assert not isinstance(caught.value, StateConflict)
    assert store.get_campaign(record.id).state is C.RUNNING
    with pytest.raises(NotFound):
        store.set_campaign_state(record.id + 1, C.PAUSED, expected={C.RUNNING})


def test_racing_compare_and_sets_have_one_winner(backend: Backend) -> None:
    """Four connections pause a running campaign at the same moment, each expecting it running:
    exactly one wins, the others see it paused, and the stored reason is the winner's."""
    record = campaign(backend.open())
    stores = [backend.open() for _ in range(4)]
    start = threading.Barrier(len(stores), timeout=30)
    won: list[int] = []
    lost: list[CampaignState] = []

    def pause(i: int) -> None:
        start.wait()
        try:
            stores[i].set_campaign_state(record.id, C.PAUSED, f"by {i}", expected={C.RUNNING})
        except StateConflict as conflict:
            lost.append(conflict.current)
        else:
            won.append(i)

    threads = [threading.Thread(target=pause, args=(i,)) for i in range(len(stores))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(won) == 1 and lost == [C.PAUSED] * 3
    assert stores[0].get_campaign(record.id).reason == f"by {won[0]}"


# -- claims only from a running campaign -----------------------------------------------------


@pytest.mark.parametrize("state", [C.QUEUED, C.PAUSED, C.WAITING, C.CANCELLED, C.DONE])
def test_nothing_is_claimed_unless_the_campaign_runs(store: Store, state: CampaignState) -> None:
    """Queued, paused, waiting, cancelled or done: a claim takes nothing (due deferred messages
    included) and changes nothing; running again, it takes them."""
    record = campaign(store, messages=3)
    (first,) = claim(store, record.id, limit=1)
    store.record([out(first, M.DEFERRED, "transient", code=451, retry_at=NOW + 1)])
    if state is C.QUEUED:
        store.set_campaign_state(record.id, C.PAUSED)
    store.set_campaign_state(record.id, state)
    before = store.messages(record.id)
    assert claim(store, record.id, now=NOW + 10) == []
    assert store.messages(record.id) == before
    if state is C.CANCELLED:
        store.set_campaign_state(record.id, C.QUEUED)  # the way back from cancelled
    store.set_campaign_state(record.id, C.RUNNING)
    assert [m.row for m in claim(store, record.id, now=NOW + 10)] == [1, 2, 3]


def test_a_claim_of_an_unknown_campaign_takes_nothing(store: Store) -> None:
    """No such campaign: nothing to claim (not an error, as before)."""
    campaign(store, messages=2)
    assert claim(store, 999) == []


def test_no_claim_takes_a_message_after_a_cancel_is_committed(backend: Backend) -> None:
    """One connection claims in a loop while another cancels the campaign (the state, then its
    pending messages, as the CLI does) and waits for claims to run in between: every claim that
    began after the cancel was committed takes nothing, so after cancel_pending the only
    ``sending`` messages are those claimed before the cancel, and nothing is left queued."""
    record = campaign(backend.open(), messages=400)
    claimer, canceller = backend.open(), backend.open()
    first_claim, cancelled, claims_after = threading.Event(), threading.Event(), threading.Event()
    before: list[int] = []
    after: list[int] = []

    def claim_loop() -> None:
        late = 0
        for _ in range(20_000):  # bounded; ends 20 claims after the cancel
            cancelled.wait(0.001)  # leaves the canceller a turn (SQLite's lock is not fair)
            begun_after_cancel = cancelled.is_set()
            got = [m.id for m in claim(claimer, record.id, limit=2)]
            (after if begun_after_cancel else before).extend(got)
            first_claim.set()
            if begun_after_cancel:
                late += 1
                if late == 5:
                    claims_after.set()  # claims ran between the state change and cancel_pending
                if late == 20:
                    return

    thread = threading.Thread(target=claim_loop)
    thread.start()
    assert first_claim.wait(30)
    canceller.set_campaign_state(record.id, C.CANCELLED, "by user", expected={C.RUNNING})
    cancelled.set()
    assert claims_after.wait(30)
    pending = canceller.cancel_pending(record.id)
    thread.join(timeout=60)
    assert after == []
    now = states(canceller, record.id)
    assert sorted(mid for mid, s in now.items() if s is M.SENDING) == sorted(before)
    assert (pending, list(now.values()).count(M.QUEUED)) == (400 - len(before), 0)


# -- crash accounting ------------------------------------------------------------------------


def test_mark_started_marks_only_the_workers_sending_messages(store: Store) -> None:
    """Only messages ``sending`` under the worker's lease are marked; a second mark keeps the
    first time; release and record clear the mark, and a new claim starts unmarked."""
    record = campaign(store, messages=5)
    mine = claim(store, record.id, limit=3, worker="w1")
    theirs = claim(store, record.id, limit=1, worker="w2")
    queued_id = next(mid for mid, s in states(store, record.id).items() if s is M.QUEUED)
    store.mark_started("w1", [m.id for m in (*mine, *theirs)] + [queued_id], NOW + 1)
    store.mark_started("w1", [mine[0].id], NOW + 2)
    store.mark_started("w1", [], NOW + 3)
    started = {m.id: m.started_at for m in store.messages(record.id)}
    assert [started[m.id] for m in (*mine, *theirs)] == [NOW + 1] * 3 + [None]
    assert started[queued_id] is None
    store.release("w1", [mine[0].id])
    store.record([out(mine[1], M.QUEUED, "throttle-rate", code=450, count_attempt=False)])
    store.record([out(mine[2], M.SENT)])
    started = {m.id: m.started_at for m in store.messages(record.id)}
    assert [started[m.id] for m in mine] == [None, None, None]
    again = claim(store, record.id, limit=2, worker="w2", now=NOW + 5)
    assert {m.id for m in again} == {mine[0].id, mine[1].id}
    assert all(m.started_at is None for m in store.messages(record.id))


@pytest.mark.parametrize("resend", [True, False])
def test_a_crash_mid_send_does_not_count_against_the_message(store: Store, resend: bool) -> None:
    """A message on its second try (one counted attempt) whose worker died mid-transaction
    becomes uncertain without a counted attempt: attempts and first_attempt_at stay as the
    server's replies left them; under resend it is claimable again at once."""
    record = campaign(store, messages=1)
    (m,) = claim(store, record.id)
    store.record([out(m, M.DEFERRED, "transient", code=451, at=NOW, retry_at=NOW + 10)])
    (m,) = claim(store, record.id, now=NOW + 10, worker="host:9:gone")
    store.mark_started("host:9:gone", [m.id], NOW + 11)
    got = store.recover(record.id, now=NOW + 12, resend=resend, is_alive=lambda w: False)
    assert (got.uncertain, got.unstarted) == ([m.id], [])
    (listed,) = store.messages(record.id)
    want = M.QUEUED if resend else M.UNCERTAIN
    assert (listed.state, listed.attempts, listed.retry_at, listed.ever_uncertain) == (
        want,
        1,
        None,
        True,
    )
    expected = ["transient", "lease-expired", *(["resend"] if resend else [])]
    assert [a.verdict for a in store.attempts(m.id)] == expected
    if not resend:
        assert store.retry(record.id, {M.UNCERTAIN}) == 1
        return
    (again,) = claim(store, record.id, now=NOW + 12, worker="w2")
    assert (again.id, again.attempts, again.first_attempt_at) == (m.id, 1, NOW)


def test_a_lost_lease_never_started_leaves_no_trace(store: Store) -> None:
    """Claimed by a worker that died before its SMTP transaction began: queued again, claimable
    at once, no attempt row, nothing counted, never uncertain (whatever the resend policy)."""
    record = campaign(store, messages=2)
    lost = claim(store, record.id, worker="host:9:gone")
    got = store.recover(record.id, now=NOW + 1, resend=False, is_alive=lambda w: False)
    assert (got.uncertain, got.unstarted) == ([], [m.id for m in lost])
    stats = store.stats(record.id)
    assert (stats.counts[M.QUEUED], stats.attempts, stats.uncertain_ever) == (2, 0, 0)
    again = claim(store, record.id, now=NOW + 1, worker="w2")
    assert [(m.id, m.attempts, m.first_attempt_at) for m in again] == [
        (m.id, 0, None) for m in lost
    ]
