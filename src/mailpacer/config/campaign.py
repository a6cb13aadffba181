"""One campaign's settings: built once at the edge, stored with the campaign, read back by
``resume`` and ``retry`` so they behave exactly like the ``send`` that started it.

Everything the delivery core needs is here — where the recipients and the template are, the
route (or a group of routes: :attr:`CampaignSettings.routes`, each with its own ceilings), the
sender, ceilings, the user's reply rules, the retry policy, the uncertain policy,
``skip_invalid`` — and nothing of the process (database, terminal). Passwords are never stored:
:meth:`CampaignSettings.to_stored` keeps the route's URL and, if the route named one, the
environment variable or secrets file its password comes from.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mailpacer.config.sender import envelope_address
from mailpacer.core.classify import Rule
from mailpacer.core.errors import ConfigError, UsageError
from mailpacer.core.limits import Limits
from mailpacer.core.retry import RetryPolicy
from mailpacer.core.route import PASSWORD_ENV, PASSWORD_FILE_ENV, Route, parse_route

__all__ = ["CampaignSettings", "RouteEntry", "rule_to_mapping", "stored_route_keys"]

_STORED_VERSION = 2


@dataclass(frozen=True)
class RouteEntry:
    """One route of a campaign's group: where to send, its own ceilings, and where its password
    comes from (never the password itself in what is stored)."""

    route: Route
    ceilings: Limits | None = None  #: this route's hard limits
    password_env: str | None = None
    password_file: str | None = None

    def to_stored(self) -> dict[str, Any]:
        """A JSON-able dict; never the password."""
        route = self.route
        return {
            "smtp": route.url,
            "verify_tls": route.verify_tls,
            "cafile": route.cafile,
            "timeout": route.timeout,
            "password_env": self.password_env,
            "password_file": self.password_file,
            "ceilings": self.ceilings.to_dict() if self.ceilings else None,
        }

    @classmethod
    def from_stored(cls, stored: Mapping[str, Any], env: Mapping[str, str]) -> RouteEntry:
        """The entry :meth:`to_stored` wrote, its password read again from where it came from."""
        route = parse_route(str(stored["smtp"]), environ={})
        route = dataclasses.replace(
            route,
            verify_tls=bool(stored.get("verify_tls", True)),
            cafile=stored.get("cafile"),
            timeout=float(stored.get("timeout") or route.timeout),
        )
        password_env = stored.get("password_env")
        password_file = stored.get("password_file")
        if route.username:
            password = _password(env, password_env, password_file)
            route = dataclasses.replace(route, password=password)
        ceilings = stored.get("ceilings")
        return cls(
            route,
            ceilings=Limits.from_dict(ceilings) if ceilings else None,
            password_env=password_env,
            password_file=password_file,
        )


@dataclass(frozen=True)
class CampaignSettings:
    """What one campaign is and how it is sent; frozen, stored with the campaign."""

    recipients: Path
    template: Path
    route: Route
    sender: str  #: the From header ("HR <hr@example.com>"); MAIL FROM is its bare address
    ceilings: Limits | None = None  #: configured hard limits, never exceeded
    rules: tuple[Rule, ...] = ()  #: the user's reply rules (the defaults are added when used)
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    resend_uncertain: bool = True  #: resend (same Message-ID) or hold uncertain messages
    skip_invalid: bool = False  #: send the valid rows, list the rest
    check_dns: bool = False
    name: str | None = None
    priority: int = 0  #: higher first when campaigns share a route
    password_env: str | None = None  #: where the route's password comes from, if not the default
    password_file: str | None = None
    encoding: str | None = None  #: how the recipients list is read (None: UTF-8, BOM or not)
    delimiter: str | None = None  #: None: sniffed from the header line
    unsubscribe_url: str | None = None  #: one-click unsubscribe base URL (else the template's)
    #: the other routes of a group: the campaign is spread over ``route`` and these, each route
    #: given messages at the pace it takes them (with its own ceilings and learned limits)
    more_routes: tuple[RouteEntry, ...] = ()

    def __post_init__(self) -> None:
        seen: set[str] = set()
        for entry in self.routes:
            if entry.route.key in seen:
                raise UsageError(
                    f"route {entry.route.key} is given twice in one group; each route of a"
                    " group must be a different server or account"
                )
            seen.add(entry.route.key)

    @property
    def routes(self) -> tuple[RouteEntry, ...]:
        """Every route the campaign sends through, the first (``route``) first."""
        first = RouteEntry(self.route, self.ceilings, self.password_env, self.password_file)
        return (first, *self.more_routes)

    @property
    def route_keys(self) -> tuple[str, ...]:
        """The keys of :attr:`routes`, in order."""
        return tuple(entry.route.key for entry in self.routes)

    def campaign_key(self) -> str:
        """Same recipients, template and sender → the same campaign: a re-run continues it,
        through whatever route it names now."""
        parts = [
            str(self.recipients.resolve()),
            str(self.template.resolve()),
            envelope_address(self.sender),
        ]
        return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:16]

    def legacy_key(self) -> str:
        """The key campaigns made before 0.2 have: the route was part of it."""
        parts = [
            str(self.recipients.resolve()),
            str(self.template.resolve()),
            envelope_address(self.sender),
            self.route.key,
        ]
        return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:16]

    def to_stored(self) -> dict[str, Any]:
        """A JSON-able dict for the store; never the password. A group keeps its first route
        where a single route has always been (``smtp`` …) and the others in ``more_routes``
        (only when there are any: a one-route campaign is stored as before)."""
        stored: dict[str, Any] = {
            "version": _STORED_VERSION,
            "recipients": str(self.recipients.resolve()),
            "template": str(self.template.resolve()),
            "sender": self.sender,
            **self.routes[0].to_stored(),
            "rules": [rule_to_mapping(r) for r in self.rules],
            "retry": dataclasses.asdict(self.retry),
            "resend_uncertain": self.resend_uncertain,
            "skip_invalid": self.skip_invalid,
            "check_dns": self.check_dns,
            "priority": self.priority,
            "encoding": self.encoding,
            "delimiter": self.delimiter,
            "unsubscribe_url": self.unsubscribe_url,
        }
        if self.more_routes:
            stored["more_routes"] = [entry.to_stored() for entry in self.more_routes]
        return stored

    @classmethod
    def from_stored(
        cls,
        stored: Mapping[str, Any],
        *,
        name: str | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> CampaignSettings:
        """Rebuild the settings a campaign was started with; the password is read again from
        where it came from (the route's variable or file, else ``MAILPACER_SMTP_PASSWORD``)."""
        env = os.environ if environ is None else environ
        try:
            first = RouteEntry.from_stored(stored, env)
            more = tuple(RouteEntry.from_stored(r, env) for r in stored.get("more_routes") or ())
            retry = stored.get("retry")
            return cls(
                recipients=Path(str(stored["recipients"])),
                template=Path(str(stored["template"])),
                route=first.route,
                sender=str(stored["sender"]),
                ceilings=first.ceilings,
                rules=tuple(Rule.from_mapping(r) for r in stored.get("rules") or ()),
                retry=RetryPolicy(**retry) if retry else RetryPolicy(),
                resend_uncertain=bool(stored.get("resend_uncertain", True)),
                skip_invalid=bool(stored.get("skip_invalid", False)),
                check_dns=bool(stored.get("check_dns", False)),
                name=name,
                priority=int(stored.get("priority") or 0),
                password_env=first.password_env,
                password_file=first.password_file,
                encoding=stored.get("encoding"),
                delimiter=stored.get("delimiter"),
                unsubscribe_url=stored.get("unsubscribe_url"),
                more_routes=more,
            )
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, ConfigError):
                raise
            raise ConfigError(f"the campaign's stored settings cannot be read: {exc!r}") from None

    def with_route(self, route: Route) -> CampaignSettings:
        """The same campaign through another route (``resume --smtp``): that one alone."""
        return dataclasses.replace(
            self, route=route, password_env=None, password_file=None, more_routes=()
        )


