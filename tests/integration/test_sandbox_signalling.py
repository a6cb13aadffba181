"""How the sandbox signals a limit: LIMITS in EHLO, a silent close instead of a reply, 5xx
replies that mean "slow down", a close after any 421 — and the built-in profiles that word their
limits like SES, Microsoft 365, QQ Mail or a firewall. Plain smtplib and raw sockets only."""

from __future__ import annotations

import smtplib
import socket
from collections.abc import Callable
from contextlib import closing

import pytest
from test_sandbox_limits import connect, transaction

from mailpacer.sandbox import Sandbox


def read_all(sb: Sandbox) -> bytes:
    """Connect with a raw socket and read until the server closes (bounded by the timeout)."""
    with socket.create_connection((sb.host, sb.port), timeout=5) as raw:
        data = b""
        while chunk := raw.recv(4096):
            data += chunk
        return data


def test_limits_are_advertised_and_mailmax_enforced(sandbox: Callable[..., Sandbox]) -> None:
    """`ehlo_limits="MAILMAX=3 RCPTMAX=2"`: EHLO says so; RCPTMAX refuses a third recipient with
    452 4.5.3; MAILMAX (smaller than the profile's own cap) refuses the 4th MAIL as the cap does."""
    sb = sandbox("exchange-like", ehlo_limits="MAILMAX=3 RCPTMAX=2")
    client = connect(sb)
    try:
        assert client.esmtp_features["limits"] == "MAILMAX=3 RCPTMAX=2"
        assert client.mail("sender@client.test")[0] == 250
        assert client.rcpt("a@example.com")[0] == 250
        assert client.rcpt("b@example.com")[0] == 250
        assert client.rcpt("c@example.com") == (452, b"4.5.3 Too many recipients")
        client.rset()
        for n in range(3):
            assert transaction(client, n) == (250, 250, 250)
        code, text = client.mail("sender@client.test")
        assert code == 421 and b"Too many messages in this connection" in text
        with pytest.raises(smtplib.SMTPServerDisconnected):
            client.noop()
    finally:
        client.close()
    assert len(sb.messages) == 3


def test_connection_refusal_close_sends_nothing(sandbox: Callable[..., Sandbox]) -> None:
    """`connection_refusal="close"` over the limit: TCP is accepted, then closed before any
    greeting; counted as a refused connection; the admitted ones keep working."""
    sb = sandbox("strict", connection_refusal="close")
    with closing(connect(sb)) as first, closing(connect(sb)) as second:
        assert read_all(sb) == b""
        with pytest.raises(smtplib.SMTPServerDisconnected):
            smtplib.SMTP(sb.host, sb.port, local_hostname="client.test", timeout=10)
        assert transaction(first, 1) == (250, 250, 250)
        assert transaction(second, 2) == (250, 250, 250)
        first.quit()
        second.quit()
    counters = sb.counters
    assert counters.connections_refused == 2
    assert 421 not in counters.replies


def test_per_connection_refusal_close_closes_at_mail(sandbox: Callable[..., Sandbox]) -> None:
    """`per_connection_refusal="close"`: after the cap the next MAIL gets no reply at all, the
    connection is closed and its slot given back for a new one."""
    sb = sandbox("exchange-like", max_messages_per_connection=2, per_connection_refusal="close")
    client = connect(sb)
    try:
        for n in range(2):
            assert transaction(client, n) == (250, 250, 250)
        with pytest.raises(smtplib.SMTPServerDisconnected):
            client.mail("sender@client.test")
    finally:
        client.close()
    assert sb.wait_idle()
    with closing(connect(sb)) as again:
        assert transaction(again, 3) == (250, 250, 250)
        again.quit()
    assert 421 not in sb.counters.replies
    assert len(sb.messages) == 3


def test_a_5xx_rate_reply_at_mail_leaves_the_connection_open(
    sandbox: Callable[..., Sandbox],
) -> None:
    """A rate limit answered `554 5.7.1 Sending rate exceeded, slow down`: the exact text at MAIL,
    the connection stays open (RSET, NOOP work)."""
    sb = sandbox(
        "rate-limited",
        rate_per_minute=60.0,
        rate_burst=1,
        rate_reply="554 5.7.1 Sending rate exceeded, slow down",
    )
    with closing(connect(sb)) as client:
        assert transaction(client, 0) == (250, 250, 250)
        assert client.mail("sender@client.test") == (
            554,
            b"5.7.1 Sending rate exceeded, slow down",
        )
        assert client.rset()[0] == 250
        assert client.noop()[0] == 250
        client.quit()


def test_a_421_reply_closes_the_connection(sandbox: Callable[..., Sandbox]) -> None:
    """Any reply template starting with 421 (here the rate limit's) is followed by a close."""
    sb = sandbox("rate-limited", rate_per_minute=60.0, rate_burst=1, rate_reply="421 4.7.0 slow")
    client = connect(sb)
    try:
        assert transaction(client, 0) == (250, 250, 250)
        assert client.mail("sender@client.test") == (421, b"4.7.0 slow")
        with pytest.raises(smtplib.SMTPServerDisconnected):
            client.noop()
    finally:
        client.close()
    assert sb.wait_idle()


