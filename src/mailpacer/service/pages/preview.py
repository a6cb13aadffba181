"""A recipient's message as it is sent — rendered from the stored variables with the campaign's
own copy of the template, its HTML part with the QR codes inlined — for a sandboxed iframe."""

from __future__ import annotations

import asyncio
import email
import email.policy
from email.message import EmailMessage
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi import Path as PathParam
from fastapi.responses import HTMLResponse

from mailpacer.compose import load_template
from mailpacer.compose.composer import Composer
from mailpacer.compose.preview import browser_html
from mailpacer.core.errors import MailpacerError, NotFound
from mailpacer.delivery.runner import one_click_for, stored_settings
from mailpacer.service.models import CampaignId
from mailpacer.service.pages.render import require_login
from mailpacer.service.runtime import Service, service_of
from mailpacer.store import CampaignRecord, MessageRecord

__all__ = ["find_row", "render_row", "router"]

router = APIRouter(dependencies=[Depends(require_login)], include_in_schema=False)
Row = Annotated[int, PathParam(ge=1, le=2**31)]
#: the message is untrusted HTML: no script, no network, no forms, inline styles and data: images
PREVIEW_HEADERS = {
    "Content-Security-Policy": (
        "sandbox; default-src 'none'; img-src data:; style-src 'unsafe-inline'; "
        "font-src data:; frame-ancestors 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}
_SCAN = 1000


async def find_row(service: Service, campaign_id: int, row: int) -> MessageRecord:
    """The campaign's message of data row ``row``: looked for where it would be if no row had
    been skipped, then page by page (messages are listed in row order)."""
    guess = await service.db.messages(campaign_id, limit=1, offset=max(row - 1, 0))
    if guess and guess[0].row == row:
        return guess[0]
    offset = 0
    while True:
        found = await service.db.messages(campaign_id, limit=_SCAN, offset=offset)
        for m in found:
            if m.row == row:
                return m
            if m.row > row:
                found = []
                break
        if len(found) < _SCAN:
            raise NotFound(f"campaign {campaign_id} has no recipient on row {row}")
        offset += _SCAN


def render_row(record: CampaignRecord, message: MessageRecord, environ: dict[str, str]) -> str:
    """The message's HTML for a browser (its text part in ``<pre>`` when it has no HTML)."""
    settings = stored_settings(record)
    template = load_template(settings.template)
    composer = Composer(
        template,
        sender=settings.sender,
        campaign_key=record.key,
        base_dir=settings.recipients.resolve().parent,
        one_click=one_click_for(settings.unsubscribe_url, template, environ),
    )
    data = composer.render(message.variables)
    parsed = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    return browser_html(parsed)


@router.get("/campaigns/{campaign_id}/preview/{row}", response_class=HTMLResponse)
async def preview(request: Request, campaign_id: CampaignId, row: Row) -> HTMLResponse:
    """Row ``row``'s message, to be shown in ``<iframe sandbox>`` (and sandboxed by its own
    Content-Security-Policy when opened alone)."""
    service = service_of(request)
    try:
        record = await service.db.get_campaign(campaign_id)
        message = await find_row(service, campaign_id, row)
        env = dict(service.config.environ)
        html = await asyncio.to_thread(render_row, record, message, env)
    except MailpacerError as exc:
        text = str(exc).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
        html = f'<!DOCTYPE html><meta charset="utf-8"><p>Cannot show this message: {text}</p>'
        status = 404 if isinstance(exc, NotFound) else 422
        return HTMLResponse(html, status_code=status, headers=PREVIEW_HEADERS)
    return HTMLResponse(html, headers=PREVIEW_HEADERS)
