"""What the campaign page's chart draws: messages/s and open connections over time, and the
moments a limit was learned, with the pacer's sentence — kept in memory per campaign from the
engine's events (a hook on the service's broker), bounded and thinned as a run grows long."""

from __future__ import annotations

import collections
from dataclasses import dataclass, field
from typing import Any

from mailpacer.core.events import Event, EventKind

__all__ = ["History", "Mark", "Sample", "Trace"]

#: samples kept per campaign; when full, every other one is dropped and the spacing doubles
MAX_SAMPLES = 600
#: marks kept per campaign (limits learned, state changes)
MAX_MARKS = 100
#: campaigns remembered (the least recently updated are forgotten first)
MAX_CAMPAIGNS = 200


@dataclass(frozen=True)
class Sample:
    """One point of the chart."""

    at: float
    rate: float
    connections: int
    sent: int


@dataclass(frozen=True)
class Mark:
    """A moment worth a line on the chart: ``kind`` is ``limit`` or ``state``."""

    at: float
    kind: str
    text: str


@dataclass
class Trace:
    """One campaign's samples and marks."""

    samples: list[Sample] = field(default_factory=list)
    marks: collections.deque[Mark] = field(
        default_factory=lambda: collections.deque(maxlen=MAX_MARKS)
    )
    said: set[str] = field(default_factory=set)  #: explanations already marked
    spacing: float = 0.25  #: seconds between kept samples (the engine's progress interval)

    def add(self, sample: Sample) -> None:
        """Keep ``sample`` unless it comes sooner than the spacing after the last one."""
        if self.samples and sample.at - self.samples[-1].at < self.spacing:
            return
        self.samples.append(sample)
        if len(self.samples) > MAX_SAMPLES:
            self.samples = self.samples[::2]
            self.spacing *= 2

    def to_dict(self) -> dict[str, Any]:
        """The JSON the page's script draws."""
        return {
            "samples": [[s.at, round(s.rate, 2), s.connections, s.sent] for s in self.samples],
            "marks": [{"at": m.at, "kind": m.kind, "text": m.text} for m in self.marks],
        }


class History:
    """The broker hook: one :class:`Trace` per campaign seen running in this process."""

    def __init__(self) -> None:
        self.traces: collections.OrderedDict[int, Trace] = collections.OrderedDict()

    def __repr__(self) -> str:
        return f"<History campaigns={list(self.traces)}>"

    def trace(self, campaign_id: int) -> Trace | None:
        """The campaign's trace, if it ran here."""
        return self.traces.get(campaign_id)

    def _trace(self, campaign_id: int) -> Trace:
        trace = self.traces.get(campaign_id)
        if trace is None:
            trace = self.traces[campaign_id] = Trace()
            while len(self.traces) > MAX_CAMPAIGNS:
                self.traces.popitem(last=False)
        self.traces.move_to_end(campaign_id)
        return trace

    def __call__(self, event: Event) -> None:
        """Take one engine event."""
        data = event.data
        if event.kind in (EventKind.PROGRESS, EventKind.STARTED):
            sample = Sample(
                event.at,
                float(data.get("rate") or 0.0),
                int(data.get("connections") or 0),
                int(data.get("sent") or 0),
            )
            self._trace(event.campaign_id).add(sample)
        elif event.kind is EventKind.LIMITS:
            trace = self._trace(event.campaign_id)
            for sentence in data.get("explanations") or ():
                if sentence not in trace.said:
                    trace.said.add(sentence)
                    trace.marks.append(Mark(event.at, "limit", str(sentence)))
        elif event.kind is EventKind.STATE:
            reason = data.get("reason")
            text = f"{data.get('state')}: {reason}" if reason else str(data.get("state"))
            self._trace(event.campaign_id).marks.append(Mark(event.at, "state", text))
        elif event.kind is EventKind.FINISHED:
            trace = self._trace(event.campaign_id)
            last = trace.samples[-1].sent if trace.samples else 0
            trace.samples.append(Sample(event.at, 0.0, 0, int(data.get("sent") or last)))
            state, reason = data.get("state"), data.get("reason")
            said = trace.marks[-1].text if trace.marks else ""
            if state in ("paused", "cancelled") and not said.startswith(str(state)):
                text = f"{state}: {reason}" if reason else str(state)
                trace.marks.append(Mark(event.at, "state", text))
