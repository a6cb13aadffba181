"""Live progress as Server-Sent Events: ``/api/events`` (every campaign) and
``/api/campaigns/{id}/events``.

Each SSE message is ``event: <kind>`` (started, progress, outcome, limits, state, finished —
:class:`~mailpacer.core.events.EventKind`) with the event as JSON; a campaign's stream starts
with a ``snapshot`` (the campaign as ``GET /api/campaigns/{id}`` shows it). A comment line every
``KEEPALIVE`` seconds keeps proxies from closing an idle stream. ``follow=false`` sends the
snapshot and ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from mailpacer.core.events import Event
from mailpacer.service.broker import Listener
from mailpacer.service.campaigns import campaign_out
from mailpacer.service.errors import ERRORS
from mailpacer.service.models import CampaignId
from mailpacer.service.runtime import Service, service_of

__all__ = ["router", "sse"]

KEEPALIVE = 15.0
router = APIRouter(tags=["events"], responses=ERRORS)
_SSE = {"200": {"content": {"text/event-stream": {"schema": {"type": "string"}}}}}


def sse(kind: str, data: Any, number: int | None = None) -> str:
    """One SSE message (JSON on one line: no line break can end it early)."""
    head = f"id: {number}\n" if number is not None else ""
    return f"{head}event: {kind}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


def _event(event: Event) -> dict[str, Any]:
    return {"campaign": event.campaign_id, "at": event.at, **event.data}


async def _stream(
    service: Service, request: Request, listener: Listener, first: list[str], follow: bool
) -> AsyncIterator[str]:
    try:
        for chunk in first:
            yield chunk
        while follow and not service.closing.is_set():
            if await request.is_disconnected():
                return
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(KEEPALIVE):
                    await listener.ready.wait()
            items = listener.take()
            if not items:
                yield ": keep-alive\n\n"
            for number, event in items:
                yield sse(event.kind.value, _event(event), number)
    finally:
        service.broker.leave(listener)


def _response(body: AsyncIterator[str]) -> StreamingResponse:
    return StreamingResponse(
        body,
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


@router.get(
    "/api/campaigns/{campaign_id}/events",
    response_class=StreamingResponse,
    responses=_SSE,  # type: ignore[arg-type]
    summary="Live events of one campaign (SSE)",
)
async def campaign_events(
    request: Request, campaign_id: CampaignId, follow: bool = True
) -> StreamingResponse:
    """A ``snapshot`` of the campaign, then its events as they happen."""
    service = service_of(request)
    record = await service.db.get_campaign(campaign_id)
    listener = service.broker.listen(campaign_id)  # before the snapshot: nothing falls between
    snapshot = (await campaign_out(service, record)).model_dump()
    return _response(_stream(service, request, listener, [sse("snapshot", snapshot)], follow))


@router.get(
    "/api/events",
    response_class=StreamingResponse,
    responses=_SSE,  # type: ignore[arg-type]
    summary="Live events of every campaign (SSE)",
)
async def all_events(request: Request, follow: bool = True) -> StreamingResponse:
    """Every campaign's events as they happen."""
    service = service_of(request)
    listener = service.broker.listen(None)
    return _response(_stream(service, request, listener, [": connected\n\n"], follow))
