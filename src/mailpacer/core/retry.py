"""Backoff maths for deferred messages (DESIGN §3): pure, no sleeping, randomness injected.

A transient failure is retried after ``base × multiplier^(attempts-1)`` seconds, capped, with
multiplicative jitter — by default 5 s, 20 s, 80 s, … up to four hours: a fault of the server's
(a queue write error, a dropped connection) usually clears at once, a recipient's trouble (a full
mailbox, a reputation deferral) may take a day, and twelve attempts span about 22 hours. A
server's hint ("try again in 300 seconds") is honoured instead; greylisting without a hint waits
at least ``greylist_min_seconds`` (greylisters refuse a retry that comes sooner). The message
gives up (``None``) after ``max_attempts`` attempts or when the next try would fall past
``max_age_seconds`` after its first attempt (SendGrid retries deferrals for 72 hours).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from mailpacer.core.errors import ConfigError

__all__ = ["RetryPolicy", "backoff_delay", "next_retry"]


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long a transient failure is retried; frozen and validated."""

    max_attempts: int = 12  #: counted attempts, the first one included
    max_age_seconds: float = 3 * 86400.0  #: give up when the next try would be later than this
    base_seconds: float = 5.0  #: delay after the first failed attempt
    cap_seconds: float = 4 * 3600.0  #: no computed delay is longer
    jitter: float = 0.2  #: each delay is scaled by a random factor in [1 - jitter, 1 + jitter]
    multiplier: float = 4.0
    greylist_min_seconds: float = 60.0  #: a greylisting without a hint waits at least this
    isolated_seconds: float = 1.0  #: a fault of one message while the server takes others
    max_hint_seconds: float = 86400.0  #: a server hint longer than this is cut to it

    def __post_init__(self) -> None:
        checks = {
            "max_attempts": self.max_attempts >= 1,
            "max_age_seconds": self.max_age_seconds > 0,
            "base_seconds": self.base_seconds >= 0,
            "cap_seconds": self.cap_seconds >= self.base_seconds,
            "jitter": 0 <= self.jitter < 1,
            "multiplier": self.multiplier >= 1,
            "max_hint_seconds": self.max_hint_seconds >= 0,
            "greylist_min_seconds": self.greylist_min_seconds >= 0,
            "isolated_seconds": self.isolated_seconds >= 0,
        }
        for key, ok in checks.items():
            value = getattr(self, key)
            if not ok or (isinstance(value, float) and not math.isfinite(value)):
                raise ConfigError(f"retry policy: bad {key} {value!r}", key=key)

    @classmethod
    def fast(cls, *, max_attempts: int = 3) -> RetryPolicy:
        """Test mode: the same logic with delays of hundredths of a second, no jitter."""
        return cls(
            max_attempts=max_attempts,
            max_age_seconds=60.0,
            base_seconds=0.01,
            cap_seconds=0.05,
            jitter=0.0,
            max_hint_seconds=0.05,
            greylist_min_seconds=0.01,
            isolated_seconds=0.01,
        )


def backoff_delay(policy: RetryPolicy, attempts: int, rng: random.Random) -> float:
    """Seconds to wait after ``attempts`` failed attempts (≥ 1): exponential, jittered, capped."""
    try:
        raw = min(
            policy.cap_seconds, policy.base_seconds * policy.multiplier ** (max(attempts, 1) - 1)
        )
    except OverflowError:  # a thousand doublings: far past any cap
        raw = policy.cap_seconds
    spread = 1.0 + policy.jitter * (2.0 * rng.random() - 1.0)
    return min(policy.cap_seconds, max(0.0, raw * spread))


def next_retry(
    policy: RetryPolicy,
    *,
    attempts: int,
    first_attempt_at: float,
    now: float,
    hint: float | None,
    rng: random.Random,
    floor: float = 0.0,
    ladder: int | None = None,
) -> float | None:
    """When to try again (a timestamp on ``now``'s clock), or ``None`` to give up (→ failed).

    ``attempts`` counts the attempts made so far, the one that just failed included. A server
    ``hint`` in seconds replaces the computed backoff (greylisting asks for a precise wait);
    without one, the backoff is at least ``floor`` seconds. ``ladder``: the rung of the backoff
    to use instead of ``attempts`` (0: ``isolated_seconds`` — a fault of this message alone
    while the server takes others is not a reason to wait, let alone longer each time);
    ``attempts`` still decides when to give up.
    """
    if attempts >= policy.max_attempts:
        return None
    if hint is not None and math.isfinite(hint):
        delay = min(max(hint, 0.0), policy.max_hint_seconds)
    else:
        if ladder == 0:
            spread = 1.0 + policy.jitter * (2.0 * rng.random() - 1.0)
            delay = max(policy.isolated_seconds * spread, floor)
        else:
            rung = attempts if ladder is None else ladder
            delay = max(backoff_delay(policy, rung, rng), floor)
    retry_at = now + delay
    if retry_at - first_attempt_at > policy.max_age_seconds:
        return None
    return retry_at
