"""The campaigns list (``/``) and a campaign's page (``/campaigns/{id}``), each with a ``.json``
twin: live progress, the chart's history, learned limits, failures by reason, uncertain
messages, the recipients with a preview of each one's message."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse

from mailpacer.core.errors import NotFound
from mailpacer.core.states import MessageState
from mailpacer.service.campaigns import campaign_out
from mailpacer.service.models import CampaignId
from mailpacer.service.pages.failures import group_failures
from mailpacer.service.pages.history import History
from mailpacer.service.pages.render import json_page, page, require_login
from mailpacer.service.routes import list_routes
from mailpacer.service.runtime import service_of
from mailpacer.store import MessageRecord

__all__ = ["campaign_data", "router"]

M = MessageState
router = APIRouter(dependencies=[Depends(require_login)], include_in_schema=False)
#: recipients per page of the campaign page's table
PAGE = 50
#: failed messages read to group (the counts say how many there are in all)
FAILURES_READ = 1000
UNCERTAIN_READ = 200
Offset = Annotated[int, Query(ge=0, le=100_000_000)]


def message_dict(m: MessageRecord) -> dict[str, Any]:
    """A message as the page shows it."""
    return {
        "row": m.row,
        "email": m.email,
        "name": str(m.variables.get("name", "")) if m.variables else "",
        "state": m.state.value,
        "attempts": m.attempts,
        "last_verdict": m.last_verdict,
        "last_code": m.last_code,
        "last_text": m.last_text,
        "ever_uncertain": m.ever_uncertain,
        "updated_at": m.updated_at,
    }


async def list_data(request: Request) -> dict[str, Any]:
    """The list page's data: every campaign, newest first, and the routes."""
    service = service_of(request)
    records = await service.db.list_campaigns()
    campaigns = [(await campaign_out(service, r)).model_dump() for r in reversed(records)]
    routes = [r.model_dump() for r in await list_routes(request)]
    return {"campaigns": campaigns, "routes": routes}


async def campaign_data(request: Request, campaign_id: int, offset: int = 0) -> dict[str, Any]:
    """The campaign page's data."""
    service = service_of(request)
    history: History = request.app.state.history
    record = await service.db.get_campaign(campaign_id)
    campaign = (await campaign_out(service, record)).model_dump()
    failed = await service.db.messages(campaign_id, state=M.FAILED, limit=FAILURES_READ)
    uncertain = await service.db.messages(campaign_id, state=M.UNCERTAIN, limit=UNCERTAIN_READ)
    listed = await service.db.messages(campaign_id, limit=PAGE + 1, offset=offset)
    trace = history.trace(campaign_id)
    return {
        "campaign": campaign,
        "history": trace.to_dict() if trace else {"samples": [], "marks": []},
        "failures": [g.to_dict() for g in group_failures(failed)],
        "uncertain": [message_dict(m) for m in uncertain],
        "messages": {
            "items": [message_dict(m) for m in listed[:PAGE]],
            "offset": offset,
            "limit": PAGE,
            "next_offset": offset + PAGE if len(listed) > PAGE else None,
        },
    }


@router.get("/", response_class=HTMLResponse)
async def list_page(request: Request) -> HTMLResponse:
    """Every campaign: state, progress, rate, ETA — kept live by the page's script."""
    return page(request, "campaigns.html", **await list_data(request))


@router.get("/campaigns.json")
async def list_json(request: Request) -> JSONResponse:
    """The list page as JSON."""
    return json_page(await list_data(request))


@router.get("/campaigns/{campaign_id}.json")
async def campaign_json(
    request: Request, campaign_id: CampaignId, offset: Offset = 0
) -> JSONResponse:
    """The campaign page as JSON (what its script redraws from)."""
    return json_page(await campaign_data(request, campaign_id, offset))


@router.get("/campaigns/{campaign_id}", response_class=HTMLResponse)
async def campaign_page(
    request: Request, campaign_id: CampaignId, offset: Offset = 0
) -> HTMLResponse:
    """One campaign, live."""
    try:
        data = await campaign_data(request, campaign_id, offset)
    except NotFound as exc:
        return page(request, "missing.html", status=404, message=str(exc))
    return page(request, "campaign.html", data=data, **data)
