"""Rendering pages: the Jinja environment (autoescaped, templates shipped in the package), the
filters the templates use, and the login check every page makes."""

from __future__ import annotations

import datetime
from typing import Any
from urllib.parse import quote

import jinja2
from fastapi import Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from mailpacer import __version__
from mailpacer.core.errors import MailpacerError
from mailpacer.service.auth import authorized

__all__ = ["ENV", "LoginRequired", "duration", "json_page", "page", "require_login"]

ENV = jinja2.Environment(
    loader=jinja2.PackageLoader("mailpacer.service", "templates"),
    autoescape=True,  # every page, whatever its name: user data is text
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
#: headers of every page: no framing by others, nothing loaded from elsewhere, no inline script
SECURITY = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "frame-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


class LoginRequired(MailpacerError):
    """Raised by :func:`require_login`; answered with a redirect to the login page."""

    def __init__(self, next_path: str) -> None:
        super().__init__(next_path)
        self.next_path = next_path


def require_login(request: Request) -> None:
    """A dependency of every page: without the token (header or session cookie), go and log
    in first (the ``.json`` twins answer 401 like the API)."""
    if authorized(request):
        return
    path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    raise LoginRequired(path)


def login_redirect(request: Request, exc: Exception) -> Response:
    """The handler of :class:`LoginRequired`."""
    assert isinstance(exc, LoginRequired)
    if exc.next_path.split("?")[0].endswith(".json"):
        return JSONResponse(
            {"error": "missing or wrong token: log in at /login", "problems": []}, 401
        )
    return RedirectResponse(f"/login?next={quote(exc.next_path, safe='/')}", status_code=303)


def duration(seconds: float | None) -> str:
    """``75`` → ``1 min 15 s``; None → ``—``."""
    if seconds is None:
        return "—"
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def clock(at: float | None) -> str:
    """A timestamp as the server's local time, ``2026-06-01 14:03:07``."""
    if at is None:
        return "—"
    return datetime.datetime.fromtimestamp(at).strftime("%Y-%m-%d %H:%M:%S")


def percent(fraction: float) -> str:
    """``0.257`` → ``25 %`` (floor: 100 % only when everything is finished)."""
    return f"{int(fraction * 100 + 1e-9)} %"


ENV.filters.update(duration=duration, clock=clock, percent=percent)
ENV.globals.update(version=__version__)


def page(request: Request, name: str, status: int = 200, **context: Any) -> HTMLResponse:
    """Template ``name`` rendered with ``context`` (and whether a login is in use)."""
    token = request.app.state.service.config.token
    html = ENV.get_template(name).render(
        request_path=request.url.path, login=bool(token), **context
    )
    return HTMLResponse(html, status_code=status, headers=SECURITY)


def json_page(data: Any) -> JSONResponse:
    """A page's data as JSON (the ``.json`` twin of an HTML page)."""
    return JSONResponse(data, headers={"Cache-Control": "no-store"})
