"""The sandbox SMTP server: aiosmtpd's protocol with a strict provider's behaviours.

:class:`SandboxState` is shared by every connection of one sandbox (profile, limits, seeded
random draws, the recorder). :class:`SandboxSMTP` is one connection;
:class:`~mailpacer.sandbox.handler.SandboxHandler` holds aiosmtpd's ``handle_*`` hooks, where the
profile's behaviours are applied. Latencies are ``asyncio.sleep``: the loop keeps serving other
connections meanwhile.

Pipelined input (several commands in one packet, RFC 2920) is read line by line by aiosmtpd and
answered in order. Once the sandbox closes a connection on purpose, commands still buffered behind
the one that closed it are ignored: no reply, and no side effect such as a greylist entry.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import re
import secrets
import ssl
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, AnyStr

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session, syntax

from mailpacer.sandbox.handler import SILENT, Connection, SandboxHandler
from mailpacer.sandbox.limits import ConnectionSlots, Greylist, Quota, RateLimiter
from mailpacer.sandbox.profiles import Profile
from mailpacer.sandbox.records import Recorder

STARTTLS_FIRST = "530 5.7.0 Must issue a STARTTLS command first"
_IDLE_TIMEOUT = 300.0
_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_SIMPLE_ADDRESS = re.compile(
    rf"\s*<({_ATOM}(?:\.{_ATOM})*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*)>(.*)\Z", re.S
)


class SandboxState:
    """Everything the connections of one sandbox share."""

    def __init__(
        self,
        profile: Profile,
        recorder: Recorder,
        *,
        credentials: tuple[str, str] | None = None,
        tls_context: ssl.SSLContext | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.profile = profile
        self.recorder = recorder
        self.credentials = credentials
        self.tls_context = tls_context
        self.clock = clock
        self.slots = ConnectionSlots(profile.max_connections)
        self.rate = (
            RateLimiter(
                profile.rate_per_minute,
                profile.rate_burst,
                shape=profile.rate_shape,
                window=profile.rate_window_seconds,
            )
            if profile.rate_per_minute is not None
            else None
        )
        self.greylist = (
            Greylist(profile.greylist_seconds) if profile.greylist_seconds is not None else None
        )
        self.quota = (
            Quota(profile.quota, profile.quota_window_seconds)
            if profile.quota is not None
            else None
        )
        #: the enforced per-connection cap (``max_messages_per_connection`` or LIMITS MAILMAX)
        self.messages_per_connection = profile.messages_per_connection
        self.rcptmax = profile.limits.get("RCPTMAX")
        self.faults = random.Random(f"{profile.seed}/faults")
        self.drops = random.Random(f"{profile.seed}/drops")
        self.connections: set[SandboxSMTP] = set()
        self._ids = itertools.count(1)
        self.handler = SandboxHandler(self)

    def drop_now(self, phase: str) -> bool:
        """Whether to drop the connection at ``phase`` now (a seeded draw, only at ``drop_at``)."""
        profile = self.profile
        if not profile.drop_probability or profile.drop_at != phase:
            return False
        return self.drops.random() < profile.drop_probability

    def next_connection_id(self) -> int:
        """A new connection number (1, 2, ...)."""
        return next(self._ids)

    def authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        """aiosmtpd authenticator: the sandbox's one user and password."""
        ok = (
            self.credentials is not None
            and isinstance(data, LoginPassword)
            and secrets.compare_digest(data.login, self.credentials[0].encode())
            and secrets.compare_digest(data.password, self.credentials[1].encode())
        )
        if ok:
            return AuthResult(success=True, auth_data=data)
        return AuthResult(
            success=False, handled=False, message="535 5.7.8 Error: authentication failed"
        )


class _Session(Session):
    """aiosmtpd's session without the deprecation log line on ``login_data``."""

    login_data: Any = None


