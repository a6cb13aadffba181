"""Replies read with the route's history: guesses give way to what the route has shown."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailpacer.core.classify import Phase, Reply, Verdict, classify
from mailpacer.core.context import MAX_GUESSED_IN_A_ROW, MAX_THROTTLES_ALONE, RouteHistory

V = Verdict
P = Phase


def read(
    history: RouteHistory,
    code: int | None,
    text: str,
    phase: Phase,
    *,
    carried: int = 0,
    open_connections: int = 0,
) -> Verdict:
    """The verdict ``history`` gives one reply."""
    reply = Reply(code, text, phase, carried)
    return history.interpret(reply, classify(reply), open_connections=open_connections).verdict


def worked(accepted: int = 3) -> RouteHistory:
    """A history in which the server has accepted ``accepted`` messages."""
    history = RouteHistory()
    for _ in range(accepted):
        read(history, 250, "2.0.0 Ok: queued", P.DATA_END)
    return history


# (code, text, phase, messages on the connection, open connections, verdict on a route that has
#  delivered, verdict on a fresh route with nothing open)
CASES: list[tuple[int | None, str, Phase, int, int, Verdict, Verdict]] = [
    # greeting refused in words we do not know, while other connections work
    (
        554,
        "mx.example.net ESMTP not accepting connections",
        P.CONNECT,
        0,
        2,
        V.THROTTLE_CONNECTIONS,
        V.ROUTE_FAILURE,
    ),
    (450, "Service not available right now", P.CONNECT, 0, 1, V.THROTTLE_CONNECTIONS, V.TRANSIENT),
    (None, "Connection lost", P.CONNECT, 0, 3, V.THROTTLE_CONNECTIONS, V.TRANSIENT),
    (None, "Server disconnected unexpectedly", P.EHLO, 0, 1, V.THROTTLE_CONNECTIONS, V.TRANSIENT),
    # the server's own words win, whatever the history
    (
        None,
        "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed",
        P.CONNECT,
        0,
        2,
        V.ROUTE_FAILURE,
        V.ROUTE_FAILURE,
    ),
    (
        535,
        "5.7.8 Authentication credentials invalid",
        P.AUTH,
        0,
        2,
        V.ROUTE_FAILURE,
        V.ROUTE_FAILURE,
    ),
    (
        550,
        "5.1.1 <a@example.com>: User unknown",
        P.RCPT,
        3,
        2,
        V.RECIPIENT_REJECTED,
        V.RECIPIENT_REJECTED,
    ),
    (
        421,
        "4.7.0 Error: too many connections from 127.0.0.1",
        P.CONNECT,
        0,
        2,
        V.THROTTLE_CONNECTIONS,
        V.THROTTLE_CONNECTIONS,
    ),
    # a 5xx at MAIL for a sender the server accepted before: a limit in unknown words
    (
        550,
        "5.7.1 Policy rejection on sending IP [ref 42]",
        P.MAIL,
        4,
        2,
        V.THROTTLE_RATE,
        V.ROUTE_FAILURE,
    ),
    (
        554,
        "5.7.0 Sender not accepted at this moment",
        P.MAIL,
        4,
        2,
        V.THROTTLE_RATE,
        V.ROUTE_FAILURE,
    ),
    # a 4xx at MAIL is about the session, not the message
    (
        452,
        "4.3.1 Unable to accept the transaction now",
        P.MAIL,
        1,
        1,
        V.THROTTLE_RATE,
        V.THROTTLE_RATE,
    ),
    # at RCPT and after DATA the message may be at fault: the guess stands
    (550, "Requested action not taken", P.RCPT, 2, 2, V.RECIPIENT_REJECTED, V.RECIPIENT_REJECTED),
    (451, "4.3.0 Requested action aborted", P.DATA_END, 2, 2, V.TRANSIENT, V.TRANSIENT),
    (None, "Server disconnected", P.DATA_END, 2, 2, V.AMBIGUOUS, V.AMBIGUOUS),
]


@pytest.mark.parametrize(
    ("code", "text", "phase", "carried", "open_connections", "after_work", "fresh"), CASES
)
def test_history_reads_guesses(
    code: int | None,
    text: str,
    phase: Phase,
    carried: int,
    open_connections: int,
    after_work: Verdict,
    fresh: Verdict,
) -> None:
    """Each reply's verdict on a route that has delivered and on one that has not."""
    assert (
        read(worked(), code, text, phase, carried=carried, open_connections=open_connections)
        is after_work
    )
    assert read(RouteHistory(), code, text, phase, carried=carried) is fresh


