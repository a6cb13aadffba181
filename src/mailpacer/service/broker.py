"""Engine events fanned out to live listeners (SSE), with the latest progress per campaign.

The engine hands each :class:`~mailpacer.core.events.Event` to :meth:`Broker.__call__` (an
observer, in the event loop); every listener has a bounded queue, so a slow browser loses
progress snapshots, never slows the engine.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from mailpacer.core.events import Event, EventKind

__all__ = ["Broker", "Listener"]

#: events one listener may have waiting; beyond it the oldest are dropped
QUEUE_SIZE = 1000


@dataclass(eq=False)
class Listener:
    """One live subscriber: events of ``campaign_id`` (all when None)."""

    campaign_id: int | None
    queue: collections.deque[tuple[int, Event]] = field(
        default_factory=lambda: collections.deque(maxlen=QUEUE_SIZE)
    )
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    dropped: int = 0

    def offer(self, number: int, event: Event) -> None:
        """Queue ``event`` if it is one this listener follows."""
        if self.campaign_id is not None and event.campaign_id != self.campaign_id:
            return
        if len(self.queue) == self.queue.maxlen:
            self.dropped += 1
        self.queue.append((number, event))
        self.ready.set()

    def take(self) -> list[tuple[int, Event]]:
        """Everything queued, oldest first."""
        items = list(self.queue)
        self.queue.clear()
        self.ready.clear()
        return items


class Broker:
    """The engine's observer for the service: listeners, latest progress, reply counts."""

    def __init__(self) -> None:
        self.listeners: set[Listener] = set()
        self.progress: dict[int, dict[str, Any]] = {}  #: latest progress data per campaign
        self.replies: collections.Counter[tuple[int, str]] = collections.Counter()
        self.hooks: list[Callable[[Event], None]] = []
        self._numbers = itertools.count(1)

    def __repr__(self) -> str:
        return f"<Broker listeners={len(self.listeners)} campaigns={sorted(self.progress)}>"

    def __call__(self, event: Event) -> None:
        """Take one event from the engine."""
        if event.kind in (EventKind.PROGRESS, EventKind.STARTED):
            self.progress[event.campaign_id] = dict(event.data)
        elif event.kind is EventKind.OUTCOME:
            self.replies[(event.campaign_id, str(event.data.get("verdict")))] += 1
        elif event.kind is EventKind.FINISHED:
            live = self.progress.setdefault(event.campaign_id, {})
            live["rate"] = 0.0
            live["connections"] = 0
        for hook in self.hooks:
            hook(event)
        number = next(self._numbers)
        for listener in list(self.listeners):
            listener.offer(number, event)

    def listen(self, campaign_id: int | None) -> Listener:
        """A new listener; :meth:`leave` it when done."""
        listener = Listener(campaign_id)
        self.listeners.add(listener)
        return listener

    def leave(self, listener: Listener) -> None:
        """Stop feeding ``listener``."""
        self.listeners.discard(listener)
