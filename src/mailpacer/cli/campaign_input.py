"""Checking and storing a campaign's recipients as the CLI reads them: with the list's format
(``--encoding``, ``--delimiter``; XLSX and JSON Lines by extension) and the suppression list.

This mirrors :func:`mailpacer.delivery.runner.check` / :func:`~mailpacer.delivery.runner.prepare`,
which read UTF-8 lists only and know no suppression list; when the campaign settings carry the
format, these move there.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from mailpacer.compose import CampaignCheck, Composer, iter_recipients, load_template
from mailpacer.compose.tables import TableFormat
from mailpacer.compose.template import Template
from mailpacer.compose.unsubscribe import OneClick, check_base_url, secret_from_env
from mailpacer.compose.validate import validate_campaign
from mailpacer.delivery.runner import SendSettings, envelope_address
from mailpacer.store import CampaignRecord, NewMessage, Store

#: the key of a campaign's stored options that keeps how its list is read (for resume / retry)
FORMAT_KEY = "recipients_format"
#: the key of the stored options that keeps the one-click unsubscribe base URL
UNSUBSCRIBE_KEY = "unsubscribe_url"
#: recipients looked up in the suppression list per query
SUPPRESSION_BATCH = 1000


@dataclass(frozen=True)
class Suppressed:
    """A recipient not stored (so never sent) because its address is on the suppression list."""

    row: int
    email: str
    reason: str


@dataclass
class Prepared:
    """A campaign ready for the engine."""

    campaign: CampaignRecord
    composer: Composer
    suppressed: list[Suppressed] = field(default_factory=list)


def format_options(fmt: TableFormat) -> dict[str, Any]:
    """The format as stored with the campaign (only what was given)."""
    given = {"encoding": fmt.encoding, "delimiter": fmt.delimiter}
    return {k: v for k, v in given.items() if v is not None}


def stored_format(options: dict[str, Any]) -> TableFormat:
    """The format a stored campaign's list was read with."""
    saved = options.get(FORMAT_KEY) or {}
    return TableFormat(encoding=saved.get("encoding"), delimiter=saved.get("delimiter"))


def check_input(settings: SendSettings, fmt: TableFormat) -> CampaignCheck:
    """Validate the whole campaign; raises :class:`InputError` listing every problem."""
    envelope_address(settings.sender)
    result = validate_campaign(
        settings.recipients,
        settings.template,
        sender=settings.sender,
        check_dns=settings.check_dns,
        skip_invalid=settings.skip_invalid,
        fmt=fmt,
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


def prepare_campaign(
    store: Store,
    settings: SendSettings,
    checked: CampaignCheck,
    fmt: TableFormat,
    one_click: OneClick | None = None,
) -> Prepared:
    """Create (or find) the campaign, store its messages but the suppressed ones, and build the
    composer."""
    key = settings.campaign_key()
    options = {**settings.stored_options(), FORMAT_KEY: format_options(fmt)}
    if one_click is not None:
        options[UNSUBSCRIBE_KEY] = one_click.base_url
    campaign, _ = store.get_or_create_campaign(
        key,
        name=settings.name or settings.recipients.stem,
        route_key=settings.route.key,
        options=options,
    )
    rows = iter_recipients(settings.recipients, skip_rows=checked.skip_rows, fmt=fmt)
    suppressed: list[Suppressed] = []
    store.add_messages(campaign.id, _not_suppressed(store, rows, suppressed))
    composer = Composer(
        load_template(settings.template),
        sender=settings.sender,
        campaign_key=key,
        base_dir=settings.recipients.resolve().parent,
        one_click=one_click,
    )
    return Prepared(campaign, composer, suppressed)


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
