"""The CLI as a client of a running ``mailpacer serve`` (``--server URL``): HTTP calls, their
errors as mailpacer errors, and following a campaign's Server-Sent Events with the same progress
bar and final report as a local send.

The token comes from ``MAILPACER_API_TOKEN`` only (a flag value would land in shell history).
httpx's exceptions and the service's 4xx answers are translated here, once.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import re
import time
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx

from mailpacer.core.errors import InputError, MailpacerError, NotFound, Problem, UsageError
from mailpacer.core.events import Event, EventKind
from mailpacer.delivery.report import Failure, Report, RouteReport

__all__ = ["Remote", "ServiceError", "report_from_campaign", "report_from_finished"]

TOKEN_ENV = "MAILPACER_API_TOKEN"  # noqa: S105 -- the variable's name, not a token
#: how often a dropped event stream is opened again before the CLI gives up
RECONNECTS = 5
#: the service sends a keep-alive comment every 15 s: a read waits longer than that
READ_TIMEOUT = 60.0
_FINISHED_STATES = ("done", "cancelled")
_NAME = re.compile(r"[^A-Za-z0-9_.-]+")


class ServiceError(MailpacerError, ConnectionError):
    """The service cannot be reached, or answered with a server error (exit 6)."""

    exit_code = 6


class Remote:
    """One service at ``url``: JSON calls with the bearer token, errors translated."""

    def __init__(self, url: str, *, token: str | None = None, timeout: float = 60.0) -> None:
        if not re.match(r"^https?://[^/\s]+", url):
            raise UsageError(f"--server {url!r}: give an http:// or https:// URL of the service")
        self.url = url.rstrip("/")
        token = token if token is not None else os.environ.get(TOKEN_ENV)
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.client = httpx.Client(base_url=self.url, headers=headers, timeout=timeout)

    def __repr__(self) -> str:
        return f"<Remote {self.url}>"

    def close(self) -> None:
        """Close the connections."""
        self.client.close()

    def __enter__(self) -> Remote:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- calls -------------------------------------------------------------------------

    def call(self, method: str, path: str, **options: Any) -> httpx.Response:
        """One request; a 2xx answer, or the mailpacer error that says what went wrong."""
        try:
            response = self.client.request(method, path, **options)
        except httpx.TransportError as exc:
            raise self._unreachable(exc) from None
        check(response, self.url)
        return response

    def json(self, method: str, path: str, **options: Any) -> Any:
        """A call's JSON answer."""
        return self.call(method, path, **options).json()

    def campaign(self, campaign_id: int) -> dict[str, Any]:
        """``GET /api/campaigns/{id}``."""
        data: dict[str, Any] = self.json("GET", f"/api/campaigns/{campaign_id}")
        return data

    def failures(self, campaign_id: int, limit: int = 1000) -> list[dict[str, Any]]:
        """The campaign's failed messages (the first ``limit``)."""
        page = self.json(
            "GET",
            f"/api/campaigns/{campaign_id}/messages",
            params={"state": "failed", "limit": limit},
        )
        items: list[dict[str, Any]] = page["items"]
        return items

    def template_for(self, template: str) -> str:
        """The server-side template name for ``--template``: a local folder is zipped and
        uploaded under a name made from its folder name and content (the same folder again
        reuses it); anything else names a template already on the server."""
        folder = Path(template)
        if not folder.is_dir():
            return template
        archive = zip_folder(folder)
        digest = hashlib.sha256(archive).hexdigest()[:12]
        stem = _NAME.sub("-", folder.resolve().name).strip("-._")[:48] or "template"
        name = f"{stem}-{digest}"
        try:
            response = self.client.post(
                "/api/templates",
                data={"name": name},
                files={"archive": (f"{stem}.zip", archive, "application/zip")},
            )
        except httpx.TransportError as exc:
            raise self._unreachable(exc) from None
        if response.status_code != 409:  # 409: uploaded before, with this very content
            check(response, self.url, file=str(folder))
        return name

    def _unreachable(self, exc: httpx.TransportError) -> ServiceError:
        return ServiceError(
            f"the service at {self.url} cannot be reached"
            f" ({type(exc).__name__}: {exc or 'no answer'}); is `mailpacer serve` running there?"
        )

    # -- live events -------------------------------------------------------------------

    def events(self, campaign_id: int) -> Iterator[tuple[str, dict[str, Any]]]:
        """The campaign's SSE stream as (kind, data) pairs, the ``snapshot`` first; a dropped
        stream is opened again (at most :data:`RECONNECTS` times), starting with a new
        snapshot."""
        timeout = httpx.Timeout(10.0, read=READ_TIMEOUT)
        path = f"/api/campaigns/{campaign_id}/events"
        for attempt in range(RECONNECTS + 1):
            try:
                with self.client.stream("GET", path, timeout=timeout) as response:
                    if response.status_code >= 400:
                        response.read()
                        check(response, self.url)
                    yield from parse_sse(response.iter_lines())
                    return
            except (httpx.TransportError, httpx.StreamError) as exc:
                if attempt == RECONNECTS:
                    raise self._unreachable(
                        exc if isinstance(exc, httpx.TransportError) else httpx.ReadError(str(exc))
                    ) from None
                time.sleep(min(2.0**attempt, 10.0))


