"""Messages per connection, rate per client IP and the daily quota, seen by plain smtplib."""

from __future__ import annotations

import smtplib
import time
from collections.abc import Callable
from contextlib import closing

import pytest

from mailpacer.sandbox import Sandbox


def connect(sb: Sandbox) -> smtplib.SMTP:
    """A plain smtplib client connected to the sandbox."""
    client = smtplib.SMTP(sb.host, sb.port, local_hostname="client.test", timeout=10)
    client.ehlo()
    return client


def transaction(client: smtplib.SMTP, n: int) -> tuple[int, int, int]:
    """MAIL, RCPT, DATA for message ``n``: the three reply codes (0 where not reached)."""
    mail, _ = client.mail("sender@client.test")
    if mail != 250:
        return mail, 0, 0
    rcpt, _ = client.rcpt(f"worker{n}@example.com")
    if rcpt != 250:
        client.rset()
        return mail, rcpt, 0
    data, _ = client.data(f"Subject: {n}\r\nMessage-ID: <{n}@client.test>\r\n\r\nhi\r\n".encode())
    return mail, rcpt, data


def test_message_after_the_per_connection_cap_gets_421_and_a_close(
    sandbox: Callable[..., Sandbox],
) -> None:
    """`exchange-like` with a cap of 3: three messages accepted, the 4th MAIL gets 421 4.4.2 and
    the connection is closed; a new connection sends again."""
    sb = sandbox("exchange-like", max_messages_per_connection=3)
    client = connect(sb)
    try:
        for n in range(3):
            assert transaction(client, n) == (250, 250, 250)
        code, text = client.mail("sender@client.test")
        assert code == 421
        assert text == (
            b"4.4.2 mx.exchange.sandbox.mailpacer.test Too many messages in this connection, "
            b"closing transmission channel"
        )
        with pytest.raises(smtplib.SMTPServerDisconnected):
            client.noop()
    finally:
        client.close()
    with closing(connect(sb)) as again:
        assert transaction(again, 3) == (250, 250, 250)
        again.quit()
    assert len(sb.messages) == 4
    assert {m.connection_id for m in sb.messages[:3]} != {sb.messages[3].connection_id}


def test_rate_limit_refuses_mail_with_4_7_1_then_refills(sandbox: Callable[..., Sandbox]) -> None:
    """`rate-limited` at 60/minute, burst 3: three messages pass, the 4th MAIL gets Postfix's
    450 4.7.1; the bucket is per IP (a second connection is refused too); a second later one
    more passes."""
    sb = sandbox("rate-limited", rate_per_minute=60.0, rate_burst=3)
    with closing(connect(sb)) as client, closing(connect(sb)) as other:
        for n in range(3):
            assert transaction(client, n) == (250, 250, 250)
        started = time.monotonic()
        refused = client.mail("sender@client.test")
        assert refused == (450, b"4.7.1 Error: too much mail from 127.0.0.1")
        assert other.mail("sender@client.test")[0] == 450
        time.sleep(max(0.0, 1.1 - (time.monotonic() - started)))
        assert transaction(other, 4) == (250, 250, 250)
        assert client.mail("sender@client.test")[0] == 450
        client.quit()
        other.quit()
    assert sb.counters.refusals[(450, "450 4.7.1 Error: too much mail from 127.0.0.1")] == 3
    assert len(sb.messages) == 4


def test_quota_refuses_with_5_4_5_then_accepts_after_the_window(
    sandbox: Callable[..., Sandbox],
) -> None:
    """`quota` of 3 per 1.5 s window: the 4th MAIL gets 550 5.4.5 exactly; after the window the
    count resets and messages are accepted again."""
    sb = sandbox("quota", quota=3, quota_window_seconds=1.5)
    with closing(connect(sb)) as client:
        assert transaction(client, 0) == (250, 250, 250)
        window_started_by = time.monotonic()  # the window starts when message 0 is counted
        for n in (1, 2):
            assert transaction(client, n) == (250, 250, 250)
        assert client.mail("sender@client.test") == (
            550,
            b"5.4.5 Daily user sending limit exceeded.",
        )
        assert client.mail("sender@client.test")[0] == 550  # still refused inside the window
        time.sleep(max(0.0, 1.55 - (time.monotonic() - window_started_by)))
        assert transaction(client, 3) == (250, 250, 250)
        client.quit()
    assert len(sb.messages) == 4
    assert sb.counters.count(550) == 2


def test_quota_counts_messages_of_every_connection(sandbox: Callable[..., Sandbox]) -> None:
    """The quota is the server's, not the connection's: a second connection is refused too."""
    sb = sandbox("quota", quota=2)
    with closing(connect(sb)) as first, closing(connect(sb)) as second:
        assert transaction(first, 0) == (250, 250, 250)
        assert transaction(second, 1) == (250, 250, 250)
        assert first.mail("sender@client.test")[0] == 550
        assert second.mail("sender@client.test")[0] == 550
        first.quit()
        second.quit()
