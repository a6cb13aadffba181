"""Checking and storing a campaign's recipients as the CLI reads them: with the list's format
(``--encoding``, ``--delimiter``; XLSX and JSON Lines by extension) and the suppression list.

This mirrors :func:`mailpacer.delivery.runner.check` / :func:`~mailpacer.delivery.runner.prepare`,
which read UTF-8 lists only and know no suppression list; when the campaign settings carry the
format, these move there.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from mailpacer.compose import CampaignCheck, Composer, iter_recipients, load_template
from mailpacer.compose.tables import TableFormat
from mailpacer.compose.validate import validate_campaign
from mailpacer.delivery.runner import SendSettings, envelope_address
from mailpacer.store import CampaignRecord, NewMessage, Store

#: the key of a campaign's stored options that keeps how its list is read (for resume / retry)
FORMAT_KEY = "recipients_format"
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


def prepare_campaign(
    store: Store,
    settings: SendSettings,
    checked: CampaignCheck,
    fmt: TableFormat,
) -> Prepared:
    """Create (or find) the campaign, store its messages but the suppressed ones, and build the
    composer."""
    key = settings.campaign_key()
    options = {**settings.stored_options(), FORMAT_KEY: format_options(fmt)}
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
