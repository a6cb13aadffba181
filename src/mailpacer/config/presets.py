"""Provider presets: host, port, TLS mode and the provider's published limits, as data.

A preset's limits are *starting ceilings*: the pacer never goes above them and still learns the
real limits below them. Every figure says where it comes from (:attr:`Preset.source`); where a
provider publishes no figure, the preset sets none and the source says so — the pacer learns it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from mailpacer.core.errors import ConfigError
from mailpacer.core.limits import Limits
from mailpacer.core.route import PASSWORD_ENV, Route, TlsMode

DAY = 86_400.0  #: the quota window of a "per day" figure (providers count a rolling 24 h)


@dataclass(frozen=True)
class Preset:
    """One provider's submission endpoint and its published limits."""

    name: str
    title: str
    host: str  #: may contain ``{region}`` (Amazon SES) or be ``{host}`` (a generic relay)
    port: int
    tls: TlsMode
    username_hint: str  #: what the username is, shown in errors and ``config presets``
    limits: Limits  #: published figures as starting ceilings; ``None`` fields are learned
    source: str  #: where each figure comes from, or that it is not published
    default_username: str | None = None  #: a fixed username (SendGrid: ``apikey``)
    credential_hint: str = "the mailbox password"
    notes: str = ""

    @property
    def needs_region(self) -> bool:
        """Whether :func:`preset_route` needs ``region=`` (Amazon SES)."""
        return "{region}" in self.host

    @property
    def needs_host(self) -> bool:
        """Whether :func:`preset_route` needs ``host=`` (a generic relay)."""
        return "{host}" in self.host

    def url(self, *, region: str | None = None, host: str | None = None) -> str:
        """The route URL without credentials, e.g. ``smtp+starttls://smtp.office365.com:587``."""
        return f"{self.tls.value}://{self.host_for(region=region, host=host)}:{self.port}"

    def endpoint(self, *, region: str | None = None, host: str | None = None) -> Route:
        """Host, port and TLS mode as a :class:`Route` without credentials."""
        return Route(host=self.host_for(region=region, host=host), port=self.port, tls=self.tls)

    def host_for(self, *, region: str | None = None, host: str | None = None) -> str:
        """The host name, with ``region`` (SES) or ``host`` (relay) filled in."""
        if self.needs_region:
            if not region:
                raise ConfigError(
                    f'provider {self.name!r} needs a region, e.g. region = "eu-west-1"',
                    key="region",
                )
            return self.host.format(region=region)
        if self.needs_host:
            if not host:
                raise ConfigError(
                    f"provider {self.name!r} needs the relay's address: "
                    'url = "smtp+starttls://user@relay.example.com:587"',
                    key="url",
                )
            return host
        return self.host

    def __repr__(self) -> str:
        return f"<Preset {self.name} {self.url(region='REGION', host='HOST')}>"


def _limits(
    *,
    connections: int | None = None,
    per_minute: float | None = None,
    per_connection: int | None = None,
    per_day: int | None = None,
) -> Limits:
    given: dict[str, Any] = {
        "connections": connections,
        "rate_per_minute": per_minute,
        "messages_per_connection": per_connection,
        "quota": per_day,
        "quota_window_seconds": DAY if per_day is not None else None,
    }
    return Limits(**{k: v for k, v in given.items() if v is not None})


_NOT_PUBLISHED = "no connection or rate figure is published; mailpacer learns them"

