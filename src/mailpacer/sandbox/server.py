"""The sandbox SMTP server: aiosmtpd's protocol with a strict provider's behaviours.

:class:`SandboxState` is shared by every connection of one sandbox (profile, limits, seeded
random draws, the recorder). :class:`SandboxSMTP` is one connection; :class:`SandboxHandler`
holds aiosmtpd's ``handle_*`` hooks, where the profile's behaviours are applied. Latencies are
``asyncio.sleep``: the loop keeps serving other connections meanwhile.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import random
import re
import secrets
import ssl
import time
from collections.abc import Awaitable, Callable
from typing import Any, AnyStr

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session, TLSSetupException

from mailpacer.sandbox.limits import ConnectionSlots, Greylist, Quota, RateLimiter
from mailpacer.sandbox.profiles import Profile
from mailpacer.sandbox.records import Recorder

log = logging.getLogger(__name__)

#: a hook's answer that means "send nothing" (the connection was closed on purpose)
SILENT = "<silent>"
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
            RateLimiter(profile.rate_per_minute, profile.rate_burst)
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
        self.faults = random.Random(f"{profile.seed}/faults")
        self.drops = random.Random(f"{profile.seed}/drops")
        self.connections: set[SandboxSMTP] = set()
        self._ids = itertools.count(1)
        self.handler = SandboxHandler(self)

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
        if profile.command_latency > 0:
            self._smtp_methods = {
                name: _delayed(method, profile.command_latency, self.pace)
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
            reply = profile.reply(profile.connection_reply, ip=self.ip)
            await self.push(reply)
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

    async def smtp_AUTH(self, arg: str) -> None:
        if self.state.profile.auth_tls and self._tls_protocol is None:
            await self.push(STARTTLS_FIRST)
            return
        await super().smtp_AUTH(arg)


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


def _delayed(
    method: Callable[[str | None], Awaitable[None]], seconds: float, pace: Pace
) -> Callable[[str | None], Awaitable[None]]:
    """``method`` answering ``seconds`` later."""

    async def run(arg: str | None) -> None:
        await pace.sleep(seconds)
        await method(arg)

    for attr in ("__smtp_syntax__", "__smtp_syntax_extended__", "__smtp_syntax_when__"):
        if hasattr(method, attr):
            setattr(run, attr, getattr(method, attr))
    return run


class SandboxHandler:
    """aiosmtpd hooks: where each of the profile's behaviours is applied."""

    def __init__(self, state: SandboxState) -> None:
        self.state = state

    async def handle_EHLO(
        self,
        server: SandboxSMTP,
        session: Session,
        envelope: Envelope,
        hostname: str,
        responses: list[str],
    ) -> list[str]:
        session.host_name = hostname
        # An ordinary server's keywords: no limits advertised, no HELP.
        lines = [responses[0], "250-PIPELINING", *responses[1:-1]]
        lines[-1] = "250 " + lines[-1][4:]
        return lines

    async def handle_MAIL(
        self,
        server: SandboxSMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        mail_options: list[str],
    ) -> str:
        state = self.state
        profile = state.profile
        cap = profile.max_messages_per_connection
        if cap is not None and server.accepted >= cap:
            await server.push(profile.reply(profile.per_connection_reply, ip=server.ip))
            server.close_now()
            return SILENT
        now = state.clock()
        if state.quota is not None and state.quota.exhausted(now):
            return profile.reply(profile.quota_reply, ip=server.ip)
        if state.rate is not None and not state.rate.allow(server.ip, now):
            return profile.reply(profile.rate_reply, ip=server.ip)
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 2.1.0 Ok"

    async def handle_RCPT(
        self,
        server: SandboxSMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        profile = self.state.profile
        prefix = profile.unknown_user_prefix
        if prefix is not None and address.lower().startswith(prefix):
            return profile.reply(profile.unknown_user_reply, ip=server.ip, rcpt=address)
        greylist = self.state.greylist
        if greylist is not None:
            wait = greylist.wait(server.ip, address, self.state.clock())
            if wait is not None:
                return profile.reply(profile.greylist_reply, ip=server.ip, rcpt=address, wait=wait)
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 2.1.5 Ok"

    async def handle_DATA(self, server: SandboxSMTP, session: Session, envelope: Envelope) -> str:
        state = self.state
        profile = state.profile
        if profile.data_latency > 0:
            await server.pace.sleep(profile.data_latency)
        if profile.fault_probability and state.faults.random() < profile.fault_probability:
            return profile.reply(profile.fault_reply, ip=server.ip)
        now = state.clock()
        if state.quota is not None:
            if state.quota.exhausted(now):
                return profile.reply(profile.quota_reply, ip=server.ip)
            state.quota.count(now)
        drop = bool(profile.drop_probability) and state.drops.random() < profile.drop_probability
        data: bytes = envelope.original_content or b""
        state.recorder.message(
            time=time.time(),
            connection_id=server.connection_id,
            mail_from=envelope.mail_from or "",
            rcpt_tos=envelope.rcpt_tos,
            data=data,
            dropped=drop,
        )
        server.accepted += 1
        if drop:
            server.close_now()
            return SILENT
        return f"250 2.0.0 Ok: queued as {server.connection_id:X}.{server.accepted}"

    async def handle_QUIT(self, server: SandboxSMTP, session: Session, envelope: Envelope) -> str:
        server.release()  # before the reply: a client that reconnects at once finds its slot
        return "221 2.0.0 Bye"

    async def handle_exception(self, error: Exception) -> str:
        if isinstance(error, TLSSetupException):  # the client's TLS handshake failed
            return "454 4.7.0 TLS not available due to local problem"
        self.state.recorder.internal_error()
        log.error("sandbox: internal error", exc_info=error)
        return "451 4.3.0 Error: internal sandbox error"


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
