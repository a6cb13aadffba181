"""Concurrent connections per client IP: refused at the greeting with the profile's exact text,
slots given back at QUIT or disconnect. Plain smtplib clients only."""

from __future__ import annotations

import smtplib
import socket
from collections.abc import Callable
from contextlib import closing

import pytest

from mailpacer.sandbox import Sandbox

STRICT_421 = b"Too many concurrent SMTP connections from this IP address; please try again later."
EXCHANGE_421 = (
    b"4.3.2 The maximum number of concurrent server connections has exceeded a limit, "
    b"closing transmission channel"
)


def connect(sb: Sandbox) -> smtplib.SMTP:
    """A plain smtplib client connected to the sandbox."""
    return smtplib.SMTP(sb.host, sb.port, local_hostname="client.test", timeout=10)


def message(n: int) -> bytes:
    """A small message with a Message-ID."""
    return f"Subject: {n}\r\nMessage-ID: <{n}@client.test>\r\n\r\nhello {n}\r\n".encode()


def test_strict_third_connection_gets_the_exact_421_while_two_work(
    sandbox: Callable[..., Sandbox],
) -> None:
    """`strict`: two connections are served; the third is greeted with Exim's exact 421 text."""
    sb = sandbox("strict")
    with closing(connect(sb)) as first, closing(connect(sb)) as second:
        with pytest.raises(smtplib.SMTPConnectError) as refused:
            connect(sb)
        assert refused.value.smtp_code == 421
        assert refused.value.smtp_error == STRICT_421
        first.sendmail("s@client.test", ["w1@example.com"], message(1))
        second.sendmail("s@client.test", ["w2@example.com"], message(2))
        first.quit()
        second.quit()
    counters = sb.counters
    assert counters.connections_opened == 3
    assert counters.connections_refused == 1
    assert counters.peak_concurrent == 2
    assert counters.refusals == {(421, "421 " + STRICT_421.decode()): 1}
    assert [m.message_id for m in sb.messages] == ["<1@client.test>", "<2@client.test>"]


def test_refused_connection_is_closed_after_the_421(sandbox: Callable[..., Sandbox]) -> None:
    """Over the limit the server sends the 421 greeting, then closes: the client reads EOF."""
    sb = sandbox("strict", greeting_latency=0.0)
    with (
        closing(connect(sb)),
        closing(connect(sb)),
        socket.create_connection((sb.host, sb.port), timeout=5) as raw,
    ):
        data = b""
        while chunk := raw.recv(4096):
            data += chunk
        assert data == b"421 " + STRICT_421 + b"\r\n"


def test_exchange_like_fourth_connection_gets_4_3_2(sandbox: Callable[..., Sandbox]) -> None:
    """`exchange-like`: three connections served, the fourth gets Exchange's 421 4.3.2 text."""
    sb = sandbox("exchange-like")
    clients = [connect(sb) for _ in range(3)]
    try:
        with pytest.raises(smtplib.SMTPConnectError) as refused:
            connect(sb)
        assert (refused.value.smtp_code, refused.value.smtp_error) == (421, EXCHANGE_421)
        for client in clients:
            assert client.noop()[0] == 250
    finally:
        for client in clients:
            client.quit()
    assert sb.counters.peak_concurrent == 3


def test_quit_gives_the_slot_back_before_the_reply(sandbox: Callable[..., Sandbox]) -> None:
    """A polite client is never refused: the slot is free as soon as QUIT is answered, even
    while the old socket is still open (20 rounds with the other slot taken)."""
    sb = sandbox("strict", greeting_latency=0.0, command_latency=0.0)
    with closing(connect(sb)) as steady:
        for n in range(20):
            with socket.create_connection((sb.host, sb.port), timeout=5) as old:
                reader = old.makefile("rb")
                assert reader.readline().startswith(b"220 ")
                old.sendall(b"QUIT\r\n")
                assert reader.readline() == b"221 2.0.0 Bye\r\n"
                # the old socket is still open here: the new connection must be served
                fresh = connect(sb)
                fresh.sendmail("s@client.test", [f"w{n}@example.com"], message(n))
                fresh.quit()
                reader.close()
        steady.quit()
    assert sb.counters.connections_refused == 0
    assert len(sb.messages) == 20


def test_disconnect_without_quit_gives_the_slot_back(sandbox: Callable[..., Sandbox]) -> None:
    """A client that just closes its socket frees its slot once the server sees the close."""
    sb = sandbox("strict")
    with closing(connect(sb)) as first:
        second = connect(sb)
        second.close()  # no QUIT
        assert sb.wait_idle(at_most=1)
        third = connect(sb)
        third.quit()
        first.quit()
    assert sb.counters.connections_refused == 0
