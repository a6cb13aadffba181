"""Running a campaign end to end: validate, store, compose, engine (the Python API of DESIGN §7).

The CLI and the Python API both go through :func:`prepare` and :func:`run`; nothing here prints.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from email.utils import parseaddr
from pathlib import Path
from typing import Any

from email_validator import EmailNotValidError, validate_email

from mailpacer.compose import (
    CampaignCheck,
    Composer,
    iter_recipients,
    load_template,
    validate_campaign,
)
from mailpacer.config.file import parse_rate
from mailpacer.core.errors import UsageError
from mailpacer.core.events import Observer
from mailpacer.core.retry import RetryPolicy
from mailpacer.core.route import Route, parse_route
from mailpacer.delivery.engine import Engine, EngineOptions
from mailpacer.delivery.report import Report
from mailpacer.pacing.pacer import Limits
from mailpacer.store import CampaignRecord, NewMessage, Store, open_store

DB_ENV = "MAILPACER_DB"


def default_db() -> str:
    """``$MAILPACER_DB``, else ``$XDG_DATA_HOME/mailpacer/mailpacer.db``."""
    if os.environ.get(DB_ENV):
        return os.environ[DB_ENV]
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return str(Path(base) / "mailpacer" / "mailpacer.db")


_MAILBOX = re.compile(r"\s*(?:(?P<name>[^<>]*?)\s*<(?P<angle>[^<>]*)>|(?P<bare>[^<>\s]+))\s*")


def envelope_address(sender: str, *, source: str = "--from") -> str:
    """The bare address of ``"Name <addr@host>"`` (MAIL FROM), or a :class:`UsageError` that
    names ``source`` (the flag, variable or file line the sender came from)."""
    if any(c in sender for c in "\r\n"):
        raise UsageError(f"{source} {sender!r}: line breaks are not allowed in a header")
    example = "expected one address such as 'Team <team@example.com>'"
    match = _MAILBOX.fullmatch(sender)
    if match is None:
        raise UsageError(f"{source} {sender!r}: {example}")
    address = match["angle"] if match["angle"] is not None else match["bare"]
    if parseaddr(sender)[1] != address:  # the composer would read another address (or none)
        raise UsageError(f"{source} {sender!r}: {example}")
    try:
        validate_email(address, check_deliverability=False, allow_smtputf8=False, strict=True)
    except EmailNotValidError as exc:
        raise UsageError(f"{source} {sender!r}: {exc}") from None
    return address


@dataclass(frozen=True)
class SendSettings:
    """Everything one ``send`` needs, built once at the edge (flags, env, file)."""

    recipients: Path
    template: Path
    route: Route
    sender: str
    db: str = field(default_factory=default_db)
    ceilings: Limits | None = None
    skip_invalid: bool = False
    check_dns: bool = False
    resend_uncertain: bool = True
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    name: str | None = None

    def campaign_key(self) -> str:
        """Same recipients, template, sender and route → the same campaign (re-runs continue)."""
        parts = [
            str(self.recipients.resolve()),
            str(self.template.resolve()),
            envelope_address(self.sender),
            self.route.key,
        ]
        return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:16]

    def stored_options(self) -> dict[str, Any]:
        """What ``resume``/``retry`` need later; never the password."""
        return {
            "recipients": str(self.recipients.resolve()),
            "template": str(self.template.resolve()),
            "sender": self.sender,
            "smtp": self.route.url,
            "verify_tls": self.route.verify_tls,
            "cafile": self.route.cafile,
            "ceilings": self.ceilings.to_dict() if self.ceilings else None,
            "resend_uncertain": self.resend_uncertain,
        }


def settings_from_campaign(campaign: CampaignRecord, db: str) -> SendSettings:
    """Rebuild the settings of a stored campaign (password from the environment again)."""
    opts = campaign.options
    route = parse_route(
        str(opts["smtp"]), verify_tls=bool(opts.get("verify_tls", True)), cafile=opts.get("cafile")
    )
    ceilings = opts.get("ceilings")
    return SendSettings(
        recipients=Path(str(opts["recipients"])),
        template=Path(str(opts["template"])),
        route=route,
        sender=str(opts["sender"]),
        db=db,
        ceilings=Limits.from_dict(ceilings) if ceilings else None,
        resend_uncertain=bool(opts.get("resend_uncertain", True)),
        name=campaign.name,
    )


def check(settings: SendSettings) -> CampaignCheck:
    """Validate the whole campaign; raises :class:`InputError` listing every problem."""
    envelope_address(settings.sender)
    result = validate_campaign(
        settings.recipients,
        settings.template,
        sender=settings.sender,
        check_dns=settings.check_dns,
        skip_invalid=settings.skip_invalid,
    )
    result.raise_for_problems()
    return result


def prepare(
    store: Store, settings: SendSettings, checked: CampaignCheck
) -> tuple[CampaignRecord, Composer]:
    """Create (or find) the campaign, store its messages, and build the composer."""
    key = settings.campaign_key()
    campaign, _ = store.get_or_create_campaign(
        key,
        name=settings.name or settings.recipients.stem,
        route_key=settings.route.key,
        options=settings.stored_options(),
    )
    rows = iter_recipients(settings.recipients, skip_rows=checked.skip_rows)
    store.add_messages(campaign.id, (NewMessage(r.row, r.email, r.variables) for r in rows))
    composer = Composer(
        load_template(settings.template),
        sender=settings.sender,
        campaign_key=key,
        base_dir=settings.recipients.resolve().parent,
    )
    return campaign, composer


def engine_for(
    store: Store,
    campaign: CampaignRecord,
    composer: Composer,
    settings: SendSettings,
    observers: Iterable[Observer] = (),
    **overrides: Any,
) -> Engine:
    """An engine for the campaign; ``overrides`` set :class:`EngineOptions` fields (tests)."""
    options = EngineOptions(
        sender=envelope_address(settings.sender),
        resend_uncertain=settings.resend_uncertain,
        retry=settings.retry,
        ceilings=settings.ceilings,
        **overrides,
    )
    return Engine(store, campaign, settings.route, composer.render, options, observers=observers)


def send(
    recipients: str | Path,
    *,
    template: str | Path,
    smtp: str,
    sender: str,
    db: str | None = None,
    max_connections: int | None = None,
    max_rate: str | None = None,
    verify_tls: bool = True,
    observers: Iterable[Observer] = (),
) -> Report:
    """Send a campaign and wait for it (the Python twin of ``mailpacer send``)."""
    ceilings = None
    if max_connections is not None or max_rate is not None:
        try:
            rate = parse_rate(max_rate) if max_rate else None
        except ValueError as exc:
            raise UsageError(f"max_rate {max_rate!r}: {exc}") from None
        ceilings = Limits(connections=max_connections, rate_per_minute=rate)
    settings = SendSettings(
        recipients=Path(recipients),
        template=Path(template),
        route=parse_route(smtp, verify_tls=verify_tls),
        sender=sender,
        db=db or default_db(),
        ceilings=ceilings,
    )
    checked = check(settings)
    store = open_store(settings.db)
    try:
        campaign, composer = prepare(store, settings, checked)
        engine = engine_for(store, campaign, composer, settings, observers)
        return asyncio.run(engine.run())
    finally:
        store.close()
