"""Running a campaign end to end: validate, store, compose, engine (the Python API of DESIGN §7).

The CLI and the Python API both go through :func:`check`, :func:`prepare` and :func:`run`;
nothing here prints. A campaign's :class:`~mailpacer.config.campaign.CampaignSettings` are stored
with it, so ``resume`` and ``retry`` (:func:`stored_settings`) send exactly as ``send`` did.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mailpacer.compose import (
    CampaignCheck,
    Composer,
    iter_recipients,
    load_template,
    validate_campaign,
)
from mailpacer.compose.tables import TableFormat
from mailpacer.compose.template import Template
from mailpacer.compose.unsubscribe import OneClick, check_base_url, secret_from_env
from mailpacer.config.campaign import CampaignSettings, RouteEntry, stored_route_keys
from mailpacer.config.file import parse_rate
from mailpacer.config.sender import envelope_address
from mailpacer.core.errors import NotFound, UsageError
from mailpacer.core.events import Observer
from mailpacer.core.limits import Limits
from mailpacer.core.route import parse_route
from mailpacer.delivery.engine import Engine
from mailpacer.delivery.report import Report
from mailpacer.delivery.scheduler import Timing
from mailpacer.pacing.pacer import PacerConfig
from mailpacer.store import CampaignRecord, NewMessage, Store, open_store

DB_ENV = "MAILPACER_DB"
#: recipients looked up in the suppression list per query
SUPPRESSION_BATCH = 1000


def default_db() -> str:
    """``$MAILPACER_DB``, else ``$XDG_DATA_HOME/mailpacer/mailpacer.db``."""
    if os.environ.get(DB_ENV):
        return os.environ[DB_ENV]
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return str(Path(base) / "mailpacer" / "mailpacer.db")


@dataclass
class Prepared:
    """A campaign stored and ready for the engine."""

    campaign: CampaignRecord
    composer: Composer
    suppressed: list[Suppressed] = field(default_factory=list)
    #: the route (``a + b`` for a group) the campaign was sending through until now, if other
    previous_route: str | None = None


@dataclass(frozen=True)
class Suppressed:
    """A recipient not stored (so never sent): its address is on the suppression list."""

    row: int
    email: str
    reason: str


def table_format(settings: CampaignSettings) -> TableFormat:
    """How the campaign's recipients list is read."""
    return TableFormat(encoding=settings.encoding, delimiter=settings.delimiter)


def check(settings: CampaignSettings) -> CampaignCheck:
    """Validate the whole campaign; raises :class:`InputError` listing every problem."""
    envelope_address(settings.sender)
    result = validate_campaign(
        settings.recipients,
        settings.template,
        sender=settings.sender,
        check_dns=settings.check_dns,
        skip_invalid=settings.skip_invalid,
        fmt=table_format(settings),
    )
    result.raise_for_problems()
    return result


def one_click_for(
    url: str | None, template: Template | None, env: Mapping[str, str]
) -> OneClick | None:
    """The campaign's one-click unsubscribe link maker: ``url`` (``--unsubscribe-url``, or as
    stored), else the template's ``unsubscribe_url``; None when neither is given."""
    source = "--unsubscribe-url"
    if url is None and template is not None and template.unsubscribe_url:
        url, source = template.unsubscribe_url, f"{template.directory}/template.toml"
    if url is None:
        return None
    return OneClick(check_base_url(url, source=source), secret_from_env(env))


def prepare(
    store: Store,
    settings: CampaignSettings,
    checked: CampaignCheck,
    *,
    environ: Mapping[str, str] | None = None,
) -> Prepared:
    """Create (or find) the campaign, store its messages but the suppressed ones, and build the
    composer."""
    template = load_template(settings.template)
    one_click = one_click_for(
        settings.unsubscribe_url, template, os.environ if environ is None else environ
    )
    campaign, previous_route = _campaign_for(store, settings)
    rows = iter_recipients(
        settings.recipients, skip_rows=checked.skip_rows, fmt=table_format(settings)
    )
    suppressed: list[Suppressed] = []
    store.add_messages(campaign.id, _not_suppressed(store, rows, suppressed))
    composer = Composer(
        template,
        sender=settings.sender,
        campaign_key=campaign.key,  # Message-IDs follow the campaign's key: resends match
        base_dir=settings.recipients.resolve().parent,
        one_click=one_click,
    )
    return Prepared(campaign, composer, suppressed, previous_route)


