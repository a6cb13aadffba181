"""Message and campaign states, and the one table of allowed transitions (DESIGN §3).

Every store calls :func:`check_message_transition` / :func:`check_campaign_transition` before it
writes a state; any other change raises :class:`~mailpacer.core.errors.InvalidTransition`.
"""

from __future__ import annotations

from collections.abc import Collection
from enum import StrEnum

from mailpacer.core.errors import InvalidTransition


class MessageState(StrEnum):
    """Where one recipient's message is."""

    #: waiting to be claimed by an engine
    QUEUED = "queued"
    #: claimed under a lease; an SMTP transaction may be in flight
    SENDING = "sending"
    #: the server answered 2xx after the final "."
    SENT = "sent"
    #: a transient failure; due again at ``retry_at``
    DEFERRED = "deferred"
    #: permanently refused (the reason is the last attempt's reply)
    FAILED = "failed"
    #: the message may or may not have been delivered (no reply after the final ".", or a crash)
    UNCERTAIN = "uncertain"
    #: cancelled before it was sent
    CANCELLED = "cancelled"


class CampaignState(StrEnum):
    """Where a whole campaign is."""

    #: created, not started
    QUEUED = "queued"
    #: an engine is sending it
    RUNNING = "running"
    #: stopped by a user or by a route failure (the reason says which); resumable
    PAUSED = "paused"
    #: the route's quota is exhausted; resumes by itself when the window resets
    WAITING = "waiting"
    #: nothing left to send (some messages may have failed)
    DONE = "done"
    #: cancelled by a user; messages not yet sent are cancelled
    CANCELLED = "cancelled"


M = MessageState
MESSAGE_TRANSITIONS: dict[MessageState, frozenset[MessageState]] = {
    M.QUEUED: frozenset({M.SENDING, M.CANCELLED}),
    # requeue after throttle/quota, defer on transient, sent, failed, uncertain on ambiguity or
    # crash; queued again when a lease expires and the policy is to resend.
    M.SENDING: frozenset({M.SENT, M.QUEUED, M.DEFERRED, M.FAILED, M.UNCERTAIN}),
    M.DEFERRED: frozenset({M.QUEUED, M.CANCELLED, M.SENDING}),
    M.UNCERTAIN: frozenset({M.QUEUED}),  # resend policy, or a user's retry
    M.FAILED: frozenset({M.QUEUED}),  # a user's retry
    M.SENT: frozenset(),
    M.CANCELLED: frozenset({M.QUEUED}),  # a user's retry of cancelled messages
}

C = CampaignState
CAMPAIGN_TRANSITIONS: dict[CampaignState, frozenset[CampaignState]] = {
    C.QUEUED: frozenset({C.RUNNING, C.PAUSED, C.CANCELLED}),
    C.RUNNING: frozenset({C.PAUSED, C.WAITING, C.DONE, C.CANCELLED}),
    C.PAUSED: frozenset({C.RUNNING, C.QUEUED, C.CANCELLED}),
    # done: another process sharing the campaign sent its last message meanwhile
    C.WAITING: frozenset({C.RUNNING, C.PAUSED, C.DONE, C.CANCELLED}),
    C.DONE: frozenset({C.RUNNING, C.QUEUED}),  # a retry of failed/uncertain messages reopens it
    C.CANCELLED: frozenset({C.QUEUED}),  # a retry reopens it
}

TERMINAL_MESSAGE_STATES = frozenset({M.SENT, M.FAILED, M.UNCERTAIN, M.CANCELLED})


def check_message_transition(old: MessageState, new: MessageState) -> None:
    """Raise :class:`InvalidTransition` unless ``old → new`` is in the table (or ``old == new``
    is not a change at all, which is also refused: every write must move the state)."""
    if new not in MESSAGE_TRANSITIONS[old]:
        raise InvalidTransition("message", old.value, new.value)


def check_campaign_transition(old: CampaignState, new: CampaignState) -> None:
    """Raise :class:`InvalidTransition` unless ``old → new`` is in the campaign table."""
    if new not in CAMPAIGN_TRANSITIONS[old]:
        raise InvalidTransition("campaign", old.value, new.value)


class StateConflict(InvalidTransition):
    """A compare-and-set campaign state change found the campaign in another state than the
    caller expected (someone else changed it first); nothing was written. ``current`` is the
    state it is in now."""

    def __init__(
        self,
        campaign_id: int,
        current: CampaignState,
        new: CampaignState,
        expected: Collection[CampaignState],
    ) -> None:
        super().__init__("campaign", current.value, new.value)
        wanted = " or ".join(repr(s.value) for s in sorted(expected)) or "no state at all"
        self.args = (
            f"campaign {campaign_id} is {current.value!r} (expected {wanted}):"
            f" it was not set to {new.value!r}",
        )
        self.campaign_id = campaign_id
        self.current = current
        self.expected = frozenset(expected)
