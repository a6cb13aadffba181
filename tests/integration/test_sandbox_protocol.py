"""Malformed SMTP, latency, the mailbox and the Python API (sync and async) of the sandbox."""

from __future__ import annotations

import asyncio
import json
import smtplib
import socket
import time
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

import aiosmtplib
import pytest

from mailpacer.core.errors import SandboxError
from mailpacer.sandbox import Sandbox, get_profile


def connect(sb: Sandbox) -> smtplib.SMTP:
    """A plain smtplib client connected to the sandbox."""
    return smtplib.SMTP(sb.host, sb.port, local_hostname="client.test", timeout=10)


def message(n: int) -> bytes:
    """A message with a Message-ID and a line that needs dot-stuffing."""
    return f"Subject: {n}\r\nMessage-ID: <{n}@client.test>\r\n\r\nhello\r\n.dot line\r\n".encode()


class Raw:
    """A line-based raw SMTP client for sending what smtplib would never send."""

    def __init__(self, sb: Sandbox) -> None:
        self.sock = socket.create_connection((sb.host, sb.port), timeout=5)
        self.file = self.sock.makefile("rb")

    def reply(self) -> bytes:
        """One whole reply (all lines), CRLFs stripped, lines joined with a newline."""
        lines = []
        while True:
            line = self.file.readline()
            assert line, "connection closed"
            lines.append(line.rstrip(b"\r\n"))
            if line[3:4] != b"-":
                return b"\n".join(lines)

    def send(self, data: bytes) -> bytes:
        """Send raw bytes; return the reply."""
        self.sock.sendall(data)
        return self.reply()

    def close(self) -> None:
        """Close the socket."""
        self.file.close()
        self.sock.close()


def test_malformed_smtp_gets_5xx_and_others_are_served(sandbox: Callable[..., Sandbox]) -> None:
    """Garbage, commands out of order, bad addresses, binary and overlong lines get 5xx replies
    like a real server; a well-behaved client on another connection is served meanwhile."""
    sb = sandbox("unlimited")
    raw = Raw(sb)
    good = connect(sb)
    try:
        assert raw.reply().startswith(b"220 ")
        assert raw.send(b"MAIL FROM:<a@b.test>\r\n").startswith(b"503 ")
        assert raw.send(b"HELLO there\r\n").startswith(b"500 ")
        assert raw.send(b"EHLO client.test\r\n").startswith(b"250-")
        assert raw.send(b"RCPT TO:<w@example.com>\r\n").startswith(b"503 ")
        assert raw.send(b"MAIL FROM:<<<not an address\r\n")[:1] == b"5"
        assert raw.send(b"MAIL FROM:<a@b.test> FOO=BAR\r\n")[:1] == b"5"
        assert raw.send(b"\xff\xfe\x00garbage\r\n").startswith(b"500 ")
        assert raw.send(b"NOOP " + b"x" * 2000 + b"\r\n").startswith(b"500 ")
        assert raw.send(b"DATA\r\n").startswith(b"503 ")
        good.sendmail("s@client.test", ["w@example.com"], message(1))
        assert raw.send(b"NOOP\r\n").startswith(b"250")  # still serving the bad client too
        good.quit()
    finally:
        raw.close()
        good.close()
    counters = sb.counters
    assert counters.internal_errors == 0
    assert sum(n for code, n in counters.replies.items() if 500 <= code < 600) == 8
    assert len(sb.messages) == 1


def test_too_many_unknown_commands_close_the_connection(sandbox: Callable[..., Sandbox]) -> None:
    """After a run of unrecognised commands the server says goodbye (502 5.5.1) and closes."""
    sb = sandbox("unlimited")
    raw = Raw(sb)
    try:
        raw.reply()
        replies = [raw.send(b"BOGUS\r\n") for _ in range(5)]
        assert replies[-1] == b"502 5.5.1 Too many unrecognized commands, goodbye."
        assert raw.file.readline() == b""
    finally:
        raw.close()
    with closing(connect(sb)) as again:
        assert again.noop()[0] == 250
        again.quit()


def test_latency_delays_each_reply(sandbox: Callable[..., Sandbox]) -> None:
    """One message costs at least MAIL + RCPT + DATA command latencies + the after-DATA one."""
    sb = sandbox("strict", command_latency=0.05, data_latency=0.1)
    with closing(connect(sb)) as client:
        client.ehlo()
        started = time.monotonic()
        client.sendmail("s@client.test", ["w@example.com"], message(1))
        elapsed = time.monotonic() - started
        client.quit()
    assert elapsed >= 3 * 0.05 + 0.1


