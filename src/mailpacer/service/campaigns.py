"""``/api/campaigns``: create (CSV upload or JSON recipients), list, get, pause, resume, cancel,
retry, and messages by state — the rules of :mod:`mailpacer.api`'s ``Campaign`` over HTTP."""

from __future__ import annotations

import csv
import hashlib
import time
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, BinaryIO

from fastapi import APIRouter, Header, Query, Request, Response
from pydantic import BaseModel, ValidationError
from starlette.datastructures import UploadFile

from mailpacer.core.errors import Problem
from mailpacer.core.limits import Limits
from mailpacer.core.states import CampaignState, MessageState, StateConflict
from mailpacer.service.creating import Request as CreateRequest
from mailpacer.service.creating import create_campaign
from mailpacer.service.errors import ERRORS, ApiError
from mailpacer.service.models import (
    CampaignCreate,
    CampaignId,
    CampaignOut,
    MessageOut,
    MessagePage,
    RetryIn,
)
from mailpacer.service.runtime import Service, service_of
from mailpacer.store import CampaignRecord

__all__ = ["campaign_out", "router"]

C = CampaignState
M = MessageState
FINISHED = (C.DONE, C.CANCELLED)
ACTIVE = (C.QUEUED, C.RUNNING, C.WAITING)
router = APIRouter(prefix="/api/campaigns", tags=["campaigns"], responses=ERRORS)

_FORM_FIELDS = {
    "template": {"type": "string"},
    "route": {"type": "string"},
    "sender": {"type": "string"},
    "name": {"type": "string"},
    "priority": {"type": "integer", "minimum": -100, "maximum": 100},
    "skip_invalid": {"type": "boolean"},
    "start": {"type": "boolean"},
    "recipients": {"type": "string", "format": "binary", "description": "the CSV list"},
}
_CREATE_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/CampaignCreate"}},
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["template", "route", "sender", "recipients"],
                    "properties": _FORM_FIELDS,
                }
            },
        },
    }
}


class RetryOut(BaseModel):
    """How many messages were queued again, and the campaign now."""

    queued: int
    campaign: CampaignOut


class MessageStateIn(StrEnum):
    """A message state to filter by."""

    queued = "queued"
    sending = "sending"
    sent = "sent"
    deferred = "deferred"
    failed = "failed"
    uncertain = "uncertain"
    cancelled = "cancelled"


# -- create ------------------------------------------------------------------------------


@router.post(
    "",
    status_code=201,
    response_model=CampaignOut,
    openapi_extra=_CREATE_BODY,
    summary="Create a campaign from a CSV upload (multipart) or JSON recipients",
)
async def create(
    request: Request,
    response: Response,
    idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
) -> CampaignOut:
    """Validated whole first: a 422 lists every problem with its file, row and column, and
    nothing is created. The same ``Idempotency-Key`` again returns the same campaign (200)."""
    service = service_of(request)
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind == "application/json":
        asked, write = await _from_json(request)
    elif kind == "multipart/form-data":
        asked, write = await _from_form(request)
    else:
        raise ApiError(415, "send application/json or multipart/form-data")
    record, created = await create_campaign(service, asked, write, idempotency_key)
    if not created:
        response.status_code = 200
    response.headers["Location"] = f"/api/campaigns/{record.id}"
    return await campaign_out(service, record)


def _invalid(exc: ValidationError) -> ApiError:
    problems = [
        Problem(str(e["msg"]), file=".".join(str(x) for x in e["loc"]) or None)
        for e in exc.errors()
    ]
    return ApiError(422, f"the request is not valid: {problems[0]}", problems)


async def _from_json(request: Request) -> tuple[CreateRequest, Callable[[Path], str]]:
    try:
        body = CampaignCreate.model_validate_json(await request.body())
    except ValidationError as exc:
        raise _invalid(exc) from None
    asked = CreateRequest(
        template=body.template,
        route=body.route,
        sender=body.sender,
        name=body.name or "campaign",
        priority=body.priority,
        skip_invalid=body.skip_invalid,
        start=body.start,
    )
    rows = body.recipients

    def write(path: Path) -> str:
        columns: dict[str, None] = {"email": None}
        for row in rows:
            columns.update(dict.fromkeys(row))
        with path.open("w", encoding="utf-8", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(columns), lineterminator="\r\n")
            writer.writeheader()
            writer.writerows(rows)
        return hashlib.sha256(path.read_bytes()).hexdigest()

    return asked, write