def stored_route_keys(stored: Mapping[str, Any]) -> tuple[str, ...]:
    """The keys of the routes stored settings send through (none when they cannot be read)."""
    try:
        urls = [stored["smtp"], *(r["smtp"] for r in stored.get("more_routes") or ())]
        return tuple(parse_route(str(url), environ={}).key for url in urls)
    except (KeyError, TypeError, ValueError):
        return ()


def _password(
    env: Mapping[str, str], password_env: str | None, password_file: str | None
) -> str | None:
    if password_env:
        return env.get(password_env) or None
    secret = password_file or (None if env.get(PASSWORD_ENV) else env.get(PASSWORD_FILE_ENV))
    if secret:
        try:
            return Path(secret).read_text(encoding="utf-8").strip() or None
        except OSError as exc:
            raise ConfigError(f"cannot read password file {secret}: {exc.strerror}") from None
    return env.get(PASSWORD_ENV) or None


def rule_to_mapping(rule: Rule) -> dict[str, Any]:
    """A rule as the config mapping :meth:`Rule.from_mapping` reads back to an equal rule."""
    data: dict[str, Any] = {"name": rule.name, "verdict": rule.verdict.value}
    codes: list[int | str] = sorted(rule.codes)
    codes += [f"{c}xx" for c in sorted(rule.classes)]
    if codes:
        data["codes"] = codes
    if rule.enhanced:
        data["enhanced"] = list(rule.enhanced)
    if rule.text is not None:
        data["text"] = rule.text
    if rule.phases:
        data["phases"] = sorted(p.value for p in rule.phases)
    if rule.min_messages:
        data["min_messages"] = rule.min_messages
    if rule.no_reply is not None:
        data["reply"] = "none" if rule.no_reply else "some"
    return data
