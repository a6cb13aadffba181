"""What a classified reply means for one message (DESIGN §3, §4): pure, no I/O.

The engine asks :func:`decide` and records what it returns; route-level consequences (pacing,
pausing the campaign) are the pacer's and the engine's business.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from mailpacer.core.classify import Classification, Phase, Reply, Verdict
from mailpacer.core.retry import RetryPolicy, next_retry
from mailpacer.core.states import MessageState

V = Verdict
M = MessageState

#: verdicts that are the route's fault: the message goes back to the queue, no attempt counted
ROUTE_THROTTLES = frozenset(
    {V.THROTTLE_CONNECTIONS, V.THROTTLE_RATE, V.THROTTLE_PER_CONNECTION, V.QUOTA}
)


@dataclass(frozen=True)
class Decision:
    """One state change to record for a message."""

    state: MessageState
    verdict: str
    text: str
    count_attempt: bool = True
    retry_at: float | None = None


def decide(
    reply: Reply,
    result: Classification,
    *,
    attempts: int,
    first_attempt_at: float | None,
    now: float,
    policy: RetryPolicy,
    rng: random.Random,
    resend_uncertain: bool = True,
    route_accepting: bool = False,
) -> tuple[Decision, ...]:
    """The state change(s) for a message whose transaction ended with ``reply``.

    ``attempts`` is how many counted attempts the message had before this one.
    ``route_accepting``: the server accepted other messages moments ago, so a transient fault
    or a greylisting is this message's alone: it is retried after the policy's
    ``isolated_seconds`` (or the server's hint), not after an ever longer backoff.
    """
    verdict = result.verdict
    text = reply.text
    if verdict is V.ACCEPTED:
        return (Decision(M.SENT, verdict, text),)
    if verdict in ROUTE_THROTTLES or verdict is V.ROUTE_FAILURE:
        return (Decision(M.QUEUED, verdict, text, count_attempt=False),)
    if verdict is V.AMBIGUOUS:
        uncertain = Decision(M.UNCERTAIN, verdict, text)
        if not resend_uncertain:
            return (uncertain,)
        resend = Decision(
            M.QUEUED, "resend", "resent with the same Message-ID", count_attempt=False
        )
        return (uncertain, resend)
    if verdict in (V.GREYLIST, V.TRANSIENT):
        if reply.code is None and reply.phase is Phase.MAIL and reply.messages_on_connection > 0:
            # a reused connection the server had already closed: not this message's fault
            return (Decision(M.QUEUED, verdict, text, count_attempt=False),)
        first = first_attempt_at if first_attempt_at is not None else now
        retry_at = next_retry(
            policy,
            attempts=attempts + 1,
            first_attempt_at=first,
            now=now,
            hint=result.retry_after,
            rng=rng,
            floor=policy.greylist_min_seconds if verdict is V.GREYLIST else 0.0,
            ladder=0 if route_accepting else (1 if verdict is V.GREYLIST else None),
        )
        if retry_at is None:
            return (Decision(M.FAILED, verdict, f"gave up after {attempts + 1} attempts: {text}"),)
        return (Decision(M.DEFERRED, verdict, text, retry_at=retry_at),)
    # recipient or message rejected: permanent for this message
    return (Decision(M.FAILED, verdict, text),)