async def _from_form(request: Request) -> tuple[CreateRequest, Callable[[Path], str]]:
    form = await request.form(max_files=1, max_fields=20)
    upload = form.get("recipients")
    if not isinstance(upload, UploadFile):
        raise ApiError(
            422,
            "the form needs a file field 'recipients' (the CSV list)",
            [Problem("missing file", file="recipients")],
        )
    fields: dict[str, Any] = {k: v for k, v in form.items() if isinstance(v, str)}
    fields["recipients"] = []
    try:
        body = CampaignCreate.model_validate(fields)
    except ValidationError as exc:
        raise _invalid(exc) from None
    stem = Path(upload.filename or "recipients.csv").stem or "recipients"
    asked = CreateRequest(
        template=body.template,
        route=body.route,
        sender=body.sender,
        name=body.name or stem,
        priority=body.priority,
        skip_invalid=body.skip_invalid,
        start=body.start,
    )
    source: BinaryIO = upload.file

    def write(path: Path) -> str:
        digest = hashlib.sha256()
        source.seek(0)
        with path.open("wb") as sink:
            while chunk := source.read(1 << 20):
                digest.update(chunk)
                sink.write(chunk)
        return digest.hexdigest()

    return asked, write


# -- read --------------------------------------------------------------------------------


@router.get("", response_model=list[CampaignOut], summary="Every campaign, newest first")
async def list_campaigns(request: Request) -> list[CampaignOut]:
    """Every campaign with its counts, throughput, ETA and learned limits."""
    service = service_of(request)
    records = await service.db.list_campaigns()
    return [await campaign_out(service, r) for r in reversed(records)]


@router.get("/{campaign_id}", response_model=CampaignOut, summary="One campaign")
async def get_campaign(request: Request, campaign_id: CampaignId) -> CampaignOut:
    """Counts by state, learned limits in words with the replies that taught them,
    throughput, ETA, and why it waits."""
    service = service_of(request)
    return await campaign_out(service, await service.db.get_campaign(campaign_id))


@router.get("/{campaign_id}/messages", response_model=MessagePage, summary="Messages, paged")
async def messages(
    request: Request,
    campaign_id: CampaignId,
    state: MessageStateIn | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=100_000_000)] = 0,
) -> MessagePage:
    """Messages in row order, only those in ``state`` if given, each with its last reply."""
    service = service_of(request)
    await service.db.get_campaign(campaign_id)
    wanted = M(state.value) if state is not None else None
    found = await service.db.messages(campaign_id, state=wanted, limit=limit + 1, offset=offset)
    items = [
        MessageOut(
            id=m.id,
            row=m.row,
            email=m.email,
            state=m.state.value,
            attempts=m.attempts,
            retry_at=m.retry_at,
            last_verdict=m.last_verdict,
            last_code=m.last_code,
            last_text=m.last_text,
            updated_at=m.updated_at,
            ever_uncertain=m.ever_uncertain,
        )
        for m in found[:limit]
    ]
    more = len(found) > limit
    return MessagePage(
        items=items, limit=limit, offset=offset, next_offset=offset + limit if more else None
    )


# -- actions -----------------------------------------------------------------------------


@router.post("/{campaign_id}/pause", response_model=CampaignOut, summary="Pause")
async def pause(request: Request, campaign_id: CampaignId) -> CampaignOut:
    """In-flight messages finish and are recorded before this answers; nothing new starts."""
    service = service_of(request)
    record = await _move(service, campaign_id, C.PAUSED, "paused by user", ACTIVE, "pause")
    await service.halt_and_settle(campaign_id, "paused by user")
    return await campaign_out(service, await service.db.get_campaign(record.id))


@router.post("/{campaign_id}/resume", response_model=CampaignOut, summary="Resume")
async def resume(request: Request, campaign_id: CampaignId) -> CampaignOut:
    """A paused campaign is queued again; the service picks it up at once."""
    service = service_of(request)
    record = await service.db.get_campaign(campaign_id)
    if record.state is C.PAUSED:
        await service.halt_and_settle(campaign_id, "paused by user")  # its last run has ended
        record = await _move(service, campaign_id, C.QUEUED, None, (C.PAUSED,), "resume")
        if service.daemon is not None:
            service.daemon.wake()
    elif record.state in FINISHED:
        raise ApiError(
            409,
            f"campaign {record.id} is {record.state.value}: nothing to resume"
            " (POST .../retry queues failed or uncertain messages again)",
        )
    return await campaign_out(service, record)


@router.post("/{campaign_id}/cancel", response_model=CampaignOut, summary="Cancel")
async def cancel(request: Request, campaign_id: CampaignId) -> CampaignOut:
    """When this answers, no message of the campaign is on the wire and none will leave;
    queued and deferred messages are ``cancelled``."""
    service = service_of(request)
    record = await service.db.get_campaign(campaign_id)
    if record.state is not C.CANCELLED:
        allowed = (*ACTIVE, C.PAUSED)
        await _move(service, campaign_id, C.CANCELLED, "cancelled by user", allowed, "cancel")
        await service.halt_and_settle(campaign_id, "cancelled by user")
        await service.db.cancel_pending(campaign_id)
    return await campaign_out(service, await service.db.get_campaign(campaign_id))


