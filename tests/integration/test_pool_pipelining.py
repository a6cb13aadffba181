"""`pool.Connection.send` with and without PIPELINING, against the real sandbox on loopback.

Every case runs in both modes: the outcome and the phase of each reply (or of its absence) must
not depend on whether MAIL, RCPT and DATA went out one by one or in one write. Faults are injected
server-side: profile switches, or a replaced sandbox hook; aiosmtplib is never mocked.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from mailpacer.core.classify import Phase, Reply
from mailpacer.core.route import Route
from mailpacer.delivery.smtp import Connection, frame_payload
from mailpacer.sandbox import Sandbox
from mailpacer.sandbox.handler import SILENT

SENDER = "sender@client.test"
MODES = pytest.mark.parametrize("pipelining", [True, False], ids=["pipelined", "one-by-one"])


def message(n: int) -> bytes:
    """Message ``n`` as the sandbox records it (a line that needs dot-stuffing included)."""
    return f"Subject: {n}\r\nMessage-ID: <{n}@client.test>\r\n\r\nhello\r\n.dot line\r\n".encode()


def transactions(
    sb: Sandbox, recipients: list[str], *, timeout: float = 5.0
) -> tuple[list[Reply], Connection]:
    """Open one connection and send one message per recipient on it (stopping once it is
    closed); the replies and the connection."""

    async def run() -> tuple[list[Reply], Connection]:
        conn = await Connection.open(Route(host=sb.host, port=sb.port, timeout=timeout), 1)
        replies = []
        for n, rcpt in enumerate(recipients):
            replies.append(await conn.send(SENDER, rcpt, frame_payload(message(n))))
            if not conn.alive:
                break
        await conn.close()
        return replies, conn

    return asyncio.run(run())


def codes(replies: list[Reply]) -> list[tuple[int | None, Phase]]:
    """(code, phase) of each reply."""
    return [(r.code, r.phase) for r in replies]


@MODES
@pytest.mark.parametrize("latency", [0.0, 0.003])
def test_accepted_messages_and_round_trips_saved(
    sandbox: Callable[..., Sandbox], pipelining: bool, latency: float
) -> None:
    """Ten messages on one connection are accepted byte for byte at DATA_END; pipelined, the
    sandbox saw two commands per message arrive before the previous reply (20 round trips
    saved), one by one none. With no latency the three replies often share a packet; with some
    they come one by one: both are read in order."""
    sb = sandbox("unlimited", pipelining=pipelining, command_latency=latency)
    rcpts = [f"w{n}@example.com" for n in range(10)]
    replies, conn = transactions(sb, rcpts)
    assert conn.pipelining is pipelining
    assert codes(replies) == [(250, Phase.DATA_END)] * 10
    assert [r.messages_on_connection for r in replies] == list(range(10))
    assert conn.messages == 10
    assert [m.data for m in sb.messages] == [message(n) for n in range(10)]
    assert sb.counters.pipelined == (20 if pipelining else 0)


@pytest.mark.parametrize("latency", [0.0001, 0.0003])
def test_replies_a_loop_iteration_apart_are_never_lost(
    sandbox: Callable[..., Sandbox], latency: float
) -> None:
    """Replies spaced about one event-loop iteration apart are the case aiosmtplib drops when a
    reply arrives before the previous one is picked up (its ``wait_for`` timeout leaves that gap;
    reading through ``asyncio.timeout`` does not): 400 pipelined messages, every one accepted."""
    sb = sandbox("unlimited", pipelining=True, command_latency=latency, keep_data=False)
    replies, _ = transactions(sb, [f"w{n}@example.com" for n in range(400)], timeout=1.0)
    assert codes(replies) == [(250, Phase.DATA_END)] * 400
    assert sb.counters.accepted == 400


@MODES
def test_unknown_recipient_is_refused_at_rcpt(
    sandbox: Callable[..., Sandbox], pipelining: bool
) -> None:
    """`nouser…` gets 550 5.1.1 in phase RCPT — pipelined too, though DATA then got 503 — and
    the connection carries on with the next message after RSET."""
    sb = sandbox("unlimited", pipelining=pipelining)
    replies, _ = transactions(sb, ["nouser1@example.com", "w1@example.com"])
    assert codes(replies) == [(550, Phase.RCPT), (250, Phase.DATA_END)]
    assert replies[0].text.startswith("5.1.1 <nouser1@example.com>: Recipient address rejected")
    assert sb.counters.count(503) == (1 if pipelining else 0)
    assert [m.rcpt_tos for m in sb.messages] == [("w1@example.com",)]


@MODES
@pytest.mark.parametrize(
    ("profile", "code"), [("rate-limited", 450), ("fivexx-rate", 550)], ids=["450", "550"]
)
def test_rate_refusal_at_mail_keeps_its_phase_and_the_stream_in_step(
    sandbox: Callable[..., Sandbox], pipelining: bool, profile: str, code: int
) -> None:
    """A rate refusal at MAIL (Postfix's 450, QQ's 550) is phase MAIL, not the 503s that RCPT and
    DATA got behind it; the next transaction is refused at MAIL again (the replies stay paired
    with their commands) and the connection stays open."""
    sb = sandbox(profile, pipelining=pipelining, rate_per_minute=1.0, rate_burst=1)
    replies, conn = transactions(sb, [f"w{n}@example.com" for n in range(3)])
    assert codes(replies) == [(250, Phase.DATA_END), (code, Phase.MAIL), (code, Phase.MAIL)]
    assert conn.messages == 1
    assert sb.counters.count(503) == (4 if pipelining else 0)


@MODES
def test_421_at_mail_closes_the_connection(
    sandbox: Callable[..., Sandbox], pipelining: bool
) -> None:
    """The per-connection cap's 421 at MAIL is phase MAIL with the count of earlier messages,
    and the connection is closed at once."""
    sb = sandbox("exchange-like", pipelining=pipelining, max_messages_per_connection=2)
    replies, conn = transactions(sb, [f"w{n}@example.com" for n in range(4)])
    assert codes(replies) == [(250, Phase.DATA_END)] * 2 + [(421, Phase.MAIL)]
    assert replies[-1].messages_on_connection == 2
    assert "Too many messages in this connection" in replies[-1].text
    assert not conn.alive
    assert repr(conn).endswith("messages=2 closed>")


@MODES
@pytest.mark.parametrize("phase", [Phase.MAIL, Phase.RCPT, Phase.DATA, Phase.DATA_END])
def test_no_reply_is_reported_in_the_phase_it_was_missing(
    sandbox: Callable[..., Sandbox], pipelining: bool, phase: Phase
) -> None:
    """The server closes without a word at MAIL, RCPT, the DATA command or after the final
    ".": code None in exactly that phase; only the drop after "." was recorded (ambiguous)."""
    drop_at = phase.name  # MAIL, RCPT, DATA, DATA_END
    sb = sandbox("unlimited", pipelining=pipelining, drop_probability=1.0, drop_at=drop_at)
    replies, conn = transactions(sb, ["w0@example.com"])
    assert codes(replies) == [(None, phase)]
    assert not conn.alive
    assert len(sb.messages) == (1 if phase is Phase.DATA_END else 0)


@MODES
def test_silent_close_after_the_cap_is_no_reply_at_mail(
    sandbox: Callable[..., Sandbox], pipelining: bool
) -> None:
    """`per_connection_refusal="close"`: the message after the cap gets no reply at MAIL
    (transient: nothing was sent), with the count of messages before it."""
    sb = sandbox(
        "unlimited",
        pipelining=pipelining,
        max_messages_per_connection=1,
        per_connection_refusal="close",
    )
    replies, _ = transactions(sb, ["w0@example.com", "w1@example.com"])
    assert codes(replies) == [(250, Phase.DATA_END), (None, Phase.MAIL)]
    assert replies[1].messages_on_connection == 1


def hook(sb: Sandbox, name: str, replacement: Callable[..., Awaitable[str]]) -> None:
    """Replace one of the running sandbox's hooks (read by connections opened afterwards)."""
    setattr(sb.handler, name, replacement)


