"""Sandbox profiles: what a strict provider does, as data (DESIGN §8, §9).

A :class:`Profile` lists every behaviour the sandbox can switch on; each field's default is "off".
The built-in profiles are in :mod:`mailpacer.sandbox.builtin`. Tests shorten slow behaviours with
:func:`dataclasses.replace`, e.g. ``replace(get_profile("flaky"), greylist_seconds=1.0)``.

Capacity
--------
:attr:`Profile.capacity` is the honest theoretical maximum, in accepted messages per second, for a
perfect client: one recipient per message, no RSET between successful messages, no wasted
connection. With ``c`` the per-command latency and ``d`` the latency after the final ".":

* one message on one connection costs ``t = 3c + d`` (MAIL, RCPT, DATA command, after DATA);
* with a per-connection cap ``N`` (the smaller of ``max_messages_per_connection`` and the
  advertised ``LIMITS MAILMAX``), add the connection's own cost spread over its messages:
  ``t += (greeting + c*(EHLO + QUIT) [+ c*(STARTTLS + EHLO + AUTH)]) / N``;
* ``capacity = min(max_connections / t, rate_per_minute / 60)``, infinite where unbounded.

Faults, drops, greylisting and quotas only lower what a client achieves; they are not in the
formula. It bounds the sustained rate: a full token bucket lets ``rate_burst`` messages through
once on top of it, so a short run can beat it by that many messages. TLS handshakes and network
time are not latencies and not counted. PIPELINING does not change it either: the latencies are
the server's time per command, which a pipelining client saves round trips on but still waits
for. How a limit is refused (a reply, a 5xx, a silent close) changes what a client learns, not
what a perfect client reaches.

Reply templates are one line starting with a 4xx or 5xx code; a ``421`` reply is followed by a
close, as RFC 5321 §3.8 says.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Literal

from mailpacer.core.errors import UsageError

CAPACITY_FORMULA = """\
capacity: messages/s a perfect client can reach (one recipient per message, no RSET)
  t = 3*command + after_DATA  [+ (greeting + command*(EHLO + QUIT [+ STARTTLS + EHLO + AUTH]))
                                 / min(messages_per_connection, MAILMAX)]
  capacity = min(max_connections / t, rate_per_minute / 60)"""

#: the reply at RCPT once a transaction has ``LIMITS RCPTMAX`` recipients (RFC 5321 §4.5.3.1.10)
TOO_MANY_RECIPIENTS = "452 4.5.3 Too many recipients"
_REPLY_FIELDS = (
    "connection_reply",
    "per_connection_reply",
    "rate_reply",
    "fault_reply",
    "unknown_user_reply",
    "greylist_reply",
    "quota_reply",
)
_REPLY = re.compile(r"[45][0-9][0-9](?: [^\r\n]*)?")
_LIMIT = re.compile(r"([A-Z][A-Z0-9-]*)=([0-9]{1,9})")


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

    #: advertise PIPELINING in EHLO (RFC 2920): the client may send MAIL, RCPT and DATA at once
    pipelining: bool = False
    #: RFC 9422 ``LIMITS`` advertised in EHLO, e.g. ``"MAILMAX=20 RCPTMAX=50"``; MAILMAX is
    #: enforced like ``max_messages_per_connection``, RCPTMAX with ``452 4.5.3`` at RCPT
    ehlo_limits: str | None = None

    #: concurrent connections per client IP; over it the connection is refused
    max_connections: int | None = None
    #: how: ``"greeting"`` sends ``connection_reply`` and closes; ``"close"`` accepts the TCP
    #: connection and closes it at once without a word (firewalls, some servers)
    connection_refusal: Literal["greeting", "close"] = "greeting"
    connection_reply: str = "421 4.7.0 {host} Error: too many connections from {ip}"

    #: accepted messages per connection; the next MAIL is refused and the connection closed
    max_messages_per_connection: int | None = None
    #: how: ``"reply"`` sends ``per_connection_reply`` first; ``"close"`` closes silently
    per_connection_refusal: Literal["reply", "close"] = "reply"
    per_connection_reply: str = "421 4.4.2 {host} Error: too many messages in this connection"

    #: token bucket per client IP, taken at MAIL
    rate_per_minute: float | None = None
    rate_burst: int = 1
    rate_reply: str = "450 4.7.1 Error: too much mail from {ip}"
    #: how the rate is counted: a token bucket, or ``rate_per_minute * rate_window_seconds / 60``
    #: messages per fixed window (Postfix anvil: it starts at the first message) or sliding one
    rate_shape: Literal["bucket", "fixed", "sliding"] = "bucket"
    rate_window_seconds: float = 60.0

    #: probability that a message is refused after DATA with ``fault_reply`` (seeded)
    fault_probability: float = 0.0
    fault_reply: str = "451 4.3.0 Error: queue file write error"
    #: probability that the connection closes unanswered at ``drop_at`` (seeded)
    drop_probability: float = 0.0
    #: where: ``"DATA_END"`` after the final "." (the message is accepted and recorded, the
    #: reply never sent: ambiguous for the client); ``"MAIL"``, ``"RCPT"`` or ``"DATA"`` (the
    #: command, before its reply; nothing recorded)
    drop_at: Literal["MAIL", "RCPT", "DATA", "DATA_END"] = "DATA_END"
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
        if self.rate_shape not in ("bucket", "fixed", "sliding"):
            raise UsageError(f"profile {self.name}: rate_shape must be bucket, fixed or sliding")
        if self.rate_window_seconds <= 0:
            raise UsageError(f"profile {self.name}: rate_window_seconds must be > 0")
        if self.rate_burst < 1:
            raise UsageError(f"profile {self.name}: rate_burst must be >= 1")
        if self.greylist_seconds is not None and self.greylist_seconds < 0:
            raise UsageError(f"profile {self.name}: greylist_seconds must be >= 0 or None")
        if self.quota_window_seconds <= 0:
            raise UsageError(f"profile {self.name}: quota_window_seconds must be > 0")
        if self.drop_at not in ("MAIL", "RCPT", "DATA", "DATA_END"):
            raise UsageError(f"profile {self.name}: drop_at must be MAIL, RCPT, DATA or DATA_END")
        if self.connection_refusal not in ("greeting", "close"):
            raise UsageError(f"profile {self.name}: connection_refusal must be greeting or close")
        if self.per_connection_refusal not in ("reply", "close"):
            raise UsageError(f"profile {self.name}: per_connection_refusal must be reply or close")
        for field_name in _REPLY_FIELDS:
            self._check_reply(field_name, getattr(self, field_name))
        _parse_limits(self.name, self.ehlo_limits)

    def _check_reply(self, field_name: str, template: str) -> None:
        if not _REPLY.fullmatch(template):
            raise UsageError(
                f"profile {self.name}: {field_name} must be one line starting with a 4xx or 5xx "
                f"code, not {template!r}"
            )
        try:
            self.reply(template)
        except (KeyError, IndexError, ValueError) as exc:
            raise UsageError(
                f"profile {self.name}: {field_name} has a bad placeholder ({exc}); "
                "known: {host} {ip} {rcpt} {seconds}"
            ) from None

    @property
    def limits(self) -> dict[str, int]:
        """``ehlo_limits`` as a mapping, e.g. ``{"MAILMAX": 20, "RCPTMAX": 50}``."""
        return _parse_limits(self.name, self.ehlo_limits)

    @property
    def messages_per_connection(self) -> int | None:
        """The enforced per-connection cap: ``max_messages_per_connection`` or MAILMAX,
        whichever is smaller (None when neither is set)."""
        caps = [c for c in (self.max_messages_per_connection, self.limits.get("MAILMAX")) if c]
        return min(caps) if caps else None

    @property
    def seconds_per_message(self) -> float:
        """Latency one message costs a perfect client on one connection (``t`` above)."""
        t = 3 * self.command_latency + self.data_latency
        cap = self.messages_per_connection
        if cap is not None:
            commands = 2 + (3 if self.auth_tls else 0)
            setup = self.greeting_latency + commands * self.command_latency
            t += setup / cap
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
        if self.pipelining:
            out.append("EHLO offers PIPELINING (RFC 2920)")
        if self.ehlo_limits is not None:
            enforced = ["MAILMAX per connection"] if "MAILMAX" in self.limits else []
            if "RCPTMAX" in self.limits:
                enforced.append(f"RCPTMAX then RCPT: {TOO_MANY_RECIPIENTS}")
            out.append(
                f"EHLO offers LIMITS {self.ehlo_limits} (RFC 9422); enforced: "
                f"{'; '.join(enforced) or 'nothing'}"
            )
        if self.max_connections is not None:
            refusal = (
                f"greeting: {self.reply(self.connection_reply)}"
                if self.connection_refusal == "greeting"
                else "closed at once without a greeting"
            )
            out.append(f"{self.max_connections} concurrent connections per IP, then {refusal}")
        cap = self.messages_per_connection
        if cap is not None:
            refusal = (
                f"MAIL: {self.reply(self.per_connection_reply)}"
                if self.per_connection_refusal == "reply"
                else "MAIL: connection closed without a reply"
            )
            out.append(f"{cap} messages per connection, then {refusal}")
        if self.rate_per_minute is not None and self.rate_shape != "bucket":
            count = max(1, round(self.rate_per_minute * self.rate_window_seconds / 60))
            out.append(
                f"{count} messages per {self.rate_shape} window of {self.rate_window_seconds:g} s "
                f"per IP, then MAIL: {self.reply(self.rate_reply)}"
            )
        elif self.rate_per_minute is not None:
            out.append(
                f"{self.rate_per_minute:g} messages/minute per IP (burst "
                f"{self.rate_burst}), then MAIL: {self.reply(self.rate_reply)}"
            )
        if self.fault_probability:
            out.append(
                f"faults p={self.fault_probability:g} after DATA (seed {self.seed}): "
                f"{self.reply(self.fault_reply)}"
            )
        if self.drop_probability and self.drop_at == "DATA_END":
            out.append(
                f"drop after DATA p={self.drop_probability:g} (seed {self.seed}): "
                "accepted, connection closed without reply"
            )
        elif self.drop_probability:
            out.append(
                f"drop at {self.drop_at} p={self.drop_probability:g} (seed {self.seed}): "
                "connection closed without reply, nothing recorded"
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


def _parse_limits(profile: str, text: str | None) -> dict[str, int]:
    if text is None:
        return {}
    out: dict[str, int] = {}
    for word in text.split():
        match = _LIMIT.fullmatch(word)
        if match is None or int(match.group(2)) < 1:
            raise UsageError(
                f"profile {profile}: ehlo_limits must be NAME=number words (number >= 1), "
                f"e.g. 'MAILMAX=20 RCPTMAX=50'; not {word!r}"
            )
        out[match.group(1)] = int(match.group(2))
    if not out:
        raise UsageError(f"profile {profile}: ehlo_limits is empty (use None)")
    return out


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:g} ms"
