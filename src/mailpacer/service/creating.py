"""Creating a campaign from an upload or JSON: validated whole before anything is stored, idempotent
under an ``Idempotency-Key``, never half-made.

Each campaign gets a folder under ``DATA_DIR/campaigns``: its recipients list and a copy of its
template (so editing a template later does not change a campaign already made). The folder is
named by the idempotency key, so the same request again finds the same folder, hence the same
campaign key: a retried request (or one retried after a crash half-way) continues that campaign.
A campaign is stored ``paused`` while its recipients are added and queued afterwards, so no engine
ever runs it half-stored.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import shutil
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mailpacer.compose.headers import refuse_line_breaks
from mailpacer.config.campaign import CampaignSettings
from mailpacer.config.settings import resolve
from mailpacer.core.errors import InputError, Problem
from mailpacer.core.states import CampaignState, StateConflict
from mailpacer.delivery.runner import check, prepare
from mailpacer.service.errors import ApiError
from mailpacer.service.runtime import Service
from mailpacer.store import CampaignRecord

__all__ = ["CREATING", "NOT_STARTED", "Request", "create_campaign"]

C = CampaignState
#: the reason a campaign carries while its recipients are stored
CREATING = "being created: its recipients are being stored"
#: the reason of a campaign created with ``start: false``
NOT_STARTED = "created, not started: resume starts it"
RECIPIENTS = "recipients.csv"
MARKER = "campaign.json"


@dataclass(frozen=True)
class Request:
    """What a create request asks for (the recipients are written by ``write``)."""

    template: str
    route: str
    sender: str
    name: str
    priority: int = 0
    skip_invalid: bool = False
    start: bool = True

    def fingerprint(self, recipients_digest: str) -> str:
        """Identity of the request: the same key with another request is refused."""
        fields = json.dumps(dataclasses.asdict(self), sort_keys=True)
        return hashlib.sha256(f"{fields}\0{recipients_digest}".encode()).hexdigest()


def folder_for(service: Service, idempotency_key: str | None) -> Path:
    """The campaign's folder: named by the key's hash, else a new random name."""
    name = (
        "k" + hashlib.sha256(idempotency_key.encode()).hexdigest()[:32]
        if idempotency_key
        else "u" + uuid.uuid4().hex
    )
    return service.config.data_dir / "campaigns" / name


async def create_campaign(
    service: Service,
    request: Request,
    write: Callable[[Path], str],
    idempotency_key: str | None,
) -> tuple[CampaignRecord, bool]:
    """Create (or, for a repeated idempotency key, find) the campaign; ``write(path)`` writes
    the recipients CSV and returns its digest. Returns the record and whether it is new."""
    for field_name, value in (("sender", request.sender), ("name", request.name)):
        try:
            refuse_line_breaks(field_name, value)
        except InputError as exc:
            raise ApiError(422, str(exc), [Problem(str(exc), file=field_name)]) from None
    async with service.create_lock:
        folder = folder_for(service, idempotency_key)
        folder.mkdir(parents=True, exist_ok=True)
        staging = folder / f".upload-{uuid.uuid4().hex}.csv"
        try:
            digest = await asyncio.to_thread(write, staging)
            fingerprint = request.fingerprint(digest)
            marker = folder / MARKER
            if marker.exists():
                made = json.loads(marker.read_text(encoding="utf-8"))
                if made["fingerprint"] != fingerprint:
                    raise ApiError(
                        409, "this Idempotency-Key was used for a different request already"
                    )
                return await service.db.get_campaign(int(made["id"])), False
            staging.replace(folder / RECIPIENTS)
        finally:
            staging.unlink(missing_ok=True)
        try:
            record = await _store(service, request, folder, fingerprint)
        except BaseException:
            if not (folder / MARKER).exists():
                shutil.rmtree(folder, ignore_errors=True)  # nothing half-made stays behind
            raise
    if service.daemon is not None:
        service.daemon.wake()
    return record, True


async def _store(
    service: Service, request: Request, folder: Path, fingerprint: str
) -> CampaignRecord:
    settings = _settings(service, request, folder)
    try:
        checked = await asyncio.to_thread(check, settings)
    except InputError as exc:
        raise ApiError(422, str(_relative(exc, folder)), _relative(exc, folder).problems) from None
    key = settings.campaign_key()
    lock = service.daemon.lock if service.daemon is not None else asyncio.Lock()
    async with lock:  # no scan of this process sees it queued without its recipients
        record, _ = await service.db.get_or_create_campaign(
            key, name=request.name, route_key=settings.route.key, options=settings.to_stored()
        )
        if record.state is C.QUEUED and (await service.db.stats(record.id)).total == 0:
            record = await service.db.set_campaign_state(
                record.id, C.PAUSED, CREATING, expected=(C.QUEUED,)
            )
    env = dict(service.config.environ)
    await service.db.run(lambda store: prepare(store, settings, checked, environ=env))
    record = await service.db.get_campaign(record.id)
    if record.reason == CREATING or record.state is C.DONE:
        state, reason = (C.QUEUED, None) if request.start else (C.PAUSED, NOT_STARTED)
        try:
            record = await service.db.set_campaign_state(
                record.id, state, reason, expected=(C.PAUSED, C.DONE)
            )
        except StateConflict:
            record = await service.db.get_campaign(record.id)
    marker = {"id": record.id, "fingerprint": fingerprint, "template": request.template}
    (folder / MARKER).write_text(json.dumps(marker), encoding="utf-8")
    return record


def _settings(service: Service, request: Request, folder: Path) -> CampaignSettings:
    """The campaign's settings: the named route from mailpacer.toml, a copy of the template."""
    config = service.config.config
    known = sorted([*config.routes, *config.groups]) if config else []  # a group: all of it
    if request.route not in known:
        message = f"route {request.route!r}: no such route (known: {', '.join(known) or 'none'})"
        raise ApiError(422, message, [Problem(message, file="route")])
    source = service.templates.path(request.template)
    copy = folder / f"template-{request.template}"
    if not copy.exists():
        shutil.copytree(source, copy)
    flags: dict[str, Any] = {"route": request.route, "from": request.sender}
    env = {k: v for k, v in service.config.environ.items() if k not in _ROUTE_ENV}
    resolved = resolve(flags, env, config)
    return resolved.campaign(
        recipients=folder / RECIPIENTS,
        template=copy,
        skip_invalid=request.skip_invalid,
        name=request.name,
        priority=request.priority,
    )


#: variables that would name another route than the request's
_ROUTE_ENV = frozenset({"MAILPACER_SMTP", "MAILPACER_ROUTE", "MAILPACER_PROVIDER"})


def _relative(exc: InputError, folder: Path) -> InputError:
    """The problems with file names as the user knows them (``recipients.csv``,
    ``template/en/body.html``), not the server's folders."""
    prefix = str(folder) + "/"

    def name(file: str | None) -> str | None:
        if file is None:
            return None
        file = file.removeprefix(prefix)
        if file.startswith("template-"):
            file = "template" + file[file.find("/") :] if "/" in file else "template"
        return file

    return InputError([dataclasses.replace(p, file=name(p.file)) for p in exc.problems])