def test_sessions_ending_after_the_same_count_reveal_a_cap() -> None:
    """Connections closed silently at MAIL after 7 messages, twice: a per-connection cap.
    Once is not enough (an idle server may close one connection for its own reasons)."""
    history = worked()
    first = read(history, None, "Server disconnected", P.MAIL, carried=7, open_connections=2)
    assert first is V.TRANSIENT  # requeued without an attempt (outcome.decide)
    other = read(history, None, "Server disconnected", P.MAIL, carried=3, open_connections=2)
    assert other is V.TRANSIENT
    second = read(history, None, "Server disconnected", P.MAIL, carried=7, open_connections=2)
    assert second is V.THROTTLE_PER_CONNECTION
    assert "7: 2" in repr(history)


def test_bare_421_at_mail_after_the_same_count_is_a_cap() -> None:
    """A bare 421 closing the session at MAIL after 20 messages: first a slow-down, then, when it
    repeats at the same count, the per-connection cap it is."""
    history = worked()
    assert read(history, 421, "Closing connection", P.MAIL, carried=20) is V.THROTTLE_RATE
    assert read(history, 421, "Closing connection", P.MAIL, carried=20) is (
        V.THROTTLE_PER_CONNECTION
    )


def test_a_guess_that_keeps_failing_gives_way_to_the_code() -> None:
    """A sender really blocked mid-campaign: after a run of refusals with nothing accepted, the
    5xx means what it says again (route failure: the campaign pauses); one acceptance resets."""
    history = worked()
    text = "5.7.0 Sender not accepted at this moment"
    verdicts = [read(history, 554, text, P.MAIL) for _ in range(MAX_GUESSED_IN_A_ROW)]
    assert set(verdicts) == {V.THROTTLE_RATE}
    assert read(history, 554, text, P.MAIL) is V.ROUTE_FAILURE
    read(history, 250, "2.0.0 Ok", P.DATA_END)
    assert read(history, 554, text, P.MAIL) is V.THROTTLE_RATE


def test_rule_names_say_what_was_reinterpreted() -> None:
    """The classification names the history rule and the guess it replaced."""
    history = worked()
    reply = Reply(554, "5.7.0 Sender not accepted at this moment", P.MAIL, 2)
    result = history.interpret(reply, classify(reply), open_connections=1)
    assert result.rule == "mail-refused-after-accepting (sender-or-server-refused)"
    assert result.enhanced == "5.7.0"


@pytest.mark.parametrize(
    ("code", "text", "phase", "verdict"),
    [
        (550, "5.7.1 Message rejected: hourly sending limit reached", P.MAIL, V.QUOTA),
        (451, "Too many requests, please retry in 30 seconds", P.MAIL, V.THROTTLE_RATE),
        (554, "Limit exceeded: 50 messages per minute", P.RCPT, V.THROTTLE_RATE),
        (550, "5.7.1 Service unavailable, try again later", P.MAIL, V.THROTTLE_RATE),
        (550, "5.1.1 No such user, try again later", P.RCPT, V.RECIPIENT_REJECTED),
        (421, "4.7.0 You have exceeded the submission limit", P.MAIL, V.THROTTLE_RATE),
    ],
)
def test_limit_wording_beyond_the_big_providers(
    code: int, text: str, phase: Phase, verdict: Verdict
) -> None:
    """Limits in wording none of the big providers use are still read as limits, even on 5xx."""
    assert classify(Reply(code, text, phase, 3)).verdict is verdict


