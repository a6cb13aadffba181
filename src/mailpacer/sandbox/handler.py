"""The sandbox's aiosmtpd hooks (``handle_EHLO``, ``handle_MAIL``, ...): where each of the
profile's behaviours is applied to one command of one connection.

A hook answers with a reply line, or with :data:`SILENT` when it closed the connection on purpose
and nothing more may be sent. Refusals go through :meth:`Connection.refuse`, which closes the
connection after a ``421`` as a real server does.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from typing import Protocol

from aiosmtpd.smtp import Envelope, Session, TLSSetupException

from mailpacer.sandbox.limits import Greylist, Quota, RateLimiter
from mailpacer.sandbox.profiles import TOO_MANY_RECIPIENTS, Profile
from mailpacer.sandbox.records import Recorder

log = logging.getLogger(__name__)

#: a hook's answer that means "send nothing" (the connection was closed on purpose)
SILENT = "<silent>"


class Pacing(Protocol):
    """A connection's latency keeper (:class:`~mailpacer.sandbox.server.Pace`)."""

    async def sleep(self, seconds: float) -> None: ...


class Connection(Protocol):
    """What a hook uses of the connection it answers
    (:class:`~mailpacer.sandbox.server.SandboxSMTP`); the server imports the hooks, not the
    other way round."""

    ip: str
    connection_id: int
    accepted: int  #: messages accepted on this connection

    @property
    def pace(self) -> Pacing: ...

    async def push(self, status: str) -> None: ...

    async def refuse(self, line: str) -> str: ...

    def close_now(self) -> None: ...

    def release(self) -> None: ...


class Shared(Protocol):
    """What the hooks read of the state every connection shares
    (:class:`~mailpacer.sandbox.server.SandboxState`)."""

    @property
    def profile(self) -> Profile: ...

    @property
    def recorder(self) -> Recorder: ...

    @property
    def clock(self) -> Callable[[], float]: ...

    @property
    def quota(self) -> Quota | None: ...

    @property
    def rate(self) -> RateLimiter | None: ...

    @property
    def greylist(self) -> Greylist | None: ...

    @property
    def messages_per_connection(self) -> int | None: ...

    @property
    def rcptmax(self) -> int | None: ...

    @property
    def faults(self) -> random.Random: ...

    def drop_now(self, phase: str) -> bool: ...


class SandboxHandler:
    """aiosmtpd hooks: where each of the profile's behaviours is applied."""

    def __init__(self, state: Shared) -> None:
        self.state = state

    async def handle_EHLO(
        self,
        server: Connection,
        session: Session,
        envelope: Envelope,
        hostname: str,
        responses: list[str],
    ) -> list[str]:
        session.host_name = hostname
        profile = self.state.profile
        # An ordinary server's keywords, no HELP; PIPELINING and LIMITS only when the profile
        # offers them.
        offered = []
        if profile.pipelining:
            offered.append("250-PIPELINING")
        if profile.ehlo_limits is not None:
            offered.append(f"250-LIMITS {profile.ehlo_limits}")
        lines = [responses[0], *offered, *responses[1:-1]]
        lines[-1] = "250 " + lines[-1][4:]
        return lines

    async def handle_MAIL(
        self,
        server: Connection,
        session: Session,
        envelope: Envelope,
        address: str,
        mail_options: list[str],
    ) -> str:
        state = self.state
        profile = state.profile
        cap = state.messages_per_connection
        if cap is not None and server.accepted >= cap:
            if profile.per_connection_refusal == "reply":
                await server.push(profile.reply(profile.per_connection_reply, ip=server.ip))
            server.close_now()
            return SILENT
        if state.drop_now("MAIL"):
            server.close_now()
            return SILENT
        now = state.clock()
        if state.quota is not None and state.quota.exhausted(now):
            return await server.refuse(profile.reply(profile.quota_reply, ip=server.ip))
        if state.rate is not None and not state.rate.allow(server.ip, now):
            return await server.refuse(profile.reply(profile.rate_reply, ip=server.ip))
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 2.1.0 Ok"

    async def handle_RCPT(
        self,
        server: Connection,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        profile = self.state.profile
        if self.state.drop_now("RCPT"):
            server.close_now()
            return SILENT
        rcptmax = self.state.rcptmax
        if rcptmax is not None and len(envelope.rcpt_tos) >= rcptmax:
            return TOO_MANY_RECIPIENTS
        prefix = profile.unknown_user_prefix
        if prefix is not None and address.lower().startswith(prefix):
            return await server.refuse(
                profile.reply(profile.unknown_user_reply, ip=server.ip, rcpt=address)
            )
        greylist = self.state.greylist
        if greylist is not None:
            wait = greylist.wait(server.ip, address, self.state.clock())
            if wait is not None:
                return await server.refuse(
                    profile.reply(profile.greylist_reply, ip=server.ip, rcpt=address, wait=wait)
                )
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 2.1.5 Ok"

    async def handle_DATA(self, server: Connection, session: Session, envelope: Envelope) -> str:
        state = self.state
        profile = state.profile
        if profile.data_latency > 0:
            await server.pace.sleep(profile.data_latency)
        if profile.fault_probability and state.faults.random() < profile.fault_probability:
            return await server.refuse(profile.reply(profile.fault_reply, ip=server.ip))
        now = state.clock()
        if state.quota is not None:
            if state.quota.exhausted(now):
                return await server.refuse(profile.reply(profile.quota_reply, ip=server.ip))
            state.quota.count(now)
        drop = state.drop_now("DATA_END")
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

    async def handle_QUIT(self, server: Connection, session: Session, envelope: Envelope) -> str:
        server.release()  # before the reply: a client that reconnects at once finds its slot
        return "221 2.0.0 Bye"

    async def handle_exception(self, error: Exception) -> str:
        if isinstance(error, TLSSetupException):  # the client's TLS handshake failed
            return "454 4.7.0 TLS not available due to local problem"
        self.state.recorder.internal_error()
        log.error("sandbox: internal error", exc_info=error)
        return "451 4.3.0 Error: internal sandbox error"