def test_connection_reply_can_be_a_5xx_greeting(sandbox: Callable[..., Sandbox]) -> None:
    """Over the limit, a 5xx greeting with the placeholders filled in, then a close."""
    sb = sandbox("strict", connection_reply="554 5.7.1 {host} no more connections from {ip}")
    with closing(connect(sb)), closing(connect(sb)):
        assert read_all(sb) == (
            b"554 5.7.1 mx.strict.sandbox.mailpacer.test no more connections from 127.0.0.1\r\n"
        )


def test_ses_like_words_its_limits_like_ses(sandbox: Callable[..., Sandbox]) -> None:
    """`ses-like`: the rate limit is `454 Throttling failure: Maximum sending rate exceeded.`;
    the session cap is SES's bare 421 with "Maximum message count per session reached."."""
    sb = sandbox("ses-like", rate_per_minute=6.0, rate_burst=2, max_messages_per_connection=2)
    client = connect(sb)
    try:
        for n in range(2):
            assert transaction(client, n) == (250, 250, 250)
        assert client.mail("sender@client.test") == (
            421,
            b"Connection closed by server. Maximum message count per session reached.",
        )
    finally:
        client.close()
    with closing(connect(sb)) as again:
        assert again.mail("sender@client.test") == (
            454,
            b"Throttling failure: Maximum sending rate exceeded.",
        )
        again.quit()


def test_o365_like_refuses_the_4th_connection_with_432(sandbox: Callable[..., Sandbox]) -> None:
    """`o365-like`: three connections, the 4th greeted with `432 4.3.2 Concurrent connections
    limit exceeded.`; PIPELINING is offered."""
    sb = sandbox("o365-like")
    clients = [connect(sb) for _ in range(3)]
    try:
        assert all(c.has_extn("pipelining") for c in clients)
        with pytest.raises(smtplib.SMTPConnectError) as refused:
            connect(sb)
        assert (refused.value.smtp_code, refused.value.smtp_error) == (
            432,
            b"4.3.2 Concurrent connections limit exceeded.",
        )
    finally:
        for c in clients:
            c.quit()


def test_firewall_closes_the_4th_connection_unanswered(sandbox: Callable[..., Sandbox]) -> None:
    """`firewall`: three connections served, the 4th closed before any greeting."""
    sb = sandbox("firewall")
    clients = [connect(sb) for _ in range(3)]
    try:
        assert read_all(sb) == b""
        assert all(c.noop()[0] == 250 for c in clients)
    finally:
        for c in clients:
            c.quit()
    assert sb.counters.connections_refused == 1


def test_fivexx_rate_refuses_with_550_frequency_limited(sandbox: Callable[..., Sandbox]) -> None:
    """`fivexx-rate`: over the rate, MAIL gets `550 Ip frequency limited.` and the connection
    stays usable."""
    sb = sandbox("fivexx-rate", rate_per_minute=60.0, rate_burst=1)
    with closing(connect(sb)) as client:
        assert transaction(client, 0) == (250, 250, 250)
        assert client.mail("sender@client.test") == (550, b"Ip frequency limited.")
        assert client.noop()[0] == 250
        client.quit()


def test_pipelining_profile_closes_silently_after_mailmax(
    sandbox: Callable[..., Sandbox],
) -> None:
    """`pipelining`: EHLO offers PIPELINING and LIMITS MAILMAX=25; the 26th MAIL on a
    connection is answered by a close without a reply."""
    sb = sandbox("pipelining", command_latency=0.0, data_latency=0.0)
    client = connect(sb)
    try:
        assert client.has_extn("pipelining")
        assert client.esmtp_features["limits"].startswith("MAILMAX=25")
        for n in range(25):
            assert transaction(client, n) == (250, 250, 250)
        with pytest.raises(smtplib.SMTPServerDisconnected):
            client.mail("sender@client.test")
    finally:
        client.close()
    assert len(sb.messages) == 25


@pytest.mark.parametrize("phase", ["MAIL", "RCPT", "DATA"])
def test_drop_at_a_command_closes_before_its_reply(
    sandbox: Callable[..., Sandbox], phase: str
) -> None:
    """`drop_at` MAIL, RCPT or DATA: the connection closes instead of that command's reply and
    nothing is recorded (unlike the drop after the final ".", which records the message)."""
    sb = sandbox("unlimited", drop_probability=1.0, drop_at=phase)
    client = connect(sb)
    try:
        with pytest.raises(smtplib.SMTPServerDisconnected):
            transaction(client, 0)
    finally:
        client.close()
    assert sb.messages == []
    assert sb.wait_idle()