@given(
    code=st.one_of(st.none(), st.integers(200, 599)),
    text=st.text(max_size=80),
    phase=st.sampled_from(list(Phase)),
    carried=st.integers(0, 50),
    open_connections=st.integers(0, 8),
    accepted=st.integers(0, 3),
)
def test_any_reply_keeps_a_verdict_and_acceptance_stays_acceptance(
    code: int | None, text: str, phase: Phase, carried: int, open_connections: int, accepted: int
) -> None:
    """Whatever the history, every reply gets a verdict, and only 2xx/3xx are accepted."""
    history = worked(accepted)
    verdict = read(history, code, text, phase, carried=carried, open_connections=open_connections)
    assert isinstance(verdict, Verdict)
    assert (verdict is V.ACCEPTED) == (code is not None and code // 100 in (2, 3))


def test_too_many_connections_on_the_only_connection_means_slower() -> None:
    """ "4.3.2 too many connections" inside a transaction with one connection open cannot be
    cured by fewer connections: it is a rate throttle. With more open it stays what it says."""
    reply = Reply(451, "4.3.2 Unable to accept the transaction now", P.MAIL, 2)
    history = worked()
    assert classify(reply).verdict is V.THROTTLE_CONNECTIONS
    alone = history.interpret(reply, classify(reply), open_connections=1)
    assert alone.verdict is V.THROTTLE_RATE
    several = history.interpret(reply, classify(reply), open_connections=3)
    assert several.verdict is V.THROTTLE_CONNECTIONS


@pytest.mark.parametrize(
    ("code", "text", "phase", "verdict"),
    [
        (552, "5.3.4 Message size limit exceeded", P.DATA_END, V.MESSAGE_REJECTED),
        (552, "Mailbox size limit exceeded", P.RCPT, V.RECIPIENT_REJECTED),
        (550, "5.7.1 Recipient limit exceeded", P.RCPT, V.RECIPIENT_REJECTED),
        (550, "Message exceeded the attachment limit", P.DATA_END, V.MESSAGE_REJECTED),
        (550, "Mailbox not found. Please try again later", P.RCPT, V.RECIPIENT_REJECTED),
    ],
)
def test_limits_of_the_message_itself_are_not_throttles(
    code: int, text: str, phase: Phase, verdict: Verdict
) -> None:
    """A message too big, a mailbox full, "try again later" about one recipient: the message or
    recipient is at fault, so it fails instead of being requeued as a throttle forever."""
    assert read(worked(), code, text, phase, carried=2, open_connections=1) is verdict


def test_nothing_open_after_work_is_not_a_connection_limit() -> None:
    """The server went down or blocks our IP after accepting mail: with no connection open, a
    refused greeting means what it says (transient, then route failure), not a limit."""
    history = worked()
    assert read(history, None, "Connection refused", P.CONNECT) is V.TRANSIENT
    blocked = "5.7.1 Service unavailable; client host blocked using zen.spamhaus.org"
    assert read(history, 554, blocked, P.CONNECT) is V.ROUTE_FAILURE


def test_a_connection_that_carried_more_refutes_a_cap() -> None:
    """Two connections closed after 3 messages while another carried 10: not a cap of 3."""
    history = RouteHistory()
    for n in range(10):
        reply = Reply(250, "2.0.0 Ok", P.DATA_END, n)
        history.interpret(reply, classify(reply), open_connections=1)
    for _ in range(3):
        verdict = read(history, None, "Server disconnected", P.MAIL, carried=3, open_connections=1)
        assert verdict is V.TRANSIENT


def test_a_message_throttled_alone_is_refused_for_itself() -> None:
    """Gmail's "unusual rate of unsolicited mail … blocked" for one message, over and over,
    while the route keeps accepting others: after MAX_THROTTLES_ALONE it is the message's own
    refusal (failed), not a limit to requeue it for forever. Others' throttles don't count."""
    history = worked()
    text = "5.7.1 Our system has detected an unusual rate of unsolicited mail; blocked"
    reply = Reply(550, text, P.DATA_END, 2)
    verdicts = []
    for _ in range(MAX_THROTTLES_ALONE + 1):
        verdicts.append(history.interpret(reply, classify(reply), open_connections=2, message=7))
        for _ in range(MAX_THROTTLES_ALONE):
            read(history, 250, "2.0.0 Ok", P.DATA_END)
    assert {v.verdict for v in verdicts[:-1]} == {V.THROTTLE_RATE}
    assert verdicts[-1].verdict is V.MESSAGE_REJECTED
    assert verdicts[-1].rule.startswith("refused-alone-while-others-pass")
    # a message throttled as often while nothing else passes is the route's limit: kept
    stuck = RouteHistory()
    for _ in range(3 * MAX_THROTTLES_ALONE):
        again = stuck.interpret(reply, classify(reply), open_connections=1, message=8)
        assert again.verdict is V.THROTTLE_RATE
