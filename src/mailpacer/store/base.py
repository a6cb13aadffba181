"""What a store is: the :class:`Store` protocol the engine, CLI and HTTP API call, and the frozen
records it takes and returns (DESIGN §3, §6).

Every implementation checks each state change against :mod:`mailpacer.core.states` and raises
:class:`~mailpacer.core.errors.InvalidTransition` (nothing written) for any other; it raises
:class:`~mailpacer.core.errors.NotFound` for an unknown campaign and
:class:`~mailpacer.core.errors.StoreError` when the database itself fails.

Each operation is atomic on its own, also against other connections and processes: a campaign
state changed with ``expected`` is compared and set in one step, and a claim sees the campaign
state that the last committed change left (a pause or cancel committed before a claim means the
claim takes nothing).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from mailpacer.core.errors import StoreError
from mailpacer.core.states import CampaignState, MessageState

#: attempt verdict written when a lease expires or its worker is gone (the message may be sent)
LEASE_EXPIRED = "lease-expired"
#: attempt verdict written when an uncertain message is queued again under the resend policy
RESEND = "resend"
#: verdicts after which a message may or may not have been delivered
UNCERTAIN_VERDICTS = frozenset({"ambiguous", LEASE_EXPIRED})


def is_throttle(verdict: str) -> bool:
    """A reply that was the route's fault, not the message's (``throttle-*`` or ``quota``)."""
    return verdict.startswith("throttle") or verdict == "quota"


@dataclass(frozen=True, slots=True)
class CampaignRecord:
    """One campaign as stored."""

    id: int
    key: str  #: stable identity: re-running the same ``send`` finds the campaign by its key
    name: str
    state: CampaignState
    reason: str | None  #: why it is paused / waiting / cancelled, for people
    route_key: str
    options: dict[str, Any]
    created_at: float
    updated_at: float


@dataclass(frozen=True, slots=True)
class NewMessage:
    """One recipient to add to a campaign."""

    row: int  #: 1-based row of the recipients file
    email: str
    variables: dict[str, str]


@dataclass(frozen=True, slots=True)
class ClaimedMessage:
    """A message handed to a worker under a lease: ``sending`` until its outcome is recorded."""

    id: int
    campaign_id: int
    row: int
    email: str
    variables: dict[str, str]
    attempts: int  #: counted attempts before this one
    first_attempt_at: float | None
    lease_until: float


@dataclass(frozen=True, slots=True)
class Outcome:
    """What happened to one claimed message; :meth:`Store.record` writes it.

    One attempt row is always written. The ``attempts`` counter and ``first_attempt_at`` move only
    when ``count_attempt`` (throttle and quota requeues do not count). ``retry_at`` is required
    for ``deferred`` and cleared for every other state.
    """

    message_id: int
    state: MessageState
    verdict: str
    code: int | None
    enhanced: str | None
    text: str
    at: float
    retry_at: float | None = None
    count_attempt: bool = True
    route: str | None = None  #: the key of the route the attempt went through (None: no route)


@dataclass(frozen=True, slots=True)
class MessageRecord:
    """One message as listed (for status, failures, the dashboard)."""

    id: int
    campaign_id: int
    row: int
    email: str
    variables: dict[str, str]
    state: MessageState
    attempts: int
    retry_at: float | None
    last_verdict: str | None  #: the last recorded attempt's verdict, code and reply text
    last_code: int | None
    last_text: str | None
    updated_at: float
    ever_uncertain: bool  #: had an ``ambiguous`` or ``lease-expired`` attempt at some point
    started_at: float | None = None  #: ``sending`` and its SMTP transaction begun (mark_started)


@dataclass(frozen=True, slots=True)
class AttemptRecord:
    """One recorded attempt with the server's full reply."""

    id: int
    message_id: int
    at: float
    verdict: str
    code: int | None
    enhanced: str | None
    text: str
    route: str | None = None  #: the key of the route it went through (None: none, or before 0.5)


