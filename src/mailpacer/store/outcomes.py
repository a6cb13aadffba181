"""What recording outcomes writes, decided in plain code that every store implementation shares.

:func:`plan` checks a batch of outcomes against the messages' current states (the transition table
in :mod:`mailpacer.core.states`) before anything is written, and, given the worker that sends them,
sets aside the outcomes of messages that are no longer ``sending`` under that worker's lease;
:func:`recovery` sorts ``sending`` messages whose lease expired or whose worker is gone into those
never started (queued again, nothing recorded) and the outcomes that make started ones
``uncertain``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from mailpacer.core.errors import NotFound, StoreError
from mailpacer.core.states import MessageState, check_message_transition
from mailpacer.store.base import LEASE_EXPIRED, RESEND, UNCERTAIN_VERDICTS, Outcome

M = MessageState


class Current(NamedTuple):
    """A message as it is before a batch is recorded."""

    campaign_id: int
    state: MessageState
    worker: str | None  #: who holds its lease (``sending`` only)


@dataclass
class Plan:
    """What to write for a batch (``rows``) and what was set aside (``skipped``)."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[Outcome] = field(default_factory=list)


def plan(
    current: Mapping[int, Current], outcomes: Sequence[Outcome], *, worker: str | None = None
) -> Plan:
    """One parameter row per outcome, in order, for the attempt insert and the message update.

    Several outcomes for one message are checked one after the other. Raises (and so writes
    nothing) on the first refused outcome. With ``worker``, a message that was not ``sending``
    under that worker's lease when the batch began (its lease was recovered by another process,
    and it may since have been claimed by someone else) has all its outcomes skipped, not refused.
    """
    states = {mid: (now.campaign_id, now.state) for mid, now in current.items()}
    held: dict[int, bool] = {}
    result = Plan()
    for o in outcomes:
        if o.message_id not in states:
            raise NotFound(f"no message {o.message_id}")
        if worker is not None:
            if o.message_id not in held:
                now = current[o.message_id]
                held[o.message_id] = now.state is M.SENDING and now.worker == worker
            if not held[o.message_id]:
                result.skipped.append(o)
                continue
        campaign_id, old = states[o.message_id]
        check_message_transition(old, o.state)
        if o.state is M.SENDING:
            raise StoreError(f"message {o.message_id}: only claim() may set 'sending'")
        if o.state is M.DEFERRED and o.retry_at is None:
            raise StoreError(f"message {o.message_id}: a deferred outcome needs retry_at")
        states[o.message_id] = (campaign_id, o.state)
        uncertain = o.verdict in UNCERTAIN_VERDICTS or o.state is M.UNCERTAIN
        result.rows.append(
            {
                "id": o.message_id,
                "campaign_id": campaign_id,
                "old": old.value,
                "state": o.state.value,
                "verdict": str(o.verdict),
                "code": o.code,
                "enhanced": o.enhanced,
                "text": o.text,
                "at": o.at,
                "retry_at": o.retry_at if o.state is M.DEFERRED else None,
                "counted": int(o.count_attempt),
                "uncertain": int(uncertain),
                "route_key": o.route,
            }
        )
    return result


@dataclass
class Lost:
    """What recovering a campaign's lost leases does (:func:`recovery`)."""

    outcomes: list[Outcome] = field(default_factory=list)  #: for the started ones
    unstarted: list[int] = field(default_factory=list)  #: back to ``queued``, nothing recorded

    @property
    def uncertain(self) -> list[int]:
        """The started messages' ids, sorted."""
        return sorted({o.message_id for o in self.outcomes})


def recovery(
    sending: Iterable[tuple[int, str, float, float | None]],
    *,
    now: float,
    resend: bool,
    is_alive: Callable[[str], bool],
) -> Lost:
    """Sort ``(id, worker, lease_until, started_at)`` rows whose lease expired or whose worker
    is gone (``is_alive`` is asked once per worker, only while its lease runs).

    A message never started goes back to ``queued`` with nothing recorded. A started one may
    have been delivered: it becomes ``uncertain`` (a ``lease-expired`` attempt, not counted: our
    own crash does not count against a message), then, under the resend policy, ``queued``
    again (not counted either), due at once.
    """
    check_message_transition(M.SENDING, M.QUEUED)
    alive: dict[str, bool] = {}
    lost = Lost()
    for message_id, worker, lease_until, started_at in sending:
        if lease_until < now:
            why = f"the lease of {worker} expired"
        else:
            if worker not in alive:
                alive[worker] = is_alive(worker)
            if alive[worker]:
                continue
            why = f"worker {worker} is gone"
        if started_at is None:
            lost.unstarted.append(message_id)
            continue
        text = f"{why} while sending; the message may or may not have been delivered"
        lost.outcomes.append(
            Outcome(
                message_id, M.UNCERTAIN, LEASE_EXPIRED, None, None, text, now, count_attempt=False
            )
        )
        if resend:
            again = "queued again to resend with the same Message-ID"
            lost.outcomes.append(
                Outcome(message_id, M.QUEUED, RESEND, None, None, again, now, count_attempt=False)
            )
    lost.unstarted.sort()
    return lost