@MODES
def test_timeout_waiting_for_rcpt_is_no_reply_at_rcpt(
    sandbox: Callable[..., Sandbox], pipelining: bool
) -> None:
    """A server that never answers RCPT (within the route's timeout): code None in phase RCPT,
    the connection given up."""
    sb = sandbox("unlimited", pipelining=pipelining)

    async def stall(server: Any, session: Any, envelope: Any, *args: Any) -> str:
        await asyncio.sleep(3.0)
        return "250 2.1.5 Ok, too late"

    hook(sb, "handle_RCPT", stall)
    replies, conn = transactions(sb, ["w0@example.com"], timeout=0.3)
    assert codes(replies) == [(None, Phase.RCPT)]
    assert "Timed out" in replies[0].text
    assert not conn.alive


def test_data_accepted_after_a_refused_rcpt_is_ended_empty(
    sandbox: Callable[..., Sandbox],
) -> None:
    """A server that refuses RCPT yet answers the pipelined DATA with 354: the client ends it
    with a bare "." (the message itself is never sent), reports the RCPT refusal, and the next
    message goes through on the same connection."""
    sb = sandbox("unlimited", pipelining=True)
    handler = sb.handler
    real_rcpt = handler.handle_RCPT

    async def refuse_but_keep(
        server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        if address.startswith("odd"):
            envelope.rcpt_tos.append(address)  # kept, so DATA will get its 354
            return "550 5.7.1 <odd@example.com>: Relay access denied"
        return await real_rcpt(server, session, envelope, address, options)

    hook(sb, "handle_RCPT", refuse_but_keep)
    replies, _ = transactions(sb, ["odd@example.com", "w1@example.com"])
    assert codes(replies) == [(550, Phase.RCPT), (250, Phase.DATA_END)]
    first, second = sb.messages
    assert first.size == 0 and first.rcpt_tos == ("odd@example.com",)
    assert second.data == message(1)


def test_421_at_rcpt_stops_reading_and_closes(sandbox: Callable[..., Sandbox]) -> None:
    """Pipelined, a 421 at RCPT is the answer (phase RCPT); the client does not wait for a DATA
    reply from a server that is closing."""
    sb = sandbox("unlimited", pipelining=True)

    async def closing(server: Any, session: Any, envelope: Any, *args: Any) -> str:
        await server.push("421 4.3.2 Shutting down")
        return SILENT  # and the server stays silent, the connection open

    hook(sb, "handle_RCPT", closing)
    replies, conn = transactions(sb, ["w0@example.com"], timeout=5.0)
    assert codes(replies) == [(421, Phase.RCPT)]
    assert replies[0].text == "4.3.2 Shutting down"
    assert not conn.alive
