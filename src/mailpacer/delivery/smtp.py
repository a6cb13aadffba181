"""One pooled SMTP connection over aiosmtplib, with every reply tagged by its phase.

The engine decides how many connections to keep and when to retire one (the pacer tells it);
this module only does the I/O and reports what the server said, or that it said nothing, in the
phase where it happened. That phase is what separates a transient failure (no reply before the
final ".") from an ambiguous one (no reply after it).

When the server offers PIPELINING (RFC 2920), MAIL, RCPT and DATA go out in one write and their
replies are read in order: one round trip instead of three. Each reply keeps its own phase, and
the first refusal is the transaction's answer whatever the later commands got.
"""

from __future__ import annotations

import asyncio
import re
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import aiosmtplib
from aiosmtplib.protocol import SMTPProtocol

from mailpacer.core.classify import Phase, Reply
from mailpacer.core.route import Route, TlsMode

_PERIOD_AT_LINE_START = re.compile(rb"(?m)^\.")
_BARE_LINE_ENDINGS = re.compile(rb"\r\n|\r|\n")
_CONTROL_CHARACTERS = re.compile(rb"[\x00-\x1f\x7f]")  #: CR/LF in an address would inject
_QUIT_TIMEOUT = 5.0
#: the replies that let a transaction go on, per phase
_GOES_ON = {Phase.MAIL: (250,), Phase.RCPT: (250, 251), Phase.DATA: (354,)}


class ConnectFailed(Exception):
    """Opening a connection failed; ``reply`` says in which phase and what the server said.
    ``unreachable``: not even TCP got through (refused, no route, connect timeout) — nobody is
    listening there now, which says nothing about the server's limits."""

    def __init__(self, reply: Reply, *, unreachable: bool = False) -> None:
        super().__init__(f"{reply.phase}: {reply.code} {reply.text}")
        self.reply = reply
        self.unreachable = unreachable


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
            ehlo = await _greet(client)
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
            reply = Reply(None, _describe(exc), phase)
            raise ConnectFailed(reply, unreachable=_unreachable(exc, phase)) from None
        conn = cls(client=client, route=route, number=number)
        conn.extensions = dict(client.esmtp_extensions)
        conn.extensions["_ehlo"] = ehlo.message
        return conn

    @property
    def pipelining(self) -> bool:
        """The server offered PIPELINING: :meth:`send` writes MAIL, RCPT and DATA at once."""
        return "pipelining" in self.extensions

    async def send(
        self,
        sender: str,
        recipient: str,
        payload: bytes,
        *,
        before_payload: Callable[[], Awaitable[None]] | None = None,
    ) -> Reply:
        """One transaction. Returns the final reply: ``250`` at DATA_END when accepted, else the
        first failing reply (or ``code=None`` when the server said nothing) with its phase.
        A refused transaction is reset with RSET so the connection stays usable.
        ``before_payload`` is awaited after the 354 and before the message is written: what
        must be recorded before the server can have the message."""
        if self.pipelining:
            return await self._send_pipelined(sender, recipient, payload, before_payload)
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
        except (aiosmtplib.SMTPException, OSError, ValueError) as exc:
            self._drop()
            return Reply(None, _describe(exc), phase, self.messages)
        return await self._deliver(payload, before_payload)

    async def _send_pipelined(
        self,
        sender: str,
        recipient: str,
        payload: bytes,
        before_payload: Callable[[], Awaitable[None]] | None,
    ) -> Reply:
        """MAIL, RCPT and DATA in one write, then their three replies in order (RFC 2920).

        The first refusal answers the transaction, in its own phase: a RCPT refusal stays RCPT
        though DATA then got 503. A 421 ends the reading (the server is closing). If DATA got
        354 although an earlier command was refused, an empty message (".") ends it. No reply
        at all is reported in the phase whose reply was missing — unless a refusal came first.
        """
        commands = (
            (Phase.MAIL, b"MAIL FROM:<" + sender.encode() + b">\r\n"),
            (Phase.RCPT, b"RCPT TO:<" + recipient.encode() + b">\r\n"),
            (Phase.DATA, b"DATA\r\n"),
        )
        refused: Reply | None = None
        phase = Phase.MAIL
        try:
            protocol = self._protocol()
            if _CONTROL_CHARACTERS.search(sender.encode() + recipient.encode()):
                raise ValueError("an address contains a prohibited control character")
            protocol.write(b"".join(line for _, line in commands))
            for phase, _ in commands:
                response = await _read_reply(protocol, self.route.timeout)
                if refused is None and response.code not in _GOES_ON[phase]:
                    refused = Reply(response.code, response.message, phase, self.messages)
                if response.code == 421:
                    self._drop()
                    return refused or Reply(421, response.message, phase, self.messages)
            if refused is None:
                return await self._deliver(payload, before_payload)
            if response.code == 354 and refused.phase is Phase.MAIL:
                self._drop()  # a recipient may have been taken without a sender: abort, no "."
                return refused
            if response.code == 354:  # DATA accepted though no recipient was: end it empty
                protocol.write(b".\r\n")
                await _read_reply(protocol, self.route.timeout * 2)
        except (aiosmtplib.SMTPException, OSError, ValueError) as exc:
            self._drop()
            return refused or Reply(None, _describe(exc), phase, self.messages)
        return await self._refused(refused)

    async def _deliver(
        self, payload: bytes, before_payload: Callable[[], Awaitable[None]] | None = None
    ) -> Reply:
        """After the 354: the framed payload, then the reply to its final "." (DATA_END)."""
        if before_payload is not None:
            await before_payload()
        try:
            self._protocol().write(payload)
        except (aiosmtplib.SMTPException, OSError) as exc:  # nothing written: no "." sent
            self._drop()
            return Reply(None, _describe(exc), Phase.DATA, self.messages)
        try:
            response = await _read_reply(self._protocol(), self.route.timeout * 2)
        except (aiosmtplib.SMTPException, OSError, ValueError) as exc:
            self._drop()
            return Reply(None, _describe(exc), Phase.DATA_END, self.messages)
        reply = Reply(response.code, response.message, Phase.DATA_END, self.messages)
        if response.code == 250:
            self.messages += 1
        elif response.code == 421:
            self._drop()
        return reply

    def _protocol(self) -> SMTPProtocol:
        protocol = self.client.protocol
        if protocol is None:
            raise aiosmtplib.SMTPServerDisconnected("Connection lost")
        return protocol

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