def parse_sse(lines: Iterator[str]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(event, data) pairs from SSE lines; comments (keep-alives) are skipped."""
    kind = "message"
    for line in lines:
        if line.startswith("event:"):
            kind = line[6:].strip()
        elif line.startswith("data:"):
            yield kind, json.loads(line[5:].strip())
        elif not line:
            kind = "message"


def check(response: httpx.Response, url: str, *, file: str | None = None) -> None:
    """Raise the mailpacer error a non-2xx answer stands for."""
    status = response.status_code
    if status < 400:
        return
    try:
        body = response.json()
    except ValueError:
        body = {}
    body = body if isinstance(body, dict) else {}
    message = str(body.get("error") or body.get("detail") or response.reason_phrase)
    if status == 401:
        raise UsageError(
            f"the service at {url} refused the token (401): set {TOKEN_ENV} to its token"
        )
    if status == 404:
        raise NotFound(message)
    if status in (409, 415):
        raise UsageError(message)
    if status in (413, 422):
        problems = [
            Problem(
                str(p.get("message", "invalid")),
                file=p.get("file") or file,
                line=p.get("line"),
                column=p.get("column"),
                row=p.get("row"),
            )
            for p in body.get("problems", [])
            if isinstance(p, dict)
        ]
        raise InputError(problems or [Problem(message, file=file)])
    if status < 500:
        raise UsageError(f"the service answered {status}: {message}")
    raise ServiceError(f"the service at {url} failed ({status}): {message}")


def zip_folder(folder: Path) -> bytes:
    """A template folder as zip bytes (hidden files left out), in a stable order."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(folder.rglob("*")):
            relative = path.relative_to(folder)
            if path.is_file() and not any(part.startswith(".") for part in relative.parts):
                info = zipfile.ZipInfo(relative.as_posix(), date_time=(1980, 1, 1, 0, 0, 0))
                archive.writestr(info, path.read_bytes(), zipfile.ZIP_DEFLATED)
    return buffer.getvalue()


# -- following -----------------------------------------------------------------------------


def progress_data(campaign: dict[str, Any]) -> dict[str, Any]:
    """A campaign's JSON as a progress event's data (what the progress bar draws)."""
    counts = campaign.get("counts", {})
    return {
        "total": campaign.get("total", 0),
        **{k: counts.get(k, 0) for k in ("sent", "failed", "deferred", "cancelled")},
        "uncertain": campaign.get("uncertain_ever", 0),
        "connections": campaign.get("connections", 0),
        "rate": campaign.get("throughput") or 0.0,
        "state": campaign.get("state"),
        "reason": campaign.get("reason") or campaign.get("waiting"),
        "elapsed": 0.0,
    }


def follow(
    remote: Remote,
    campaign_id: int,
    observer: Callable[[Event], None] | None,
    act: Callable[[dict[str, Any]], dict[str, Any] | None] | None = None,
) -> Report:
    """Follow a campaign until its run finishes; its final report.

    The stream is opened first, then ``act(snapshot)`` runs (resume, retry) and answers the
    campaign as it is afterwards, or None when it did nothing. After an action, a ``finished``
    event counts only once a ``started`` one was seen: an earlier run's end is not this one's.
    A campaign that is not running and was not started is reported as it stands."""
    waiting_start = False
    for kind, data in remote.events(campaign_id):
        if kind == "snapshot":
            after = act(data) if act is not None else None
            act = None  # a reconnect does not act again
            current = after or data
            if after is not None:  # queued: a new run starts (a running one goes on)
                waiting_start = current["state"] == "queued"
            if current["state"] in (*_FINISHED_STATES, "paused") and not waiting_start:
                return report_from_campaign(current, remote.failures(campaign_id))
            if observer is not None:
                observer(
                    Event(EventKind.PROGRESS, campaign_id, time.time(), progress_data(current))
                )
            continue
        try:
            event_kind = EventKind(kind)
        except ValueError:
            continue
        if event_kind is EventKind.STARTED:
            waiting_start = False
        if observer is not None:
            observer(Event(event_kind, campaign_id, float(data.get("at", time.time())), data))
        if event_kind is EventKind.FINISHED and not waiting_start:
            return report_from_finished(data)
    return report_from_campaign(remote.campaign(campaign_id), remote.failures(campaign_id))


_FIELDS = {f.name for f in dataclasses.fields(Report)}


def report_from_finished(data: dict[str, Any]) -> Report:
    """The ``finished`` event's data (the service's run report) as a :class:`Report`."""
    values = {k: v for k, v in data.items() if k in _FIELDS}
    values["failures"] = [
        Failure(str(f.get("email", "")), f.get("code"), str(f.get("reason", "")))
        for f in data.get("failures", [])
    ]
    values["routes"] = [
        RouteReport(
            str(r.get("route", "")),
            int(r.get("sent", 0)),
            dict(r.get("limits") or {}),
            str(r.get("limits_text", "")),
            r.get("error"),
        )
        for r in data.get("routes", [])
    ]
    return Report(**values)


def report_from_campaign(campaign: dict[str, Any], failed: list[dict[str, Any]]) -> Report:
    """A campaign that no run of ours followed (done, cancelled, paused) as a :class:`Report`."""
    counts = campaign.get("counts", {})
    return Report(
        campaign=int(campaign["id"]),
        key="",
        name=str(campaign.get("name", "")),
        state=str(campaign.get("state", "")),
        reason=campaign.get("reason"),
        total=int(campaign.get("total", 0)),
        sent=counts.get("sent", 0),
        failed=counts.get("failed", 0),
        uncertain=int(campaign.get("uncertain_ever", 0)),
        cancelled=counts.get("cancelled", 0),
        queued=counts.get("queued", 0) + counts.get("sending", 0),
        deferred=counts.get("deferred", 0),
        held=counts.get("uncertain", 0),
        seconds=0.0,
        sent_this_run=0,
        throughput=0.0,
        throttles=0,
        limits=dict(campaign.get("limits", {})),
        limits_text=str(campaign.get("limits_text", "")),
        explanations=list(campaign.get("explanations", [])),
        failures=[
            Failure(str(m["email"]), m.get("last_code"), str(m.get("last_text") or "failed"))
            for m in failed
        ],
    )
