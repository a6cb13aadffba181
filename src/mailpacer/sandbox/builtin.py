"""The built-in sandbox profiles (``mailpacer sandbox --list-profiles``), as data.

Each mimics how one kind of server words and signals its limits (DESIGN §8, §9), with latencies
chosen so that the campaign-sized ones allow 50-100 messages/s: 1,000 messages in 10-20 s at their
stated capacity. Real figures are scaled up where the real ones would make a rehearsal take hours
(Microsoft 365's 30 messages/minute, SES's per-account rate).
"""

from __future__ import annotations

from mailpacer.core.errors import NotFound
from mailpacer.sandbox.profiles import Profile

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
        name="ses-like",
        description=(
            "Amazon SES-style: 3,600 messages/minute (454 Throttling failure), 50 per session, "
            "4 connections"
        ),
        hostname="email-smtp.ses.sandbox.mailpacer.test",
        banner="ESMTP SimpleEmailService",
        greeting_latency=0.010,
        command_latency=0.004,
        data_latency=0.020,
        max_connections=4,
        connection_reply="421 Too many concurrent SMTP connections",
        max_messages_per_connection=50,
        per_connection_reply=(
            "421 Connection closed by server. Maximum message count per session reached."
        ),
        rate_per_minute=3600.0,
        rate_burst=10,
        rate_reply="454 Throttling failure: Maximum sending rate exceeded.",
        quota=50_000,
        quota_reply="454 Throttling failure: Daily message quota exceeded.",
    ),
    Profile(
        name="o365-like",
        description=(
            "Microsoft 365-style: 3 connections (432 4.3.2 at the greeting), 10,000 messages "
            "a day (554 5.2.0 STOREDRV)"
        ),
        hostname="smtp.o365.sandbox.mailpacer.test",
        banner="Microsoft ESMTP MAIL Service ready",
        greeting_latency=0.015,
        command_latency=0.008,
        data_latency=0.030,
        pipelining=True,
        max_connections=3,
        connection_reply="432 4.3.2 Concurrent connections limit exceeded.",
        quota=10_000,
        quota_reply="554 5.2.0 STOREDRV.Submission.Exception:SubmissionQuotaExceededException",
    ),
    Profile(
        name="pipelining",
        description=(
            "modern MTA: PIPELINING and LIMITS MAILMAX=25 advertised, the 26th MAIL on a "
            "connection closes it silently, 3 connections"
        ),
        hostname="mx.pipelining.sandbox.mailpacer.test",
        banner="ESMTP",
        greeting_latency=0.010,
        command_latency=0.005,
        data_latency=0.025,
        pipelining=True,
        ehlo_limits="MAILMAX=25 RCPTMAX=50",
        max_connections=3,
        per_connection_refusal="close",
    ),
    Profile(
        name="firewall",
        description="3 connections per IP; a 4th is accepted and closed at once, no greeting",
        hostname="mx.firewall.sandbox.mailpacer.test",
        banner="ESMTP Postfix",
        greeting_latency=0.004,
        command_latency=0.004,
        data_latency=0.024,
        max_connections=3,
        connection_refusal="close",
    ),
    Profile(
        name="fivexx-rate",
        description=(
            "QQ Mail-style: 3,600 messages/minute answered with a 5xx at MAIL "
            "(550 Ip frequency limited.), 4 connections"
        ),
        hostname="mx.fivexx.sandbox.mailpacer.test",
        banner="ESMTP ready",
        greeting_latency=0.002,
        command_latency=0.003,
        data_latency=0.010,
        max_connections=4,
        rate_per_minute=3600.0,
        rate_burst=10,
        rate_reply="550 Ip frequency limited.",
    ),
    Profile(
        name="anvil",
        description=(
            "Postfix anvil: 2 connections, 50 messages per 10 s window per IP, counted from "
            "the window's first message (450 4.7.1 until it ends)"
        ),
        hostname="mx.anvil.sandbox.mailpacer.test",
        banner="ESMTP Postfix (Debian/GNU)",
        greeting_latency=0.002,
        command_latency=0.002,
        data_latency=0.006,
        max_connections=2,
        rate_per_minute=300.0,
        rate_shape="fixed",
        rate_window_seconds=10.0,
    ),
    Profile(
        name="cap-worded-as-rate",
        description=(
            "misleading words: 3 connections, 30 messages per connection, refused with "
            "Exchange's per-minute rate wording"
        ),
        hostname="mx.misleading.sandbox.mailpacer.test",
        banner="Microsoft ESMTP MAIL Service ready",
        greeting_latency=0.010,
        command_latency=0.005,
        data_latency=0.028,
        max_connections=3,
        max_messages_per_connection=30,
        per_connection_reply=(
            "421 4.4.2 Message submission rate for this client has exceeded the configured "
            "limit, closing transmission channel"
        ),
    ),
    Profile(
        name="sliding-window",
        description="3 connections, 600 messages per sliding 20 s window per IP",
        hostname="mx.sliding.sandbox.mailpacer.test",
        banner="ESMTP",
        greeting_latency=0.002,
        command_latency=0.002,
        data_latency=0.006,
        max_connections=3,
        rate_per_minute=1800.0,
        rate_shape="sliding",
        rate_window_seconds=20.0,
        rate_reply="451 4.7.1 Too many messages, slow down",
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
