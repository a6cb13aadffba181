"""Reading a reply in the light of what the route has shown (DESIGN §4, "generalize").

:func:`~mailpacer.core.classify.classify` reads one reply on its own. Where a rule only
*guessed* from the code and the phase (the server's words matched nothing we know), what the
route did before often tells more than the code does:

* a refused greeting (any code, or the connection closed or reset) while other connections to the
  same server are open and working is a connection limit, not a dead server;
* a 5xx at MAIL for the same sender the server accepted minutes ago is "slow down", not "this
  sender is refused" (servers signal limits with 5xx codes in words of their own);
* a 4xx at MAIL, before any recipient is named, is about the session, not the message;
* "too many connections" inside a transaction on the only open connection means "slower";
* connections that the server closes, silently or with a bare 421, after the same number of
  messages each time reveal a per-connection cap;
* a message "throttled" again and again while the route accepts many others is refused for
  itself: after :data:`MAX_THROTTLES_ALONE` such replies its code is believed (it fails or is
  retried with backoff), so no message is requeued forever.

A verdict that a rule read from the server's words is never changed here, and a guess that keeps
failing gives way: after :data:`MAX_GUESSED_IN_A_ROW` reinterpreted refusals with nothing accepted
in between, the reply means what its code says again (a sender that is really blocked pauses the
campaign; a persistent 4xx is retried with backoff). Pure: no I/O, no clock.
"""

from __future__ import annotations

import collections
import dataclasses

from mailpacer.core.classify import Classification, Phase, Reply, Verdict

__all__ = ["GUESSING_RULES", "MAX_GUESSED_IN_A_ROW", "MAX_THROTTLES_ALONE", "RouteHistory"]

V = Verdict
P = Phase

#: rules that decide from the code, the phase or the absence of a reply alone
GUESSING_RULES = frozenset(
    {
        "no-reply",
        "greeting-421",
        "other-4xx",
        "other-5xx",
        "sender-or-server-refused",
        "odd-reply",
        "unmatched",
    }
)
_GREETING = frozenset({P.CONNECT, P.EHLO})
_TRANSACTION = frozenset({P.MAIL, P.RCPT, P.DATA, P.DATA_END})
#: how many connections must end after the same count before it is taken for a cap
_CAP_CONFIRMATIONS = 2
#: reinterpreted MAIL refusals without an acceptance in between before the code is believed
MAX_GUESSED_IN_A_ROW = 8
#: throttles of one message, while the route accepted at least as many others, before the
#: throttle is taken to be about the message itself
MAX_THROTTLES_ALONE = 8
_THROTTLES = frozenset({V.THROTTLE_RATE, V.THROTTLE_PER_CONNECTION, V.THROTTLE_CONNECTIONS})


class RouteHistory:
    """What one route has shown during one engine run; one event loop owns it."""

    def __init__(self) -> None:
        self.accepted = 0  #: messages the server accepted on this route in this run
        self._session_ends: collections.Counter[int] = collections.Counter()
        self._guessed_in_row = 0
        self._most_carried = 0  #: most messages one connection carried so far
        #: message → (route acceptances at its first throttle, its throttles since)
        self._throttled: dict[int, tuple[int, int]] = {}

    def __repr__(self) -> str:
        ends = dict(sorted(self._session_ends.items()))
        return f"<RouteHistory accepted={self.accepted} session_ends={ends}>"

    def interpret(
        self,
        reply: Reply,
        result: Classification,
        *,
        open_connections: int,
        message: int | None = None,
    ) -> Classification:
        """``result`` as the route's history reads it; ``open_connections`` excludes the one
        that is being opened when ``reply`` answers a greeting; ``message`` names the message
        a transaction's reply is about."""
        read = self._read(reply, result, open_connections)
        if message is None:
            return read
        if read.verdict not in _THROTTLES:
            self._throttled.pop(message, None)
            return read
        return self._alone(message, reply, read)

    def _alone(self, message: int, reply: Reply, result: Classification) -> Classification:
        """A message "throttled" again and again while the route accepts others is refused for
        itself (a size, a recipient, content in words we read as a limit): believe the code."""
        first, count = self._throttled.get(message, (self.accepted, 0))
        count += 1
        self._throttled[message] = (first, count)
        others = self.accepted - first
        if count <= MAX_THROTTLES_ALONE or others < MAX_THROTTLES_ALONE or reply.code is None:
            return result
        verdict = V.TRANSIENT
        if reply.code // 100 == 5 and reply.phase is P.RCPT:
            verdict = V.RECIPIENT_REJECTED
        elif reply.code // 100 == 5 and reply.phase in (P.DATA, P.DATA_END):
            verdict = V.MESSAGE_REJECTED
        return _as(result, verdict, "refused-alone-while-others-pass")

    def _read(self, reply: Reply, result: Classification, open_connections: int) -> Classification:
        if result.verdict is V.ACCEPTED:
            if reply.phase is P.DATA_END:
                self.accepted += 1
                self._guessed_in_row = 0
                self._most_carried = max(self._most_carried, reply.messages_on_connection + 1)
            return result
        if (
            result.verdict is V.THROTTLE_CONNECTIONS
            and reply.phase in _TRANSACTION
            and open_connections <= 1
        ):  # one connection is not too many: the server wants us slower
            return _as(result, V.THROTTLE_RATE, "connections-at-one")
        if result.rule not in GUESSING_RULES:
            return result
        if reply.phase in _GREETING and open_connections > 0:
            if result.verdict in (V.TRANSIENT, V.ROUTE_FAILURE):
                return _as(result, V.THROTTLE_CONNECTIONS, "refused-while-route-works")
            return result
        if reply.phase is P.MAIL:
            return self._at_mail(reply, result)
        return result

    def _at_mail(self, reply: Reply, result: Classification) -> Classification:
        carried = reply.messages_on_connection
        closing = reply.code is None or reply.code == 421
        if closing and carried > 0 and carried >= self._most_carried:
            # (a connection that carried more refutes a cap at this count)
            self._session_ends[carried] += 1
            if self._session_ends[carried] >= _CAP_CONFIRMATIONS:
                return _as(result, V.THROTTLE_PER_CONNECTION, "session-ends-after-same-count")
        if reply.code is None or self._guessed_in_row >= MAX_GUESSED_IN_A_ROW:
            return result  # (no reply: a reused connection the server closed; requeued as is)
        if reply.code // 100 == 4:
            self._guessed_in_row += 1
            return _as(result, V.THROTTLE_RATE, "mail-deferred")
        if reply.code // 100 == 5 and self.accepted > 0:
            self._guessed_in_row += 1
            return _as(result, V.THROTTLE_RATE, "mail-refused-after-accepting")
        return result


def _as(result: Classification, verdict: Verdict, rule: str) -> Classification:
    return dataclasses.replace(result, verdict=verdict, rule=f"{rule} ({result.rule})")