@dataclass(frozen=True, slots=True)
class CampaignStats:
    """Counts for one campaign."""

    counts: dict[MessageState, int]  #: every state present, 0 when none
    total: int
    attempts: int  #: attempt rows (every reply recorded, counted or not)
    throttles: int  #: attempt rows whose verdict is ``throttle-*`` or ``quota``
    uncertain_ever: int  #: messages that were uncertain at least once (resent or held)


@dataclass(frozen=True, slots=True)
class Recovery:
    """What :meth:`Store.recover` took back from expired leases and dead workers (ids sorted)."""

    #: started (:meth:`Store.mark_started`) when their worker was lost: they may have been
    #: delivered, so they became ``uncertain`` (then ``queued`` again under the resend policy)
    uncertain: list[int]
    #: never started: back to ``queued`` as if released, no attempt written or counted
    unstarted: list[int]

    def __bool__(self) -> bool:
        return bool(self.uncertain or self.unstarted)


@dataclass(frozen=True, slots=True)
class EventRecord:
    """One stored event (progress feed, audit trail)."""

    id: int
    campaign_id: int | None
    at: float
    kind: str
    data: dict[str, Any]


# -- suppression list (migration 0003) -----------------------------------------------------

#: the verdict whose 5.1.x replies put an address on the suppression list (core.classify)
RECIPIENT_REJECTED = "recipient-rejected"
#: where a suppression came from
SUPPRESSION_SOURCES = ("bounce", "unsubscribe", "manual")


def is_hard_bounce(verdict: str, enhanced: str | None) -> bool:
    """A recipient refused for good with an RFC 3463 address status (5.1.x: no such user, bad
    address, mailbox moved): later campaigns skip the address."""
    return verdict == RECIPIENT_REJECTED and (enhanced or "").startswith("5.1.")


@dataclass(frozen=True, slots=True)
class SuppressionRecord:
    """One address that no campaign sends to."""

    email: str  #: lower-cased
    reason: str  #: the bounce reply, or what the person who added it said
    source: str  #: one of :data:`SUPPRESSION_SOURCES`
    campaign_id: int | None  #: the campaign whose message bounced
    created_at: float


# -- a route's shared budget (migration 0004) -------------------------------------------------


@dataclass(frozen=True, slots=True)
class RouteMember:
    """One process carrying a route: how many connections it would use and how many slots it
    holds now."""

    holder: str
    wants: int
    held: int
    target: int = 0  #: the connections its pacer would have the route open


@dataclass(frozen=True, slots=True)
class RouteShare:
    """A route as every process sees it: who carries it, the slots held (by anyone, live leases
    only), and the version of its learned limits (it moves with every write of them)."""

    members: tuple[RouteMember, ...]
    held: int
    limits_version: int