def test_latency_does_not_block_other_connections(sandbox: Callable[..., Sandbox]) -> None:
    """Latencies are sleeps on the event loop: two connections waiting 0.4 s after DATA each
    finish together, not one after the other."""
    sb = sandbox("strict", greeting_latency=0.0, command_latency=0.0, data_latency=0.4)

    async def one(n: int) -> None:
        async with aiosmtplib.SMTP(
            hostname=sb.host, port=sb.port, local_hostname="client.test", start_tls=False
        ) as client:
            await client.sendmail("s@client.test", [f"w{n}@example.com"], message(n))

    async def both() -> float:
        started = time.monotonic()
        await asyncio.gather(one(1), one(2))
        return time.monotonic() - started

    elapsed = asyncio.run(both())
    assert 0.4 <= elapsed < 0.75
    assert len(sb.messages) == 2


def test_perfect_client_never_beats_the_stated_capacity(sandbox: Callable[..., Sandbox]) -> None:
    """Two connections sending back to back on `strict` stay under its capacity (and not far
    under it: the latencies, not the sandbox, are the limit)."""
    sb = sandbox("strict")
    per_connection = 25

    async def sender(base: int) -> None:
        async with aiosmtplib.SMTP(
            hostname=sb.host, port=sb.port, local_hostname="client.test", start_tls=False
        ) as client:
            for n in range(base, base + per_connection):
                await client.sendmail("s@client.test", [f"w{n}@example.com"], message(n))

    async def run() -> float:
        await asyncio.sleep(0)
        started = time.monotonic()
        await asyncio.gather(sender(0), sender(1000))
        return time.monotonic() - started

    elapsed = asyncio.run(run())
    rate = 2 * per_connection / elapsed
    assert rate <= sb.profile.capacity
    assert rate >= 0.3 * sb.profile.capacity


def test_mailbox_has_one_json_line_and_one_eml_per_message(
    sandbox: Callable[..., Sandbox], tmp_path: Path
) -> None:
    """With a mailbox directory: mailbox.jsonl (time, connection, envelope, Message-ID, size)
    and the raw .eml of every accepted message, dot-unstuffed, byte for byte."""
    sb = sandbox("unlimited", mailbox_dir=tmp_path / "box")
    with closing(connect(sb)) as client:
        client.sendmail("s@client.test", ["a@example.com", "b@example.com"], message(1))
        client.sendmail("s@client.test", ["c@example.com"], message(2))
        client.quit()
    sb.close()
    lines = [
        json.loads(line)
        for line in (tmp_path / "box" / "mailbox.jsonl").read_text().split("\n")
        if line
    ]
    assert [(x["mail_from"], x["rcpt_tos"], x["message_id"]) for x in lines] == [
        ("s@client.test", ["a@example.com", "b@example.com"], "<1@client.test>"),
        ("s@client.test", ["c@example.com"], "<2@client.test>"),
    ]
    assert {x["connection"] for x in lines} == {1}
    assert all(x["size"] == len(message(1)) and x["time"] > 1e9 for x in lines)
    emls = sorted((tmp_path / "box").glob("*.eml"))
    assert [p.read_bytes() for p in emls] == [message(1), message(2)]
    assert sb.messages[0].data == message(1)


def test_counters_count_replies_by_code(sandbox: Callable[..., Sandbox]) -> None:
    """Every final reply line is counted by code; multi-line EHLO counts once."""
    sb = sandbox("unlimited")
    with closing(connect(sb)) as client:
        client.sendmail("s@client.test", ["nouser@example.com", "w@example.com"], message(1))
        client.quit()
    sb.wait_idle()
    assert sb.counters.replies == {220: 1, 250: 4, 550: 1, 354: 1, 221: 1}


def test_async_context_serves_on_the_running_loop() -> None:
    """`async with Sandbox(...)` serves on the caller's loop; aiosmtplib delivers to it."""

    async def main() -> tuple[int, int]:
        async with Sandbox("unlimited", port=0) as sb:
            async with aiosmtplib.SMTP(
                hostname=sb.host, port=sb.port, local_hostname="client.test", start_tls=False
            ) as client:
                await client.sendmail("s@client.test", ["w@example.com"], message(1))
            return len(sb.messages), sb.port

    count, port = asyncio.run(main())
    assert count == 1 and port > 0


def test_port_in_use_is_a_clear_sandbox_error(sandbox: Callable[..., Sandbox]) -> None:
    """A second sandbox on a taken port fails with SandboxError naming the address."""
    sb = sandbox("strict")
    second = Sandbox("strict", port=sb.port)
    with pytest.raises(SandboxError, match=f"cannot listen on 127.0.0.1:{sb.port}: "):
        second.__enter__()


def test_repr_shows_profile_address_and_counts(sandbox: Callable[..., Sandbox]) -> None:
    """The repr carries the profile, the address and what happened so far."""
    sb = sandbox(get_profile("strict"))
    with closing(connect(sb)) as client:
        client.sendmail("s@client.test", ["w@example.com"], message(1))
        client.quit()
    assert sb.wait_idle()
    assert repr(sb) == f"<Sandbox strict 127.0.0.1:{sb.port} accepted=1 open=0 refused=0>"
