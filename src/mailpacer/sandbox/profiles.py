"""Sandbox profiles: what a strict provider does, as data (DESIGN §8, §9).

A :class:`Profile` lists every behaviour the sandbox can switch on; each field's default is "off".
Tests shorten slow behaviours with :func:`dataclasses.replace`, e.g.
``replace(get_profile("flaky"), greylist_seconds=1.0)``.

Capacity
--------
:attr:`Profile.capacity` is the honest theoretical maximum, in accepted messages per second, for a
perfect client: one recipient per message, no RSET between successful messages, no wasted
connection. With ``c`` the per-command latency and ``d`` the latency after the final ".":

* one message on one connection costs ``t = 3c + d`` (MAIL, RCPT, DATA command, after DATA);
* with a per-connection cap ``N``, add the connection's own cost spread over its messages:
  ``t += (greeting + c*(EHLO + QUIT) [+ c*(STARTTLS + EHLO + AUTH)]) / N``;
* ``capacity = min(max_connections / t, rate_per_minute / 60)``, infinite where unbounded.

Faults, drops, greylisting and quotas only lower what a client achieves; they are not in the
formula (it is an upper bound). TLS handshakes and network time are not latencies and not counted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from mailpacer.errors import NotFound, UsageError

CAPACITY_FORMULA = """\
capacity: messages/s a perfect client can reach (one recipient per message, no RSET)
  t = 3*command + after_DATA  [+ (greeting + command*(EHLO + QUIT [+ STARTTLS + EHLO + AUTH]))
                                 / messages_per_connection]
  capacity = min(max_connections / t, rate_per_minute / 60)"""


@dataclass(frozen=True, slots=True)
class Profile:
    """One sandbox behaviour set. Latencies are seconds; ``None`` switches a limit off."""

    name: str
    description: str
    hostname: str = "mx.sandbox.mailpacer.test"
    #: text after the host name in the 220 greeting
    banner: str = "ESMTP"

    greeting_latency: float = 0.0
    #: before every command's reply (EHLO, MAIL, RCPT, DATA, QUIT, STARTTLS, AUTH, ...)
    command_latency: float = 0.0
    #: after the final "." before the reply
    data_latency: float = 0.0

    #: concurrent connections per client IP; over it the greeting is ``connection_reply``
    max_connections: int | None = None
    connection_reply: str = "421 4.7.0 {host} Error: too many connections from {ip}"

    #: accepted messages per connection; the next MAIL gets ``per_connection_reply`` and a close
    max_messages_per_connection: int | None = None
    per_connection_reply: str = "421 4.4.2 {host} Error: too many messages in this connection"

    #: token bucket per client IP, taken at MAIL
    rate_per_minute: float | None = None
    rate_burst: int = 1
    rate_reply: str = "450 4.7.1 Error: too much mail from {ip}"

    #: probability that a message is refused after DATA with ``fault_reply`` (seeded)
    fault_probability: float = 0.0
    fault_reply: str = "451 4.3.0 Error: queue file write error"
    #: probability that a message is accepted and recorded, then the connection closes unanswered
    drop_probability: float = 0.0
    seed: int = 0

    #: recipients whose local part starts with this are unknown (550 5.1.1 at RCPT)
    unknown_user_prefix: str | None = "nouser"
    unknown_user_reply: str = (
        "550 5.1.1 <{rcpt}>: Recipient address rejected: User unknown in local recipient table"
    )

    #: first try per (client IP, recipient) is refused until this many seconds have passed
    greylist_seconds: float | None = None
    greylist_reply: str = (
        "451 4.7.1 <{rcpt}>: Recipient address rejected: Greylisted, please try again in "
        "{seconds} seconds"
    )

    #: accepted messages per window (all clients); then MAIL gets ``quota_reply``
    quota: int | None = None
    quota_window_seconds: float = 86400.0
    quota_reply: str = "550 5.4.5 Daily user sending limit exceeded."

    #: STARTTLS offered (self-signed certificate) and AUTH PLAIN/LOGIN required after it
    auth_tls: bool = False

    def __post_init__(self) -> None:
        for field_name in ("greeting_latency", "command_latency", "data_latency"):
            if getattr(self, field_name) < 0:
                raise UsageError(f"profile {self.name}: {field_name} must be >= 0")
        for field_name in ("fault_probability", "drop_probability"):
            if not 0.0 <= getattr(self, field_name) <= 1.0:
                raise UsageError(f"profile {self.name}: {field_name} must be within [0, 1]")
        for field_name in ("max_connections", "max_messages_per_connection", "quota"):
            value = getattr(self, field_name)
            if value is not None and value < 1:
                raise UsageError(f"profile {self.name}: {field_name} must be >= 1 or None")
        if self.rate_per_minute is not None and self.rate_per_minute <= 0:
            raise UsageError(f"profile {self.name}: rate_per_minute must be > 0 or None")
        if self.rate_burst < 1:
            raise UsageError(f"profile {self.name}: rate_burst must be >= 1")
        if self.greylist_seconds is not None and self.greylist_seconds < 0:
            raise UsageError(f"profile {self.name}: greylist_seconds must be >= 0 or None")
        if self.quota_window_seconds <= 0:
            raise UsageError(f"profile {self.name}: quota_window_seconds must be > 0")

    @property
    def seconds_per_message(self) -> float:
        """Latency one message costs a perfect client on one connection (``t`` above)."""
        t = 3 * self.command_latency + self.data_latency
        if self.max_messages_per_connection is not None:
            commands = 2 + (3 if self.auth_tls else 0)
            setup = self.greeting_latency + commands * self.command_latency
            t += setup / self.max_messages_per_connection
        return t

    @property
    def capacity(self) -> float:
        """Messages/s this profile allows a perfect client (``math.inf`` when unbounded)."""
        t = self.seconds_per_message
        by_latency = math.inf
        if self.max_connections is not None and t > 0:
            by_latency = self.max_connections / t
        by_rate = math.inf if self.rate_per_minute is None else self.rate_per_minute / 60.0
        return min(by_latency, by_rate)

    def reply(self, template: str, *, ip: str = "127.0.0.1", rcpt: str = "", wait: int = 0) -> str:
        """One of the reply templates with its placeholders filled in."""
        return template.format(host=self.hostname, ip=ip, rcpt=rcpt, seconds=wait)

    def behaviours(self) -> list[str]:
        """The switched-on behaviours, one short line each (for ``--list-profiles``)."""
        out: list[str] = []
        rcpt = f"{self.unknown_user_prefix or 'user'}1@example.com"
        wait = math.ceil(self.greylist_seconds or 0)
        if self.greeting_latency or self.command_latency or self.data_latency:
            out.append(
                f"latency: greeting {_ms(self.greeting_latency)}, command "
                f"{_ms(self.command_latency)}, after DATA {_ms(self.data_latency)}"
            )
        if self.max_connections is not None:
            out.append(
                f"{self.max_connections} concurrent connections per IP, then greeting: "
                f"{self.reply(self.connection_reply)}"
            )
        if self.max_messages_per_connection is not None:
            out.append(
                f"{self.max_messages_per_connection} messages per connection, then MAIL: "
                f"{self.reply(self.per_connection_reply)}"
            )
        if self.rate_per_minute is not None:
            out.append(
                f"{self.rate_per_minute:g} messages/minute per IP (burst "
                f"{self.rate_burst}), then MAIL: {self.reply(self.rate_reply)}"
            )
        if self.fault_probability:
            out.append(
                f"faults p={self.fault_probability:g} after DATA (seed {self.seed}): "
                f"{self.reply(self.fault_reply)}"
            )
        if self.drop_probability:
            out.append(
                f"drop after DATA p={self.drop_probability:g} (seed {self.seed}): "
                "accepted, connection closed without reply"
            )
        if self.greylist_seconds is not None:
            out.append(
                f"greylisting {self.greylist_seconds:g} s per (IP, recipient): "
                f"{self.reply(self.greylist_reply, rcpt=rcpt, wait=wait)}"
            )
        if self.quota is not None:
            out.append(
                f"quota {self.quota} messages per {self.quota_window_seconds:g} s, then "
                f"MAIL: {self.reply(self.quota_reply)}"
            )
        if self.unknown_user_prefix is not None:
            unknown = self.reply(self.unknown_user_reply, rcpt=rcpt)
            out.append(f"recipients {self.unknown_user_prefix}*: {unknown}")
        if self.auth_tls:
            out.append(
                "STARTTLS (self-signed) then AUTH PLAIN/LOGIN required; before STARTTLS: "
                "530 5.7.0 Must issue a STARTTLS command first"
            )
        return out


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:g} ms"


_ALL = (
    Profile(
        name="strict",
        description="Exim-style: 2 connections per IP, refused at the greeting",
        hostname="mx.strict.sandbox.mailpacer.test",
        banner="ESMTP Exim 4.97",
        greeting_latency=0.005,
        command_latency=0.004,
        data_latency=0.018,
        max_connections=2,
        connection_reply=(
            "421 Too many concurrent SMTP connections from this IP address; please try again later."
        ),
    ),
    Profile(
        name="exchange-like",
        description="Exchange-style: 3 connections per IP, 20 messages per connection",
        hostname="mx.exchange.sandbox.mailpacer.test",
        banner="Microsoft ESMTP MAIL Service ready",
        greeting_latency=0.010,
        command_latency=0.005,
        data_latency=0.028,
        max_connections=3,
        connection_reply=(
            "421 4.3.2 The maximum number of concurrent server connections has exceeded a "
            "limit, closing transmission channel"
        ),
        max_messages_per_connection=20,
        per_connection_reply=(
            "421 4.4.2 {host} Too many messages in this connection, closing transmission channel"
        ),
    ),
    Profile(
        name="rate-limited",
        description="Postfix anvil-style: 3,600 messages/minute per IP (burst 20), 4 connections",
        hostname="mx.rate.sandbox.mailpacer.test",
        banner="ESMTP Postfix",
        greeting_latency=0.002,
        command_latency=0.002,
        data_latency=0.006,
        max_connections=4,
        rate_per_minute=3600.0,
        rate_burst=20,
    ),
    Profile(
        name="flaky",
        description="transient faults, drops after DATA and greylisting (seeded)",
        hostname="mx.flaky.sandbox.mailpacer.test",
        banner="ESMTP Postfix",
        greeting_latency=0.002,
        command_latency=0.002,
        data_latency=0.006,
        max_connections=4,
        fault_probability=0.05,
        drop_probability=0.02,
        greylist_seconds=15.0,
    ),
    Profile(
        name="quota",
        description="Gmail-style daily sending limit: 500 messages per day, 3 connections",
        hostname="smtp.quota.sandbox.mailpacer.test",
        banner="ESMTP ready",
        greeting_latency=0.002,
        command_latency=0.002,
        data_latency=0.006,
        max_connections=3,
        connection_reply="421 4.7.0 Try again later, closing connection.",
        quota=500,
    ),
    Profile(
        name="auth-tls",
        description="submission port: STARTTLS then AUTH PLAIN/LOGIN required, 4 connections",
        hostname="smtp.auth.sandbox.mailpacer.test",
        banner="ESMTP Postfix",
        greeting_latency=0.002,
        command_latency=0.002,
        data_latency=0.006,
        max_connections=4,
        auth_tls=True,
    ),
    Profile(
        name="unlimited",
        description="no limits, no latency: as fast as the sandbox goes",
        hostname="mx.unlimited.sandbox.mailpacer.test",
        banner="ESMTP",
    ),
)

#: every built-in profile by name
PROFILES: dict[str, Profile] = {p.name: p for p in _ALL}


def get_profile(name: str) -> Profile:
    """The built-in profile called ``name``; :class:`NotFound` lists the known ones."""
    try:
        return PROFILES[name]
    except KeyError:
        known = ", ".join(PROFILES)
        raise NotFound(f"unknown sandbox profile {name!r}; known profiles: {known}") from None
