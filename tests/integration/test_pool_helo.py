"""A server that does not know EHLO: the connection falls back to HELO (RFC 5321 §4.1.4)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from mailpacer.core.route import Route
from mailpacer.delivery.smtp import ConnectFailed, Connection, frame_payload


def refuse_ehlo(sb: Any, reply: str) -> None:
    """Make the sandbox answer every EHLO with ``reply`` (HELO still works)."""

    async def handle_ehlo(
        server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        return [reply]

    sb.handler.handle_EHLO = handle_ehlo


def test_helo_only_server_still_takes_mail(sandbox: Any) -> None:
    """`502 EHLO not recognized`: HELO instead, no extensions (so no PIPELINING), and the
    message is delivered."""
    sb = sandbox("unlimited", pipelining=True)
    refuse_ehlo(sb, "502 5.5.2 Error: command not recognized")

    async def run() -> tuple[int | None, dict[str, str]]:
        conn = await Connection.open(Route(host=sb.host, port=sb.port, timeout=5.0), 1)
        payload = frame_payload(b"Subject: hi\r\nMessage-ID: <1@client.test>\r\n\r\nhello\r\n")
        reply = await conn.send("sender@client.test", "worker@example.com", payload)
        extensions = {k: v for k, v in conn.extensions.items() if k != "_ehlo"}
        await conn.close()
        return reply.code, extensions

    code, extensions = asyncio.run(run())
    assert code == 250
    assert extensions == {}
    assert len(sb.messages) == 1
    assert sb.counters.pipelined == 0


def test_ehlo_refused_for_another_reason_is_not_retried_as_helo(sandbox: Any) -> None:
    """A 421 to EHLO is the server closing on us, not "unknown command": it is reported as the
    EHLO phase's reply."""
    sb = sandbox("unlimited")
    refuse_ehlo(sb, "421 4.7.0 Try again later, closing connection.")

    async def run() -> None:
        await Connection.open(Route(host=sb.host, port=sb.port, timeout=5.0), 1)

    with pytest.raises(ConnectFailed) as failure:
        asyncio.run(run())
    assert failure.value.reply.code == 421
    assert failure.value.reply.phase.value == "ehlo"
