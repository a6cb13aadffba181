"""One pooled SMTP connection over aiosmtplib, with every reply tagged by its phase.

The engine decides how many connections to keep and when to retire one (the pacer tells it);
this module only does the I/O and reports what the server said, or that it said nothing, in the
phase where it happened. That phase is what separates a transient failure (no reply before the
final ".") from an ambiguous one (no reply after it).
"""

from __future__ import annotations

import asyncio
import re
import ssl
from dataclasses import dataclass, field

import aiosmtplib

from mailpacer.classify import Phase, Reply
from mailpacer.route import Route, TlsMode

_PERIOD_AT_LINE_START = re.compile(rb"(?m)^\.")
_BARE_LINE_ENDINGS = re.compile(rb"\r\n|\r|\n")
_QUIT_TIMEOUT = 5.0


class ConnectFailed(Exception):
    """Opening a connection failed; ``reply`` says in which phase and what the server said."""

    def __init__(self, reply: Reply) -> None:
        super().__init__(f"{reply.phase}: {reply.code} {reply.text}")
        self.reply = reply


def frame_payload(message: bytes) -> bytes:
    """CRLF line endings, dot-stuffing, and the final ``.`` line: what DATA sends."""
    message = _BARE_LINE_ENDINGS.sub(b"\r\n", message)
    if not message.endswith(b"\r\n"):
        message += b"\r\n"
    if b"\n." in message or message.startswith(b"."):
        message = _PERIOD_AT_LINE_START.sub(b"..", message)
    return message + b".\r\n"


def _tls_context(route: Route) -> ssl.SSLContext:
    """Certificate verification is on unless the route explicitly turns it off."""
    context = ssl.create_default_context(cafile=route.cafile)
    if not route.verify_tls:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


@dataclass(eq=False)
class Connection:
    """An open, greeted (and, where the route says so, TLS-protected and authenticated)
    connection. ``messages`` counts the messages the server accepted on it."""

    client: aiosmtplib.SMTP
    route: Route
    number: int
    extensions: dict[str, str] = field(default_factory=dict)
    messages: int = 0
    alive: bool = True

    def __repr__(self) -> str:
        state = "open" if self.alive else "closed"
        return f"<Connection #{self.number} {self.route.key} messages={self.messages} {state}>"

    @classmethod
    async def open(
        cls, route: Route, number: int, *, local_hostname: str = "localhost"
    ) -> Connection:
        """Connect, greet, EHLO, STARTTLS and AUTH as the route requires.

        Raises :class:`ConnectFailed` with the reply (or its absence) and the phase it came in.
        """
        client = aiosmtplib.SMTP(
            hostname=route.host,
            port=route.port,
            timeout=route.timeout,
            use_tls=route.tls is TlsMode.IMPLICIT,
            start_tls=False,
            local_hostname=local_hostname,
            tls_context=_tls_context(route) if route.tls is not TlsMode.NONE else None,
        )
        phase = Phase.CONNECT
        try:
            await client.connect()
            phase = Phase.EHLO
            ehlo = await client.ehlo()
            if route.tls is TlsMode.STARTTLS:
                phase = Phase.STARTTLS
                if not client.supports_extension("starttls"):
                    client.close()
                    raise ConnectFailed(
                        Reply(
                            None, "server does not offer STARTTLS, which the route requires", phase
                        )
                    )
                await client.starttls(tls_context=_tls_context(route))
                phase = Phase.EHLO
                ehlo = await client.ehlo()
            if route.username is not None:
                phase = Phase.AUTH
                if route.password is None:
                    client.close()
                    raise ConnectFailed(Reply(None, "no password given for the route", phase))
                await client.login(route.username, route.password)
        except aiosmtplib.SMTPResponseException as exc:
            client.close()
            raise ConnectFailed(Reply(exc.code, exc.message, phase)) from None
        except (aiosmtplib.SMTPException, OSError, ssl.SSLError) as exc:
            client.close()
            raise ConnectFailed(Reply(None, _describe(exc), phase)) from None
        conn = cls(client=client, route=route, number=number)
        conn.extensions = dict(client.esmtp_extensions)
        conn.extensions["_ehlo"] = ehlo.message
        return conn

    async def send(self, sender: str, recipient: str, payload: bytes) -> Reply:
        """One transaction. Returns the final reply: ``250`` at DATA_END when accepted, else the
        first failing reply (or ``code=None`` when the server said nothing) with its phase.
        A refused transaction is reset with RSET so the connection stays usable."""
        client = self.client
        phase = Phase.MAIL
        try:
            response = await client.execute_command(b"MAIL", b"FROM:<" + sender.encode() + b">")
            if response.code != 250:
                return await self._refused(
                    Reply(response.code, response.message, phase, self.messages)
                )
            phase = Phase.RCPT
            response = await client.execute_command(b"RCPT", b"TO:<" + recipient.encode() + b">")
            if response.code not in (250, 251):
                return await self._refused(
                    Reply(response.code, response.message, phase, self.messages)
                )
            phase = Phase.DATA
            response = await client.execute_command(b"DATA")
            if response.code != 354:
                return await self._refused(
                    Reply(response.code, response.message, phase, self.messages)
                )
            phase = Phase.DATA_END
            protocol = client.protocol
            if protocol is None:
                raise aiosmtplib.SMTPServerDisconnected("Connection lost")
            protocol.write(payload)
            response = await protocol.read_response(timeout=self.route.timeout * 2)
        except (aiosmtplib.SMTPException, OSError, ValueError) as exc:
            self._drop()
            return Reply(None, _describe(exc), phase, self.messages)
        reply = Reply(response.code, response.message, phase, self.messages)
        if response.code == 250:
            self.messages += 1
        elif response.code == 421:
            self._drop()
        return reply

    async def _refused(self, reply: Reply) -> Reply:
        """After a refusal: a 421 closes the connection; anything else is reset with RSET."""
        if reply.code == 421 or reply.code is None:
            self._drop()
            return reply
        try:
            response = await self.client.execute_command(b"RSET")
            if response.code != 250:
                self._drop()
        except (aiosmtplib.SMTPException, OSError):
            self._drop()
        return reply

    def _drop(self) -> None:
        self.alive = False
        self.client.close()

    async def close(self) -> None:
        """QUIT politely (bounded), then close; never raises."""
        if not self.alive:
            return
        self.alive = False
        try:
            await asyncio.wait_for(self.client.quit(), _QUIT_TIMEOUT)
        except (aiosmtplib.SMTPException, OSError, TimeoutError):
            pass
        finally:
            self.client.close()


def _describe(exc: BaseException) -> str:
    """A short, human text for a failure that came without an SMTP reply."""
    text = str(exc) or type(exc).__name__
    cause = exc.__cause__
    if cause is not None and str(cause) and str(cause) not in text:
        text = f"{text}: {cause}"
    return text
