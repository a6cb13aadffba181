"""A route's sending quota (DESIGN §5): counted per window, learned when nobody says it."""

from __future__ import annotations

import collections
import math

from mailpacer.core.limits import Limits

__all__ = ["QuotaWindow"]


class QuotaWindow:
    """A route's sending quota: what each window lets through, and how long the route waits
    once the server says it is used up. Pure bookkeeping over the times it is given.

    With the window known (configured, or learned), the route stops at the quota until the
    oldest send in the window ages out. Told nothing, a quota reply starts a wait that probes:
    after ``first_wait`` one message is tried, and while it is refused the wait doubles, up to
    ``max_wait``. The probe that gets through bounds the window from above (from the window's
    first accepted message until then), each refusal from below; the quota is what that window
    let through. Later windows wait for the upper bound, but first try once halfway between the
    bounds until they are within 5% of each other. A server's hint always sets the wait.
    """

    def __init__(
        self,
        *,
        learned: Limits,
        ceilings: Limits,
        first_wait: float,
        max_wait: float,
        low: float | None = None,
    ) -> None:
        self._told_quota, self._told_window = ceilings.quota, ceilings.quota_window_seconds
        self.learned_quota = learned.quota  #: messages one window let through
        self.learned_window = learned.quota_window_seconds  #: an upper bound of the window
        self._low: float | None = low  #: the window is longer than this
        self._first_wait, self._max_wait = first_wait, max_wait
        self._wait = first_wait
        self._sends: collections.deque[float] = collections.deque(maxlen=100_000)
        self._start: float | None = None  #: the current window's first accepted message
        self._count = 0  #: accepted since then
        self._probe: float | None = None  #: while a probe is due: the start of its window
        self._waited = False  #: the pause is the probing wait (not the window, not a hint)
        self._armed: float | None = None  #: a full window waited for since, to try halfway
        self.blocked_until = -math.inf

    @property
    def quota(self) -> int | None:
        """Messages per window: the smaller of what was learned and what was configured."""
        known = [q for q in (self.learned_quota, self._told_quota) if q is not None]
        return min(known) if known else None

    @property
    def window(self) -> float | None:
        """The window's length in seconds: configured, else learned (an upper bound)."""
        return self._told_window or self.learned_window

    @property
    def probing(self) -> bool:
        """True while the next message is a probe: the route should send only one."""
        return self._probe is not None

    def blocked_for(self, now: float, in_flight: int = 0) -> float:
        """Seconds until the route may send again (0.0 = now); ``in_flight`` messages are on
        their way and count against the quota already."""
        blocked = max(0.0, self.blocked_until - now)
        quota, window = self.quota, self.window
        if quota is None or window is None or self._probe is not None:
            return blocked
        room = max(1, quota - in_flight)  # what the window may hold of what came back
        if len(self._sends) < room or self._sends[-room] <= now - window:
            return blocked
        oldest = self._sends[-room]  # the window is full until this one ages out
        trial = oldest + self._trial(window)
        if self._armed != oldest:  # newly full: try early only if it is not too late for that
            self._armed = oldest if now < trial else None
        if self._armed is None:
            return max(blocked, oldest + window - now)
        if now < trial:
            return max(blocked, trial - now)
        self._probe, self._armed = oldest, None  # halfway: the next message tells which half
        return blocked

    def accepted(self, now: float) -> None:
        """A message was accepted at ``now``."""
        if now < self.blocked_until:  # on its way when the quota was used up: it counted
            if self.learned_quota is not None:
                self.learned_quota += 1
        elif self._probe is not None:  # the window has reset since the probe's window began
            if self._told_window is None and now > self._probe:
                self.learned_window = min(self.learned_window or math.inf, now - self._probe)
            self._probe = None
            self._wait = self._first_wait
            self._start, self._count = None, 0
        if self._start is None:
            self._start = now
        self._count += 1
        self._sends.append(now)

    def refused(self, now: float, hint: float | None) -> None:
        """The server said the quota is used up (``hint``: seconds it said to wait)."""
        if now < self.blocked_until:
            return  # the answer to a message sent before this pause began: nothing new
        window = self.window
        start: float | None = self._probe
        if start is not None:  # the probe was refused: the window has not reset yet
            if hint is None and window is not None and start + window > now:
                hint = start + window - now  # a halfway try: wait for the upper bound
            if hint is None and self._waited:
                self._wait = min(self._max_wait, 2 * self._wait)
        else:  # used up: learn how many passed, wait for the window (or probe for it)
            start, count = self._start, self._count
            if window is not None:
                inside = [t for t in self._sends if t > now - window]
                start, count = (inside[0] if inside else None), len(inside)
                if hint is None and start is not None:
                    hint = start + window - now
            if count > 0:
                self.learned_quota = count
            self._wait = self._first_wait
            self._probe = start if start is not None else now
        if start is not None and self._told_window is None and now > start:
            self._low = max(self._low or 0.0, now - start)
            if self.learned_window is not None and self._low >= self.learned_window:
                self.learned_window = None  # longer than learned after all: learn it again
        self._waited = hint is None or hint <= 0
        self.blocked_until = now + (self._wait if self._waited else hint or 0.0)

    def _trial(self, window: float) -> float:
        """How long to let the window run before trying a message: halfway between the bounds
        while they are far apart, else the (upper bound of the) window."""
        low = self._low
        if (
            self._told_window is not None
            or low is None
            or low >= window
            or window - low <= 0.05 * window
        ):
            return window
        return (low + window) / 2