_PRESETS = (
    Preset(
        name="office365",
        title="Microsoft 365 / Exchange Online (SMTP AUTH client submission)",
        host="smtp.office365.com",
        port=587,
        tls=TlsMode.STARTTLS,
        username_hint="the mailbox address, e.g. hr@contoso.com",
        limits=_limits(connections=3, per_minute=30, per_day=10_000),
        source=(
            "Microsoft Learn, 'Exchange Online limits' (learn.microsoft.com/office365/"
            "servicedescriptions/exchange-online-service-description/exchange-online-limits): "
            "30 messages/minute for SMTP client submission, 10,000 recipients/day per mailbox; "
            "Exchange Team Blog, 'Changes coming to the SMTP Authenticated Submission client "
            "protocol' (2018-04-20): 3 concurrent connections per mailbox (432 4.3.2)"
        ),
        credential_hint="the mailbox password (SMTP AUTH must be enabled for the mailbox)",
    ),
    Preset(
        name="google-workspace",
        title="Google Workspace (Gmail for business)",
        host="smtp.gmail.com",
        port=587,
        tls=TlsMode.STARTTLS,
        username_hint="the Workspace address, e.g. hr@example.com",
        limits=_limits(per_day=2_000),
        source=(
            "Google Workspace Admin Help, 'Gmail sending limits in Google Workspace' "
            "(support.google.com/a/answer/166852): 2,000 messages/day (500 for trial accounts), "
            "10,000 total recipients/day, rolling 24 h; " + _NOT_PUBLISHED
        ),
        credential_hint="an app password (needs 2-Step Verification)",
        notes="port 465 (smtps) also works",
    ),
    Preset(
        name="gmail",
        title="Gmail (personal account)",
        host="smtp.gmail.com",
        port=587,
        tls=TlsMode.STARTTLS,
        username_hint="the Gmail address",
        limits=_limits(per_day=500),
        source=(
            "about 500 messages/day: the figure third-party guides give for personal accounts; "
            "Gmail Help (support.google.com/mail/answer/22839) lists what triggers a limit (e.g. "
            "one message to more than 500 recipients) but gives no daily number — unconfirmed; "
            + _NOT_PUBLISHED
        ),
        credential_hint="an app password (needs 2-Step Verification)",
        notes="port 465 (smtps) also works",
    ),
    Preset(
        name="exmail",
        title="Tencent Exmail (腾讯企业邮箱)",
        host="smtp.exmail.qq.com",
        port=465,
        tls=TlsMode.IMPLICIT,
        username_hint="the full mailbox address",
        limits=_limits(),
        source=(
            "Tencent Exmail help ('腾讯企业邮箱的发信量是多少?'): the daily quota is per domain, "
            "shared by all members, and adjusted with mail quality; per-IP minute/hour/day "
            "frequency limits are not published ('恕不公开'). No figure set; mailpacer learns them"
        ),
        credential_hint="the mailbox password or a client-specific password (客户端专用密码)",
    ),
    Preset(
        name="qq",
        title="QQ Mail (QQ邮箱)",
        host="smtp.qq.com",
        port=465,
        tls=TlsMode.IMPLICIT,
        username_hint="the QQ mail address",
        limits=_limits(),
        source="QQ Mail publishes no sending limits; none set, mailpacer learns them",
        credential_hint="the authorization code (授权码) from the QQ Mail settings",
    ),
    Preset(
        name="netease",
        title="NetEase 163 Mail (网易163邮箱)",
        host="smtp.163.com",
        port=465,
        tls=TlsMode.IMPLICIT,
        username_hint="the 163.com address",
        limits=_limits(),
        source="NetEase publishes no sending limits for 163.com; none set, mailpacer learns them",
        credential_hint="the authorization code (授权码) from the mailbox settings",
    ),
    Preset(
        name="netease-126",
        title="NetEase 126 Mail (网易126邮箱)",
        host="smtp.126.com",
        port=465,
        tls=TlsMode.IMPLICIT,
        username_hint="the 126.com address",
        limits=_limits(),
        source="NetEase publishes no sending limits for 126.com; none set, mailpacer learns them",
        credential_hint="the authorization code (授权码) from the mailbox settings",
    ),
    Preset(
        name="aliyun",
        title="Alibaba Cloud DirectMail (阿里云邮件推送)",
        host="smtpdm.aliyun.com",
        port=465,
        tls=TlsMode.IMPLICIT,
        username_hint="the sender address created in the DirectMail console",
        limits=_limits(per_day=2_000),
        source=(
            "Alibaba Cloud DirectMail 'Limits' (help.aliyun.com/zh/direct-mail/product-overview/"
            "limits): initial daily quota 2,000 per account, adjusted weekly with reputation; "
            "100 recipients per SMTP call; " + _NOT_PUBLISHED
        ),
        credential_hint="the SMTP password set in the DirectMail console",
    ),
    Preset(
        name="aliyun-qiye",
        title="Alibaba Mail for business (阿里企业邮箱)",
        host="smtp.qiye.aliyun.com",
        port=465,
        tls=TlsMode.IMPLICIT,
        username_hint="the full mailbox address",
        limits=_limits(),
        source=(
            "per-minute/hour/day limits exist but no official figure was found (third-party "
            "pages cite 500/day for the free edition, unconfirmed); none set"
        ),
    ),
    Preset(
        name="ses",
        title="Amazon SES (SMTP interface)",
        host="email-smtp.{region}.amazonaws.com",
        port=587,
        tls=TlsMode.STARTTLS,
        username_hint="the SMTP user name from the SES console (not an access key id)",
        limits=_limits(),
        source=(
            "AWS 'Service quotas in Amazon SES' (docs.aws.amazon.com/ses/latest/dg/quotas.html): "
            "rate and daily quota are per account and region — sandbox 1 message/s and 200 per "
            "24 h, production 'varies based on your use case'. Set max_rate to your account's "
            "maximum send rate (SES console, or GetSendQuota MaxSendRate)"
        ),
        credential_hint="the SMTP password generated by the SES console",
    ),
    Preset(
        name="sendgrid",
        title="Twilio SendGrid (SMTP relay)",
        host="smtp.sendgrid.net",
        port=587,
        tls=TlsMode.STARTTLS,
        username_hint='the literal string "apikey"',
        limits=_limits(per_connection=5_000),
        source=(
            "Twilio SendGrid docs, 'Integrating with the SMTP API': up to 5,000 messages per "
            "SMTP connection and 10,000 concurrent connections per server; the daily volume "
            "depends on the plan (not set)"
        ),
        default_username="apikey",
        credential_hint="an API key with Mail Send permission",
    ),
    Preset(
        name="relay",
        title="Any SMTP relay (give its URL)",
        host="{host}",
        port=587,
        tls=TlsMode.STARTTLS,
        username_hint="whatever the relay expects (omit for an unauthenticated relay)",
        limits=_limits(),
        source="a generic relay: no published figures; set ceilings in the route if you know them",
    ),
)

