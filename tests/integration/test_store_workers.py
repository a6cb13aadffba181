"""The store contract, continued: several workers on one database. Claims from threads and from
processes at the same moment never share a message, and a worker whose lease another process
recovered records the rest of its batch (``record(..., worker=)``). Every implementation, via the
``backend`` fixture (conftest.py); the helpers are the contract suite's."""

from __future__ import annotations

import json
import subprocess
import sys
import threading

import pytest
from test_store_contract import NOW, Backend, campaign, claim, out, states

from conftest import SHARED_BACKENDS
from mailpacer.core.errors import InvalidTransition, NotFound
from mailpacer.core.states import MessageState
from mailpacer.store import Store

M = MessageState

# -- claims ----------------------------------------------------------------------------------


def test_two_workers_never_claim_the_same_message(backend: Backend) -> None:
    """Two connections claiming at the same moment, round after round, from threads, share out
    every message exactly once."""
    setup = backend.open()
    record = campaign(setup, messages=600)
    stores = [backend.open(), backend.open()]
    got: list[list[int]] = [[], []]
    rounds = threading.Barrier(2, timeout=30)

    def work(i: int) -> None:
        for _ in range(45):  # 45 rounds x 2 workers x 7 > 600: the last rounds find nothing
            rounds.wait()  # both claim at once each round, so neither can take everything
            got[i].extend(m.id for m in claim(stores[i], record.id, limit=7, worker=f"w{i}"))

    threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not set(got[0]) & set(got[1])
    assert sorted(got[0] + got[1]) == sorted(states(setup, record.id))
    assert got[0] and got[1]


WORKER_PROCESS = """
import json, sys, time
from mailpacer.core.states import MessageState
from mailpacer.store import Outcome, open_store

store = open_store(sys.argv[1])
print("ready", flush=True)
sys.stdin.readline()  # "go": every worker starts at once
mine = []
while batch := store.claim(int(sys.argv[2]), worker=sys.argv[3], limit=5, lease_seconds=60,
                           now=time.time()):
    time.sleep(0.002)  # "sending"
    done = [Outcome(m.id, MessageState.SENT, "accepted", 250, "2.0.0", "ok", time.time())
            for m in batch]
    assert store.record(done, worker=sys.argv[3]) == []
    mine += [m.id for m in batch]
print(json.dumps(mine), flush=True)
"""


@pytest.mark.parametrize("backend", SHARED_BACKENDS, indirect=True)
def test_worker_processes_share_one_campaign(backend: Backend) -> None:
    """Three worker processes on one database send a campaign together: every message is sent
    once, by one of them, and each of them sends some."""
    setup = backend.open()
    record = campaign(setup, messages=300)
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER_PROCESS, str(backend.target), str(record.id), f"p{i}"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for i in range(3)
    ]
    try:
        for worker in workers:
            assert worker.stdout is not None and worker.stdout.readline() == "ready\n"
        for worker in workers:
            assert worker.stdin is not None
            worker.stdin.write("go\n")
            worker.stdin.flush()
        sent = [json.loads(worker.communicate(timeout=60)[0]) for worker in workers]
    finally:
        for worker in workers:
            worker.kill()
    assert [worker.returncode for worker in workers] == [0, 0, 0]
    everyone = [mid for mine in sent for mid in mine]
    assert sorted(everyone) == sorted(states(setup, record.id))  # each exactly once
    assert all(sent), [len(mine) for mine in sent]
    stats = setup.stats(record.id)
    assert (stats.counts[M.SENT], stats.attempts) == (300, 300)


# -- outcomes of a worker that lost its lease -------------------------------------------------


def test_record_skips_outcomes_whose_lease_another_process_recovered(backend: Backend) -> None:
    """A worker whose lease was recovered by another process (its messages went uncertain, then
    queued, and one was claimed again by someone else) records the rest of its batch: the lost
    messages' outcomes are returned, not written and not refused."""
    mine, other = backend.open(), backend.open()
    record = campaign(mine, messages=4)
    lost = claim(mine, record.id, limit=2, worker="w1")  # leases end at NOW + 60
    (kept,) = claim(mine, record.id, limit=1, worker="w1", now=NOW + 50)
    mine.mark_started("w1", [m.id for m in (*lost, kept)], NOW + 50)
    recovered = other.recover(record.id, now=NOW + 61, resend=True, is_alive=lambda w: True)
    assert recovered.uncertain == [m.id for m in lost]
    (again,) = claim(other, record.id, limit=1, worker="w2", now=NOW + 62)
    assert again.id == lost[0].id  # w2 now sends lost[0]; lost[1] waits, queued
    late = [out(m, M.SENT, at=NOW + 63) for m in (*lost, kept)]
    assert mine.record(late, worker="w1") == late[:2]
    now = states(other, record.id)
    assert [now[m.id] for m in (*lost, kept)] == [M.SENDING, M.QUEUED, M.SENT]
    assert [a.verdict for a in other.attempts(lost[0].id)] == ["lease-expired", "resend"]
    assert other.record([out(again, M.SENT, at=NOW + 64)], worker="w2") == []
    assert states(mine, record.id)[again.id] is M.SENT
    assert other.stats(record.id).attempts == 2 * 2 + 2  # lease-expired + resend each, 2 sent


def test_record_without_a_worker_refuses_the_whole_batch(store: Store) -> None:
    """Called without ``worker`` (the old call), an outcome for a message that is no longer
    sending is refused and nothing of the batch is written, as before."""
    record = campaign(store, messages=2)
    c = claim(store, record.id, limit=2)
    store.recover(record.id, now=NOW + 61, resend=True, is_alive=lambda w: True)
    (again,) = claim(store, record.id, limit=1, worker="w2", now=NOW + 62)
    with pytest.raises(InvalidTransition, match="'queued' to 'sent'"):
        store.record([out(c[0], M.SENT), out(c[1], M.SENT)])
    assert states(store, record.id) == {again.id: M.SENDING, c[1].id: M.QUEUED}


def test_every_outcome_of_a_lost_message_is_skipped(store: Store) -> None:
    """Several outcomes for one message (uncertain, then queued to resend) are skipped together
    when the worker no longer holds it; an unknown message is still NotFound."""
    record = campaign(store, messages=2)
    (m,) = claim(store, record.id, limit=1, worker="w1")
    store.release("w1", [m.id])
    (taken,) = claim(store, record.id, limit=1, worker="w2")
    assert taken.id == m.id  # now w2's
    batch = [
        out(m, M.UNCERTAIN, "ambiguous", code=None, text="no reply after ."),
        out(m, M.QUEUED, "resend", code=None, text="resend", count_attempt=False),
    ]
    assert store.record(batch, worker="w1") == batch
    assert store.attempts(taken.id) == [] and store.stats(record.id).attempts == 0
    with pytest.raises(NotFound):
        store.record([out(999_999, M.SENT)], worker="w1")
    assert store.record([], worker="w1") == []