async def _read_reply(protocol: SMTPProtocol, seconds: float) -> aiosmtplib.SMTPResponse:
    """The server's next reply, safe for pipelined commands.

    aiosmtplib parses one reply per packet it receives, so replies that came in one packet wait
    in its buffer: take one from there first. And it drops a packet that arrives while a parsed
    reply is not yet picked up; ``read_response(timeout=...)`` (``wait_for`` on Python 3.11)
    leaves loop iterations for that to happen, so the ``seconds`` bound is an ``asyncio.timeout``
    around an unbounded read, which wakes the reader before the next packet is handled.
    """
    buffered = protocol._read_response_from_buffer()
    if buffered is not None:
        return buffered
    try:
        async with asyncio.timeout(seconds):
            return await protocol.read_response()
    except TimeoutError:
        raise aiosmtplib.SMTPReadTimeoutError("Timed out waiting for server response") from None


#: EHLO replies that mean "I only speak HELO" (RFC 5321 §4.1.4: fall back to HELO)
_EHLO_UNKNOWN = frozenset({500, 501, 502, 504})


async def _greet(client: aiosmtplib.SMTP) -> aiosmtplib.SMTPResponse:
    """EHLO, or HELO when the server does not know EHLO (no extensions then: no PIPELINING)."""
    try:
        return await client.ehlo()
    except aiosmtplib.SMTPHeloError as exc:
        if exc.code not in _EHLO_UNKNOWN:
            raise
    return await client.helo()


def _unreachable(exc: BaseException, phase: Phase) -> bool:
    """The TCP connection itself failed (before any byte from the server)."""
    if phase is not Phase.CONNECT:
        return False
    cause = exc.__cause__ if isinstance(exc, aiosmtplib.SMTPException) else exc
    tcp = isinstance(cause, OSError | TimeoutError)
    return tcp and not isinstance(cause, aiosmtplib.SMTPException)


def _describe(exc: BaseException) -> str:
    """A short, human text for a failure that came without an SMTP reply."""
    text = str(exc) or type(exc).__name__
    cause = exc.__cause__
    if cause is not None and str(cause) and str(cause) not in text:
        text = f"{text}: {cause}"
    return text