PRESETS: dict[str, Preset] = {p.name: p for p in _PRESETS}
ALIASES: dict[str, str] = {
    "microsoft365": "office365",
    "m365": "office365",
    "exchange-online": "office365",
    "workspace": "google-workspace",
    "gworkspace": "google-workspace",
    "tencent-exmail": "exmail",
    "163": "netease",
    "126": "netease-126",
    "directmail": "aliyun",
    "amazon-ses": "ses",
}


def get_preset(name: str) -> Preset:
    """The preset called ``name`` (or an alias); unknown names raise :class:`ConfigError`."""
    key = name.strip().lower()
    preset = PRESETS.get(ALIASES.get(key, key))
    if preset is None:
        raise ConfigError(f"unknown provider {name!r}; known: {', '.join(PRESETS)}", key="provider")
    return preset


def preset_route(
    name: str,
    *,
    username: str | None,
    password: str | None,
    region: str | None = None,
    host: str | None = None,
    verify_tls: bool = True,
    cafile: str | None = None,
) -> tuple[Route, Limits]:
    """A :class:`Route` for the provider and its published limits as starting ceilings.

    ``username`` defaults to the preset's fixed one (SendGrid); a missing password raises
    :class:`ConfigError` naming the environment variable to set. ``host`` is only for ``relay``.
    """
    preset = get_preset(name)
    route = dataclasses.replace(
        preset.endpoint(region=region, host=host), verify_tls=verify_tls, cafile=cafile
    )
    user = username or preset.default_username
    if user is None and preset.needs_host:  # an unauthenticated relay
        return route, preset.limits
    if not user:
        raise ConfigError(
            f"provider {preset.name!r} needs a username: {preset.username_hint}", key="username"
        )
    if not password:
        raise ConfigError(
            f"provider {preset.name!r} needs a password ({preset.credential_hint}): "
            f"set {PASSWORD_ENV}",
            key=PASSWORD_ENV,
        )
    return dataclasses.replace(route, username=user, password=password), preset.limits