def _campaign_for(store: Store, settings: CampaignSettings) -> tuple[CampaignRecord, str | None]:
    """The campaign these settings continue (found by its key, or by the key campaigns made
    before 0.2 had), its stored settings brought up to date; or a new one. Also the route (the
    routes of a group) it was sending through, when that changes. The stored ``route_key`` is
    the first route's."""
    options = settings.to_stored()
    route_key = settings.route.key
    try:
        found = store.get_campaign(settings.legacy_key())
    except NotFound:
        name = settings.name or settings.recipients.stem
        found, created = store.get_or_create_campaign(
            settings.campaign_key(), name=name, route_key=route_key, options=options
        )
        if created:
            return found, None
    before = stored_route_keys(found.options) or (found.route_key,)
    previous = " + ".join(before) if before != settings.route_keys else None
    if previous is not None or found.options != options:
        found = store.update_campaign(found.id, route_key=route_key, options=options)
    return found, previous


def _not_suppressed(
    store: Store, rows: Iterator[Any], suppressed: list[Suppressed]
) -> Iterator[NewMessage]:
    """The rows as messages, minus those on the suppression list (collected in ``suppressed``),
    looked up in batches."""
    while True:
        batch = [r for _, r in zip(range(SUPPRESSION_BATCH), rows, strict=False)]
        if not batch:
            return
        found = store.suppressed_among([r.email for r in batch])
        for r in batch:
            entry = found.get(r.email.strip().lower())
            if entry is not None:
                suppressed.append(Suppressed(r.row, r.email, entry.reason))
            else:
                yield NewMessage(r.row, r.email, r.variables)


def stored_settings(campaign: CampaignRecord) -> CampaignSettings:
    """The settings a stored campaign was started with (the password read again)."""
    return CampaignSettings.from_stored(campaign.options, name=campaign.name)


async def run(
    store: Store,
    campaign: CampaignRecord,
    settings: CampaignSettings,
    render: Callable[[Mapping[str, str]], bytes],
    *,
    observers: Iterable[Observer] = (),
    timing: Timing | None = None,
    pacer: PacerConfig | None = None,
) -> Report:
    """Send one prepared campaign on its own engine in this event loop; return its report."""
    engine = Engine(store, observers=observers, timing=timing, pacer=pacer)
    try:
        return await engine.run(campaign, settings, render)
    finally:
        await engine.close()


def send(
    recipients: str | Path,
    *,
    template: str | Path,
    smtp: str | Sequence[str],
    sender: str,
    db: str | None = None,
    max_connections: int | None = None,
    max_rate: str | None = None,
    verify_tls: bool = True,
    observers: Iterable[Observer] = (),
) -> Report:
    """Send a campaign and wait for it (the Python twin of ``mailpacer send``). Several
    ``smtp`` URLs spread the campaign over them (a group: each route gets what it can take;
    ``max_connections`` and ``max_rate`` then bind each route)."""
    urls = [smtp] if isinstance(smtp, str) else list(smtp)
    if not urls:
        raise UsageError("smtp: give at least one route URL")
    ceilings = None
    if max_connections is not None or max_rate is not None:
        try:
            rate = parse_rate(max_rate) if max_rate else None
        except ValueError as exc:
            raise UsageError(f"max_rate {max_rate!r}: {exc}") from None
        ceilings = Limits(connections=max_connections, rate_per_minute=rate)
    routes = [parse_route(url, verify_tls=verify_tls) for url in urls]
    settings = CampaignSettings(
        recipients=Path(recipients),
        template=Path(template),
        route=routes[0],
        sender=sender,
        ceilings=ceilings,
        more_routes=tuple(RouteEntry(route, ceilings) for route in routes[1:]),
    )
    checked = check(settings)
    store = open_store(db or default_db())
    try:
        prepared = prepare(store, settings, checked)
        campaign, render = prepared.campaign, prepared.composer.render
        return asyncio.run(run(store, campaign, settings, render, observers=observers))
    finally:
        store.close()