@router.post("/{campaign_id}/retry", response_model=RetryOut, summary="Retry failed/uncertain")
async def retry(request: Request, campaign_id: CampaignId, body: RetryIn | None = None) -> RetryOut:
    """Failed and/or uncertain messages are queued again (attempts reset, history kept); a
    done or cancelled campaign is reopened and sent again."""
    service = service_of(request)
    asked = body or RetryIn()
    states = {s for s, on in ((M.FAILED, asked.failed), (M.UNCERTAIN, asked.uncertain)) if on}
    if not states:
        raise ApiError(422, "nothing to retry: ask for failed and/or uncertain messages")
    await service.db.get_campaign(campaign_id)
    if service.daemon is not None:
        await service.daemon.settle(campaign_id, service.config.settle_seconds)
    count = await service.db.retry(campaign_id, states)
    record = await service.db.get_campaign(campaign_id)
    if count and record.state in FINISHED:
        try:
            record = await service.db.set_campaign_state(
                campaign_id, C.QUEUED, None, expected=FINISHED
            )
        except StateConflict:
            record = await service.db.get_campaign(campaign_id)
    if service.daemon is not None:
        service.daemon.wake()
    return RetryOut(queued=count, campaign=await campaign_out(service, record))


async def _move(
    service: Service,
    campaign_id: int,
    state: CampaignState,
    reason: str | None,
    allowed: tuple[CampaignState, ...],
    action: str,
) -> CampaignRecord:
    """Compare-and-set to ``state``; the same state is a no-op; a finished campaign is 409."""
    for _ in range(3):  # another writer may move it meanwhile: read and decide again
        record = await service.db.get_campaign(campaign_id)
        if record.state is state:
            return record
        if record.state not in allowed:
            raise ApiError(409, f"campaign {record.id} is {record.state.value}: cannot {action}")
        try:
            return await service.db.set_campaign_state(
                campaign_id, state, reason, expected=(record.state,)
            )
        except StateConflict:
            continue
    raise ApiError(409, f"campaign {campaign_id} keeps changing state; try again")


# -- the view ----------------------------------------------------------------------------


async def campaign_out(service: Service, record: CampaignRecord) -> CampaignOut:
    """A campaign as the API shows it."""
    stats = await service.db.stats(record.id)
    learned = await service.db.load_route_limits(record.route_key)
    limits = Limits.from_dict(learned) if learned else Limits()
    counts = {state.value: n for state, n in stats.counts.items()}
    live = service.broker.progress.get(record.id, {})
    running = record.state in (C.RUNNING, C.WAITING)
    rate = float(live.get("rate", 0.0)) if running else None
    left = counts["queued"] + counts["sending"] + counts["deferred"]
    finished = stats.total - left
    next_retry = await service.db.next_retry_at(record.id) if counts["deferred"] else None
    template = Path(str(record.options.get("template", ""))).name.removeprefix("template-")
    return CampaignOut(
        id=record.id,
        name=record.name,
        state=record.state.value,
        reason=record.reason,
        route=record.route_key,
        template=template or None,
        priority=int(record.options.get("priority") or 0),
        created_at=record.created_at,
        updated_at=record.updated_at,
        total=stats.total,
        counts=counts,
        uncertain_ever=stats.uncertain_ever,
        progress=finished / stats.total if stats.total else 1.0,
        throughput=round(rate, 2) if rate is not None else None,
        eta_seconds=round(left / rate, 1) if rate and left else (0.0 if not left else None),
        waiting=waiting_for(record, counts, rate, next_retry, worker=service.daemon is not None),
        connections=int(live.get("connections", 0)) if running else 0,
        limits={k: v for k, v in limits.to_dict().items() if v is not None and k != "evidence"},
        limits_text=limits.describe(),
        explanations=limits.explanations,
    )


def waiting_for(
    record: CampaignRecord,
    counts: dict[str, int],
    rate: float | None,
    next_retry: float | None,
    *,
    worker: bool,
) -> str | None:
    """Why nothing is being sent right now, in words; None while it sends or is finished."""
    state = record.state
    if state in FINISHED:
        return None
    if state is C.PAUSED:
        return record.reason or "paused"
    if state is C.WAITING:
        return record.reason or "the route asked us to wait"
    if state is C.QUEUED:
        if not worker:
            return "queued: a `mailpacer worker` starts it (this service runs no campaigns)"
        return "queued: the service starts it within a second"
    if rate:
        return None
    if counts["queued"] == 0 and counts["sending"] == 0 and counts["deferred"]:
        when = time.strftime("%H:%M:%S", time.localtime(next_retry)) if next_retry else "soon"
        return (
            f"{counts['deferred']} message(s) deferred after temporary failures;"
            f" the next is due at {when}"
        )
    return None