def merge_patch(stored: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """JSON merge patch (RFC 7396): ``patch``'s keys replace ``stored``'s, objects merge key by
    key, ``None`` removes a key. Returns a new dict."""
    merged = dict(stored)
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        elif isinstance(value, dict):
            before = merged.get(key)
            merged[key] = merge_patch(before if isinstance(before, dict) else {}, value)
        else:
            merged[key] = value
    return merged


def dump_json(value: Any, what: str) -> str:
    """``value`` as compact JSON text, or a :class:`StoreError` naming ``what`` could not be."""
    try:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise StoreError(f"{what} cannot be stored as JSON: {exc}") from exc


def lowest_free_slot(held: Collection[int], limit: int) -> int | None:
    """The lowest slot number below ``limit`` that nobody holds, or ``None``."""
    return next((slot for slot in range(max(0, limit)) if slot not in held), None)


class Store(Protocol):
    """The durable record of campaigns, messages, attempts, routes and events."""

    def get_or_create_campaign(
        self, key: str, *, name: str, route_key: str, options: dict[str, Any]
    ) -> tuple[CampaignRecord, bool]:
        """The campaign with ``key`` (``False``), or a new ``queued`` one (``True``)."""
        ...

    def get_campaign(self, ref: int | str) -> CampaignRecord:
        """By id (an int) or key (a str); :class:`NotFound` otherwise."""
        ...

    def list_campaigns(self) -> list[CampaignRecord]:
        """Every campaign, oldest first."""
        ...

    def set_campaign_state(
        self,
        campaign_id: int,
        state: CampaignState,
        reason: str | None = None,
        *,
        expected: Collection[CampaignState] | None = None,
    ) -> CampaignRecord:
        """Checked transition; the same state again only updates ``reason``.

        With ``expected`` it is a compare-and-set: the change is made only if the campaign is in
        one of those states, checked and written atomically; otherwise :class:`StateConflict`
        (carrying the ``current`` state) is raised and nothing is written. The transition table
        still applies (:class:`InvalidTransition`)."""
        ...

    def update_campaign(
        self, campaign_id: int, *, route_key: str, options: dict[str, Any]
    ) -> CampaignRecord:
        """Replace the route and the stored settings (a re-run through another route, or with
        other settings); the state and the messages are untouched."""
        ...

    def delete_campaign(self, campaign_id: int) -> None:
        """Remove a campaign with its messages, attempts and events (suppressions it caused
        stay); :class:`NotFound` if there is none."""
        ...

    def add_messages(
        self, campaign_id: int, messages: Iterable[NewMessage], *, batch_size: int = 5000
    ) -> int:
        """Add recipients in batched transactions; an email already present is left untouched.
        Returns how many were new."""
        ...

    def claim(
        self, campaign_id: int, *, worker: str, limit: int, lease_seconds: float, now: float
    ) -> list[ClaimedMessage]:
        """Up to ``limit`` queued (or due deferred) messages, in row order, now ``sending`` under
        ``worker``'s lease until ``now + lease_seconds``. Atomic: no two claims share a message.

        Only from a ``running`` campaign: in any other state (paused, waiting, cancelled …, or
        no such campaign) nothing is claimed, and the state is read in the same atomic step as
        the claim, so no claim takes a message after a pause or cancel was committed."""
        ...

    def extend_leases(self, worker: str, message_ids: Sequence[int], lease_until: float) -> None:
        """Move the lease of ``worker``'s sending messages to ``lease_until``."""
        ...

    def mark_started(self, worker: str, message_ids: Sequence[int], at: float) -> None:
        """The SMTP transaction of these messages, ``sending`` under ``worker``'s lease, begins
        now (``at``): from here a lost worker means they may have been delivered (see
        :meth:`recover`). Messages not held by ``worker`` are left alone; a second call keeps
        the first time. :meth:`release` and :meth:`record` clear the mark."""
        ...

    def release(self, worker: str, message_ids: Sequence[int]) -> None:
        """Claimed but never started: back to ``queued``, no attempt written."""
        ...

    def record(self, outcomes: Sequence[Outcome], *, worker: str | None = None) -> list[Outcome]:
        """Write outcomes (in order, several per message allowed) in one transaction; if any
        transition is refused, nothing of the batch is written.

        With ``worker`` (the engine's identity, as given to :meth:`claim`), outcomes of messages
        that are no longer ``sending`` under that worker's lease (recovered by another process,
        perhaps claimed again) are not written and not refused: they are returned, and the rest
        of the batch is written. Without it every outcome must fit the current state."""
        ...

    def recover(
        self, campaign_id: int, *, now: float, resend: bool, is_alive: Callable[[str], bool]
    ) -> Recovery:
        """Take back ``sending`` messages whose lease expired or whose worker is gone
        (``is_alive`` is asked once per worker whose lease has not expired).

        Never started (no :meth:`mark_started`): back to ``queued``, no attempt written or
        counted (``Recovery.unstarted``). Started: they may have been delivered, so they become
        ``uncertain`` with a ``lease-expired`` attempt that is not counted (neither ``attempts``
        nor ``first_attempt_at`` move: our own crash does not count against a message), then
        ``queued`` again, due at once, if ``resend`` (``Recovery.uncertain``)."""
        ...

    def stats(self, campaign_id: int) -> CampaignStats:
        """Counts by state, attempts, throttle replies, messages ever uncertain."""
        ...

    def next_retry_at(self, campaign_id: int) -> float | None:
        """The earliest ``retry_at`` among deferred messages."""
        ...

    def sent_by_route(self, campaign_id: int) -> dict[str, int]:
        """Messages accepted per route key (from the attempts; those recorded without a route
        are left out)."""
        ...

    def retry(self, campaign_id: int, states: Collection[MessageState]) -> int:
        """Messages in ``states`` (failed / uncertain / cancelled) back to ``queued`` with their
        attempt counter reset (history kept). Returns how many."""
        ...

    def cancel_pending(self, campaign_id: int) -> int:
        """Queued and deferred messages become ``cancelled``. Returns how many."""
        ...

    def messages(
        self,
        campaign_id: int,
        *,
        state: MessageState | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[MessageRecord]:
        """Messages in row order, optionally only those in ``state``."""
        ...

    def attempts(self, message_id: int) -> list[AttemptRecord]:
        """A message's attempts, oldest first."""
        ...

    def load_route_limits(self, route_key: str) -> dict[str, Any] | None:
        """The limits learned for a route, if any."""
        ...

    def save_route_limits(self, route_key: str, limits: dict[str, Any]) -> None:
        """Remember a route's learned limits (they outlive campaigns)."""
        ...

    def add_event(
        self, campaign_id: int | None, kind: str, data: dict[str, Any], *, at: float | None = None
    ) -> int:
        """Store an event; returns its id (ids grow, so readers can follow with ``after_id``)."""
        ...

    def events(
        self, campaign_id: int | None = None, *, after_id: int = 0, limit: int = 100
    ) -> list[EventRecord]:
        """Events after ``after_id``, oldest first; all campaigns when ``campaign_id`` is None."""
        ...

    # -- suppression list (migration 0003) -------------------------------------------------
    # :meth:`record` also adds the address of every outcome that :func:`is_hard_bounce`, in the
    # same transaction.

    def add_suppressions(self, emails: Sequence[str], *, reason: str, source: str) -> int:
        """Put addresses (lower-cased) on the suppression list; one already there keeps its
        first reason. Returns how many were new."""
        ...

    def remove_suppressions(self, emails: Sequence[str]) -> int:
        """Take addresses off the suppression list. Returns how many were on it."""
        ...

    def suppressions(self, *, limit: int = 1000, offset: int = 0) -> list[SuppressionRecord]:
        """The suppression list, oldest first."""
        ...

    def suppressed_among(self, emails: Sequence[str]) -> dict[str, SuppressionRecord]:
        """Which of ``emails`` are suppressed, keyed by the lower-cased address."""
        ...

    # -- a route's shared budget (migration 0004) -----------------------------------------
    # Slots and members are held under leases: one whose ``lease_until`` has passed (``now``)
    # is gone. ``holder`` names one route runtime of one process.

    def acquire_route_slot(
        self, route_key: str, *, holder: str, limit: int, lease_seconds: float, now: float
    ) -> int | None:
        """Take the lowest connection slot below ``limit`` that no live lease holds, for
        ``holder`` until ``now + lease_seconds``; ``None`` when every one is held. Atomic: two
        holders never get one slot."""
        ...

    def release_route_slot(self, route_key: str, *, holder: str, slot: int) -> None:
        """Give a slot back (nothing happens if ``holder`` no longer holds it)."""
        ...

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
        """``holder``'s heartbeat: its membership (how many connections it ``wants``, and the
        ``target`` its pacer would have the route open) and
        every slot it holds are renewed until ``now + lease_seconds``; expired ones of anyone
        are dropped. Returns the route as every process sees it now."""
        ...

    def leave_route(self, route_key: str, *, holder: str) -> None:
        """``holder`` stops carrying the route: its membership and slots are given back."""
        ...

    def reserve_route_send(self, route_key: str, *, interval: float, now: float) -> float:
        """The route's shared "next send at" clock: returns when the next send may start (at
        least ``now``) and moves the clock ``interval`` seconds past it, atomically."""
        ...

    def patch_route_limits(self, route_key: str, patch: dict[str, Any], *, now: float) -> int:
        """Apply a JSON merge patch (:func:`merge_patch`) to the route's learned limits, in one
        atomic step (two processes' lessons about different limits both stay); returns the new
        version (:meth:`save_route_limits` moves it too)."""
        ...

    def close(self) -> None:
        """Release the database; the store cannot be used afterwards."""
        ...
