"""PIPELINING (RFC 2920) in the sandbox: advertised only when the profile says so, commands sent
in one packet answered in order, round trips saved counted, and nothing answered after a close."""

from __future__ import annotations

import smtplib
from collections.abc import Callable
from contextlib import closing

from test_sandbox_protocol import Raw

from mailpacer.sandbox import Sandbox

ENVELOPE = b"MAIL FROM:<s@client.test>\r\nRCPT TO:<%s@example.com>\r\nDATA\r\n"
MESSAGE = b"Subject: hi\r\nMessage-ID: <%d@client.test>\r\n\r\nhello\r\n"
BODY = MESSAGE + b".\r\n"  #: as written after the 354


def greeted(sb: Sandbox) -> Raw:
    """A raw client past the greeting and EHLO."""
    raw = Raw(sb)
    assert raw.reply().startswith(b"220 ")
    assert raw.send(b"EHLO client.test\r\n").startswith(b"250-")
    return raw


def replies(raw: Raw, count: int) -> list[bytes]:
    """The next ``count`` replies, in the order they came."""
    return [raw.reply() for _ in range(count)]


def test_pipelining_is_advertised_only_when_switched_on(sandbox: Callable[..., Sandbox]) -> None:
    """`pipelining=True` puts PIPELINING in the EHLO reply; the default profile has none."""
    on = sandbox("unlimited", pipelining=True)
    off = sandbox("unlimited")
    for sb, expected in ((on, True), (off, False)):
        with closing(smtplib.SMTP(sb.host, sb.port, "client.test", timeout=10)) as client:
            client.ehlo()
            assert client.has_extn("pipelining") is expected
            client.quit()


def test_one_packet_is_answered_in_order_and_counted(sandbox: Callable[..., Sandbox]) -> None:
    """MAIL, RCPT and DATA written at once get 250, 250, 354 in that order (also with a command
    latency in between); the message is accepted; two round trips per message are counted."""
    sb = sandbox("unlimited", pipelining=True, command_latency=0.01)
    raw = greeted(sb)
    try:
        for n in range(3):
            raw.sock.sendall(ENVELOPE % f"w{n}".encode())
            codes = [r[:3] for r in replies(raw, 3)]
            assert codes == [b"250", b"250", b"354"]
            assert raw.send(BODY % n).startswith(b"250 2.0.0 Ok: queued")
        assert raw.send(b"QUIT\r\n").startswith(b"221")
    finally:
        raw.close()
    assert [m.message_id for m in sb.messages] == [f"<{n}@client.test>" for n in range(3)]
    assert sb.counters.pipelined == 6
    assert sb.counters.internal_errors == 0


def test_refusals_inside_a_pipelined_group_keep_their_place(
    sandbox: Callable[..., Sandbox],
) -> None:
    """An unknown recipient is refused at RCPT and DATA then gets 503 (no 354); a rate refusal
    at MAIL makes RCPT and DATA 503 too; the connection stays usable after RSET."""
    sb = sandbox("rate-limited", pipelining=True, rate_per_minute=1.0, rate_burst=1)
    raw = greeted(sb)
    try:
        raw.sock.sendall(ENVELOPE % b"nouser1")
        mail, rcpt, data = replies(raw, 3)
        assert mail.startswith(b"250 ") and rcpt.startswith(b"550 5.1.1 ")
        assert data.startswith(b"503 ")
        assert raw.send(b"RSET\r\n").startswith(b"250")
        raw.sock.sendall(ENVELOPE % b"w1")  # the bucket's one token went to the first MAIL
        mail, rcpt, data = replies(raw, 3)
        assert mail == b"450 4.7.1 Error: too much mail from 127.0.0.1"
        assert rcpt.startswith(b"503 ") and data.startswith(b"503 ")
        assert raw.send(b"RSET\r\n").startswith(b"250")
        assert raw.send(b"NOOP\r\n").startswith(b"250")
    finally:
        raw.close()
    assert sb.messages == []


def test_commands_buffered_behind_a_close_are_ignored(sandbox: Callable[..., Sandbox]) -> None:
    """A MAIL over the per-connection cap closes the connection: the RCPT and DATA pipelined
    behind it get no reply and are not run (counted as ignored)."""
    sb = sandbox(
        "unlimited", pipelining=True, max_messages_per_connection=1, per_connection_refusal="close"
    )
    raw = greeted(sb)
    try:
        raw.sock.sendall(ENVELOPE % b"w0")
        assert [r[:3] for r in replies(raw, 3)] == [b"250", b"250", b"354"]
        assert raw.send(BODY % 0).startswith(b"250 ")
        raw.sock.sendall(ENVELOPE % b"w1")
        assert raw.file.readline() == b""  # closed, not a word more
    finally:
        raw.close()
    assert sb.wait_idle()
    counters = sb.counters
    assert counters.replies == {220: 1, 250: 4, 354: 1}
    assert counters.ignored_after_close == 2
    assert counters.internal_errors == 0


def test_a_plain_client_pipelines_nothing(sandbox: Callable[..., Sandbox]) -> None:
    """smtplib waits for every reply: the pipelined counter stays at zero."""
    sb = sandbox("unlimited", pipelining=True)
    with closing(smtplib.SMTP(sb.host, sb.port, "client.test", timeout=10)) as client:
        for n in range(3):
            client.sendmail("s@client.test", [f"w{n}@example.com"], MESSAGE % n)
        client.quit()
    assert len(sb.messages) == 3
    assert sb.counters.pipelined == 0
