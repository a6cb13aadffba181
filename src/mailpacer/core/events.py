"""One frozen event type that the engine hands to its observers (STYLE habit 14).

The progress bar, logging, the SSE feed and metrics subscribe with a plain callable; the engine
imports none of them. Observers must be quick and must not raise (errors are logged and dropped).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

log = logging.getLogger("mailpacer")


class EventKind(StrEnum):
    """What happened."""

    #: the engine started (or continued) a campaign; ``data`` has the counts so far
    STARTED = "started"
    #: periodic snapshot: counts, open connections, rate, ETA
    PROGRESS = "progress"
    #: one message reached an outcome; ``data`` has email, state, verdict, code, text
    OUTCOME = "outcome"
    #: the pacer learned or changed a limit; ``data`` has the limits and a sentence
    LIMITS = "limits"
    #: the campaign changed state (paused, waiting for a quota window, ...) with a reason
    STATE = "state"
    #: the engine stopped; ``data`` is the final report
    FINISHED = "finished"


@dataclass(frozen=True)
class Event:
    """Something the engine did, for observers."""

    kind: EventKind
    campaign_id: int
    at: float
    data: dict[str, Any] = field(default_factory=dict)


Observer = Callable[[Event], None]


class Emitter:
    """Hands each event to every observer; an observer that raises is logged, not fatal."""

    def __init__(self, observers: Iterable[Observer] = ()) -> None:
        self._observers = list(observers)

    def subscribe(self, observer: Observer) -> None:
        """Add an observer."""
        self._observers.append(observer)

    def emit(self, event: Event) -> None:
        """Deliver ``event`` to every observer."""
        for observer in self._observers:
            try:
                observer(event)
            except Exception:
                log.exception("observer %r failed on %s", observer, event.kind)