class SandboxSMTP(SMTP):
    """One client connection."""

    AuthLoginUsernameChallenge = "Username:"
    AuthLoginPasswordChallenge = "Password:"

    def __init__(self, state: SandboxState) -> None:
        profile = state.profile
        super().__init__(
            state.handler,
            hostname=profile.hostname,
            ident=profile.banner,
            enable_SMTPUTF8=True,
            tls_context=state.tls_context,
            timeout=_IDLE_TIMEOUT,
            auth_required=profile.auth_tls,
            auth_require_tls=True,
            authenticator=state.authenticate if profile.auth_tls else None,
            loop=asyncio.get_running_loop(),
        )
        self.state = state
        self.connection_id = state.next_connection_id()
        self.ip = "?"
        self.admitted = False
        self.accepted = 0  #: messages accepted on this connection
        self._closing = False
        self.pace = Pace()
        self._smtp_methods = {
            name: self._command(method, profile.command_latency)
            for name, method in self._smtp_methods.items()
        }

    def _create_session(self) -> Session:
        return _Session(self.loop)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        first = self.transport is None
        super().connection_made(transport)
        if not first:
            return  # the same connection after STARTTLS
        peer = transport.get_extra_info("peername")
        self.ip = str(peer[0]) if peer else "?"
        self.admitted = self.state.slots.acquire(self.ip)
        self.state.connections.add(self)
        slots = self.state.slots
        self.state.recorder.opened(self.admitted, slots.open, slots.peak)

    def connection_lost(self, error: Exception | None) -> None:
        self.release()
        self.state.connections.discard(self)
        super().connection_lost(error)

    def release(self) -> None:
        """Give the connection's slot back (once): at QUIT, at a close, or when it is lost."""
        if self.admitted:
            self.admitted = False
            self.state.slots.release(self.ip)
            self.state.recorder.closed(self.state.slots.open)

    def _command(
        self, method: Callable[[str | None], Awaitable[None]], latency: float
    ) -> Callable[[str | None], Awaitable[None]]:
        """``method`` as the sandbox runs it: ignored once the connection is closing, counted
        when the client pipelined the next command behind it, answered ``latency`` later."""

        async def run(arg: str | None) -> None:
            if self._closing:
                self.state.recorder.ignored()
                return
            # aiosmtpd reads line by line: bytes left in its reader are the next command(s)
            if self._reader._buffer:  # type: ignore[attr-defined]
                self.state.recorder.pipelined()
            if latency > 0:
                await self.pace.sleep(latency)
                if self._closing:
                    return
            await method(arg)

        for attr in ("__smtp_syntax__", "__smtp_syntax_extended__", "__smtp_syntax_when__"):
            if hasattr(method, attr):
                setattr(run, attr, getattr(method, attr))
        return run

    async def refuse(self, line: str) -> str:
        """A hook's refusal: returned as the reply, except that a ``421`` is sent here and the
        connection closed after it (then :data:`SILENT` is returned)."""
        if not line.startswith("421"):
            return line
        await self.push(line)
        self.close_now()
        return SILENT

    def close_now(self) -> None:
        """Release the slot and close the connection; nothing more is sent on it."""
        self._closing = True
        self.release()
        if self.transport is not None:
            self.transport.close()

    async def push(self, status: AnyStr) -> None:
        if status is SILENT or self._closing:
            return
        line = status if isinstance(status, str) else status.decode("ascii", "replace")
        self.state.recorder.reply(line)
        await super().push(status)

    async def _handle_client(self) -> None:
        profile = self.state.profile
        if not self.admitted:
            if profile.connection_refusal == "greeting":
                await self.push(profile.reply(profile.connection_reply, ip=self.ip))
            self.close_now()
            return
        if profile.greeting_latency > 0:
            await self.pace.sleep(profile.greeting_latency)
        await super()._handle_client()

    def _getaddr(self, arg: str) -> tuple[str | None, str | None]:
        # aiosmtpd parses every address with email's header parser (and defines a class per
        # call); plain ``<local@domain>`` takes this fast path, anything else the full parser.
        match = _SIMPLE_ADDRESS.match(arg)
        if match is not None:
            return match.group(1), match.group(2)
        result: tuple[str | None, str | None] = super()._getaddr(arg)
        return result

    async def check_auth_needed(self, caller_method: str) -> bool:
        if self.state.profile.auth_tls and self._tls_protocol is None:
            await self.push(STARTTLS_FIRST)
            return True
        result: bool = await super().check_auth_needed(caller_method)
        return result

    @syntax("DATA")
    async def smtp_DATA(self, arg: str) -> None:
        # the DATA command has no handler hook before its 354: a drop there is applied here
        envelope = self.envelope
        if envelope is not None and envelope.rcpt_tos and self.state.drop_now("DATA"):
            self.close_now()
            return
        await super().smtp_DATA(arg)

    async def smtp_AUTH(self, arg: str) -> None:
        if self.state.profile.auth_tls and self._tls_protocol is None:
            await self.push(STARTTLS_FIRST)
            return
        await super().smtp_AUTH(arg)


if TYPE_CHECKING:

    def _fits_the_hooks(conn: SandboxSMTP) -> Connection:
        """mypy checks here that a connection offers what the hooks use of it."""
        return conn


class Pace:
    """Per-connection latency that keeps its stated pace on average.

    ``asyncio.sleep`` wakes up late (timer granularity, about 1 ms here); carried over as a debt,
    the lateness is taken off the next sleep, so the stated latencies — and so the profile's
    stated capacity — hold over a connection's life instead of being ~10% slower.
    """

    def __init__(self) -> None:
        self.debt = 0.0

    async def sleep(self, seconds: float) -> None:
        """Sleep ``seconds``, less what earlier sleeps overran (never below zero)."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        await asyncio.sleep(max(0.0, seconds - self.debt))
        # bounded so one long stall (a busy machine) is not paid back by many instant replies
        self.debt = min(self.debt + (loop.time() - started) - seconds, seconds)


async def start_server(state: SandboxState, host: str, port: int) -> asyncio.Server:
    """Listen on ``host:port`` (OSError when that is impossible)."""
    loop = asyncio.get_running_loop()
    return await loop.create_server(lambda: SandboxSMTP(state), host, port)


async def stop_server(server: asyncio.Server, state: SandboxState, grace: float = 5.0) -> None:
    """Stop listening, cut every open connection and wait for their handlers to end."""
    server.close()
    tasks = []
    for conn in list(state.connections):
        conn.release()
        if isinstance(conn.transport, asyncio.Transport):
            conn.transport.abort()
        if conn._handler_coroutine is not None:
            tasks.append(conn._handler_coroutine)
    await server.wait_closed()
    if tasks:
        await asyncio.wait(tasks, timeout=grace)
        for task in tasks:
            if task.done() and not task.cancelled():
                task.exception()  # retrieved: a reset at shutdown is expected
