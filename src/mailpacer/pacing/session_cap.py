"""Messages per connection (DESIGN §5): a learned cap, read from behaviour, probed to heal.

A cap is learned when a refusal's words say so, or when refusals land at the same count on
every connection whatever their words (:func:`~mailpacer.pacing.evidence.per_connection_cap`).
It is a hypothesis: after a clean stretch (:attr:`SessionCap.probing`) connections may carry
more; one that carries more than the cap refutes it, a refusal at the cap again confirms it and
the next probe waits twice as long. Pure bookkeeping, no clock.
"""

from __future__ import annotations

import collections

from mailpacer.pacing.evidence import per_connection_cap

__all__ = ["SessionCap"]


class SessionCap:
    """The learned per-connection cap and the evidence for it."""

    def __init__(self, learned: int | None, *, probe_after: int = 200) -> None:
        self.cap = learned  #: the learned cap (``None`` = none known)
        self.most_carried = 0  #: the most messages one connection carried
        self._counts: collections.deque[int] = collections.deque(maxlen=6)
        self._first_probe = probe_after
        self._probe_after = probe_after // 2 if learned else probe_after  #: persisted: sooner
        self._clean = 0  #: accepted messages since the cap was learned or confirmed
        self.probing = False  #: connections may carry more than the cap, to test it

    @property
    def applied(self) -> int | None:
        """The cap connections keep to now (none while it is being probed)."""
        return None if self.probing else self.cap

    def accepted(self, carried_before: int) -> str | None:
        """A message was accepted on a connection that had carried ``carried_before``; returns
        why the cap was refuted, if it was."""
        carried = carried_before + 1
        self.most_carried = max(self.most_carried, carried)
        self._clean += 1
        cap = self.cap
        if cap is not None and carried > cap:
            self.cap, self.probing, self._clean = None, False, 0
            self._probe_after = self._first_probe
            self._counts.clear()
            return f"a connection carried {carried} messages → no cap of {cap} per connection"
        if cap is not None and not self.probing and self._clean >= self._probe_after:
            self.probing = True
        return None

    def adopt(self, cap: int) -> bool:
        """Another process learned a cap: when it is stricter than this one's (or there is
        none), it is kept from now on. Returns whether it was adopted."""
        if self.cap is not None and cap >= self.cap:
            return False
        self.cap, self.probing, self._clean = cap, False, 0
        return True

    def throttled(self, carried: int, *, told: bool, closing: bool = True) -> int | None:
        """A refusal on a connection that had carried ``carried`` messages; ``told``: its words
        said "per connection"; ``closing``: the server ended the connection with it (a 421),
        as a cap does and a rate limit seldom does. Returns the cap it shows (new or
        confirmed), else ``None``."""
        if carried < 1:
            return None
        if not told and not closing:
            return None  # (connections in lockstep reach one count together under a rate)
        self._counts.append(carried)
        if self.cap is not None and carried == self.cap:  # at the cap again: it holds
            if self.probing:
                self.probing = False
                self._probe_after *= 2
            self._clean = 0
            return self.cap
        if told:  # what this connection carried is what one may carry
            new = min(self.cap or carried, carried)
        else:
            read = per_connection_cap(list(self._counts), self.most_carried)
            if read is None:
                return None
            new = read
        self.cap, self.probing, self._clean = new, False, 0
        return new
