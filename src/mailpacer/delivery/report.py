"""The final report of a run: counts, duration, throughput and learned limits (DESIGN §7).

``to_dict`` is the ``--json`` contract: ``campaign``, ``sent``, ``failed``, ``uncertain``,
``cancelled``, ``seconds`` and ``limits`` are always present. ``routes`` has one entry per route
the campaign sends through (several for a group): what it sent, what was learned of it, and why
it failed if it did. ``limits`` are the first route's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from mailpacer.core.states import MessageState
from mailpacer.pacing.pacer import Limits
from mailpacer.store import CampaignRecord, Store

M = MessageState


@dataclass(frozen=True)
class Failure:
    """One message that failed, with the server's reason."""

    email: str
    code: int | None
    reason: str


@dataclass(frozen=True)
class RouteReport:
    """One route of the campaign: messages accepted through it (all runs), its learned limits,
    and why it failed in this run (None: it worked)."""

    route: str
    sent: int
    limits: dict[str, Any]
    limits_text: str
    error: str | None = None


@dataclass(frozen=True)
class Report:
    """What happened to a campaign, as of the end of a run."""

    campaign: int
    key: str
    name: str
    state: str
    reason: str | None
    total: int
    sent: int
    failed: int
    uncertain: int  #: messages reported uncertain at some point (resent or held)
    cancelled: int
    queued: int
    deferred: int
    held: int  #: uncertain messages held for review (policy "hold")
    seconds: float
    sent_this_run: int
    throughput: float  #: messages accepted per second in this run
    throttles: int  #: throttle or quota replies in this run
    limits: dict[str, Any]
    limits_text: str
    explanations: list[str] = field(default_factory=list)  #: why each limit was learned
    route_error: str | None = None
    failures: list[Failure] = field(default_factory=list)
    left_deferred: int = 0  #: deferred messages this run left for a later one (exit 75)
    routes: list[RouteReport] = field(default_factory=list)  #: per route, in the group's order

    @property
    def complete(self) -> bool:
        """Nothing is left to send: every message is sent, failed or cancelled."""
        return self.queued == 0 and self.deferred == 0 and self.held == 0 and self.state == "done"

    @property
    def exit_code(self) -> int:
        """0 when every deliverable message is sent; 4 on a route failure; 75 when only
        deferred messages are left for a later run; 1 otherwise."""
        if self.route_error:
            return 4
        if self.left_deferred and self.queued == 0 and self.held == 0:
            return 75
        if not self.complete:
            return 1
        gave_up = any(f.reason.startswith("gave up") for f in self.failures)
        return 1 if gave_up else 0

    def to_dict(self) -> dict[str, Any]:
        """The ``--json`` report."""
        data = asdict(self)
        data["seconds"] = round(self.seconds, 3)
        data["throughput"] = round(self.throughput, 2)
        data["exit_code"] = self.exit_code
        return data


def build_report(
    store: Store,
    campaign: CampaignRecord,
    limits: Limits,
    *,
    seconds: float,
    sent_this_run: int,
    throttles_this_run: int,
    route_error: str | None = None,
    max_failures: int = 1000,
    left_deferred: int = 0,
    routes: Sequence[tuple[str, Limits, str | None]] = (),
) -> Report:
    """Read the campaign's counts and failures from the store into a :class:`Report`.
    ``routes``: each route's key, learned limits and failure (None: it worked)."""
    stats = store.stats(campaign.id)
    sent_by_route = store.sent_by_route(campaign.id) if routes else {}
    counts = stats.counts
    failures = [
        Failure(m.email, m.last_code, m.last_text or m.last_verdict or "failed")
        for m in store.messages(campaign.id, state=M.FAILED, limit=max_failures)
    ]
    return Report(
        campaign=campaign.id,
        key=campaign.key,
        name=campaign.name,
        state=campaign.state.value,
        reason=campaign.reason,
        total=stats.total,
        sent=counts[M.SENT],
        failed=counts[M.FAILED],
        uncertain=stats.uncertain_ever,
        cancelled=counts[M.CANCELLED],
        queued=counts[M.QUEUED] + counts[M.SENDING],
        deferred=counts[M.DEFERRED],
        held=counts[M.UNCERTAIN],
        seconds=seconds,
        sent_this_run=sent_this_run,
        throughput=sent_this_run / seconds if seconds > 0 else 0.0,
        throttles=throttles_this_run,
        limits=limits.to_dict(),
        limits_text=limits.describe(),
        explanations=limits.explanations,
        route_error=route_error,
        failures=failures,
        left_deferred=left_deferred,
        routes=[
            RouteReport(
                key, sent_by_route.get(key, 0), learned.to_dict(), learned.describe(), error
            )
            for key, learned, error in routes
        ],
    )
