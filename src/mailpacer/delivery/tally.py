"""What one engine run has done so far (for progress events and the report): pure, clock passed in.

Counts are by kind — the message states reached (``sent``, ``failed``, ``deferred``,
``uncertain``, ...) and ``throttles`` (throttle replies, refused greetings included) — on top of
what the store held when the run started.
"""

from __future__ import annotations

import collections
from typing import Any

from mailpacer.core.states import MessageState
from mailpacer.store import CampaignStats

__all__ = ["RunTally"]

M = MessageState
_RATE_SPAN = 5.0  #: seconds of accepted messages that the shown rate averages


class RunTally:
    """Outcomes of this run by kind, and when messages were accepted (monotonic seconds)."""

    def __init__(self, initial: CampaignStats) -> None:
        self.initial = initial
        self.counts = collections.Counter[str]()
        self._accepted: collections.deque[float] = collections.deque(maxlen=4096)

    def __repr__(self) -> str:
        shown = " ".join(f"{k}={v}" for k, v in sorted(self.counts.items()))
        return f"<RunTally total={self.initial.total} {shown}>".replace(" >", ">")

    def add(self, kind: str) -> None:
        """One more outcome of ``kind``."""
        self.counts[kind] += 1

    def accepted(self, now: float) -> None:
        """A message was accepted at ``now`` (monotonic)."""
        self._accepted.append(now)

    def rate(self, now: float) -> float:
        """Messages accepted per second over the last few seconds."""
        recent = [t for t in self._accepted if now - t <= _RATE_SPAN]
        if len(recent) < 2:
            return 0.0
        return len(recent) / max(now - recent[0], 1e-3)

    def progress(self, now: float) -> dict[str, Any]:
        """The counts part of a progress event: campaign totals and this run's share."""
        counts, run = self.initial.counts, self.counts
        return {
            "total": self.initial.total,
            "sent": counts[M.SENT] + run["sent"],
            "failed": counts[M.FAILED] + run["failed"],
            "deferred": run["deferred"],
            "uncertain": self.initial.uncertain_ever + run["uncertain"],
            "cancelled": counts[M.CANCELLED],
            "sent_this_run": run["sent"],
            "failed_this_run": run["failed"],
            "deferred_this_run": run["deferred"],
            "uncertain_this_run": run["uncertain"],
            "throttles_this_run": run["throttles"],
            "rate": self.rate(now),
        }
