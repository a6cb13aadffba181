"""The sandbox's limits as plain objects: they decide, the server acts. Times are passed in
(monotonic seconds), so these are testable without sockets or sleeping."""

from __future__ import annotations

import collections
import math
from collections import Counter


class ConnectionSlots:
    """Concurrent connections per client IP, with an optional limit, and the peak seen."""

    def __init__(self, limit: int | None) -> None:
        self.limit = limit
        self._by_ip: Counter[str] = Counter()
        self.open = 0
        self.peak = 0

    def acquire(self, ip: str) -> bool:
        """Take a slot for ``ip``; False (nothing taken) when the IP is at its limit."""
        if self.limit is not None and self._by_ip[ip] >= self.limit:
            return False
        self._by_ip[ip] += 1
        self.open += 1
        self.peak = max(self.peak, self.open)
        return True

    def release(self, ip: str) -> None:
        """Give back one slot of ``ip`` (the caller makes sure it releases only once)."""
        self._by_ip[ip] -= 1
        if self._by_ip[ip] <= 0:
            del self._by_ip[ip]
        self.open -= 1

    def __repr__(self) -> str:
        return f"<ConnectionSlots open={self.open} peak={self.peak} limit={self.limit}>"


class TokenBucket:
    """``rate`` tokens per second up to ``burst``; starts full."""

    def __init__(self, rate: float, burst: int, now: float) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = float(burst)
        self.stamp = now

    def take(self, now: float) -> bool:
        """Take one token if there is one."""
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


class WindowCounter:
    """``count`` messages per window; "fixed" starts a window at the first message after the
    last one ended (Postfix anvil's ``anvil_rate_time_unit``), "sliding" counts the last
    ``seconds``."""

    def __init__(self, count: int, seconds: float, shape: str) -> None:
        self.count, self.seconds, self.shape = count, seconds, shape
        self._start: float | None = None
        self._times: collections.deque[float] = collections.deque()

    def take(self, now: float) -> bool:
        """Count one message if the window has room."""
        if self.shape == "fixed":
            if self._start is None or now - self._start >= self.seconds:
                self._start = now
                self._times.clear()
        else:
            while self._times and self._times[0] <= now - self.seconds:
                self._times.popleft()
        if len(self._times) >= self.count:
            return False
        self._times.append(now)
        return True


class RateLimiter:
    """Per client IP: a token bucket (messages per minute, with a burst), or a count per fixed
    or sliding window of ``window`` seconds (``per_minute * window / 60`` messages)."""

    def __init__(
        self, per_minute: float, burst: int, *, shape: str = "bucket", window: float = 60.0
    ) -> None:
        self.rate = per_minute / 60.0
        self.burst = burst
        self.shape, self.window = shape, window
        self._buckets: dict[str, TokenBucket] = {}
        self._windows: dict[str, WindowCounter] = {}

    def allow(self, ip: str, now: float) -> bool:
        """True when ``ip`` may start one more message now."""
        if self.shape != "bucket":
            counter = self._windows.get(ip)
            if counter is None:
                count = max(1, round(self.rate * self.window))
                counter = self._windows[ip] = WindowCounter(count, self.window, self.shape)
            return counter.take(now)
        bucket = self._buckets.get(ip)
        if bucket is None:
            bucket = self._buckets[ip] = TokenBucket(self.rate, self.burst, now)
        return bucket.take(now)


class Greylist:
    """First try per (client IP, recipient) is refused until ``delay`` seconds have passed."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self._first_seen: dict[tuple[str, str], float] = {}
        self._passed: set[tuple[str, str]] = set()

    def wait(self, ip: str, rcpt: str, now: float) -> int | None:
        """Whole seconds the client must still wait (at least 1), or None when it may pass."""
        key = (ip, rcpt.lower())
        if key in self._passed:
            return None
        first = self._first_seen.setdefault(key, now)
        remaining = first + self.delay - now
        if remaining <= 0:
            self._passed.add(key)
            del self._first_seen[key]
            return None
        return max(1, math.ceil(remaining))


class Quota:
    """At most ``limit`` accepted messages per fixed window that starts at the first message."""

    def __init__(self, limit: int, window: float) -> None:
        self.limit = limit
        self.window = window
        self.used = 0
        self._start: float | None = None

    def _roll(self, now: float) -> None:
        if self._start is not None and now - self._start >= self.window:
            self._start = None
            self.used = 0

    def exhausted(self, now: float) -> bool:
        """True when no more messages are accepted in the current window."""
        self._roll(now)
        return self.used >= self.limit

    def count(self, now: float) -> None:
        """Count one accepted message."""
        self._roll(now)
        if self._start is None:
            self._start = now
        self.used += 1
