"""Logging in once per browser session: the token typed into a form, compared in constant time,
kept as an HttpOnly session cookie (derived from the token) that pages, scripts and live events
carry. On a loopback server without a token there is nothing to log in to."""

from __future__ import annotations

import hmac

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from mailpacer.service.auth import COOKIE, cookie_value
from mailpacer.service.pages.render import page

__all__ = ["router", "safe_next"]

router = APIRouter(include_in_schema=False)


def safe_next(target: str | None) -> str:
    """Where to go after logging in: a path on this server, never another site."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


@router.get("/login", response_class=HTMLResponse)
async def login_form(request: Request, next: str = "/") -> Response:
    """The form (or straight on, when the service has no token)."""
    if not request.app.state.service.config.token:
        return RedirectResponse(safe_next(next), status_code=303)
    return page(request, "login.html", next=safe_next(next), error=None)


@router.post("/login", response_class=HTMLResponse)
async def login(request: Request) -> Response:
    """Check the token; on success set the session cookie and go on."""
    token: str | None = request.app.state.service.config.token
    form = await request.form(max_files=0, max_fields=5)
    given, target = form.get("token"), safe_next(str(form.get("next") or "/"))
    if not token:
        return RedirectResponse(target, status_code=303)
    if not isinstance(given, str) or not hmac.compare_digest(
        given.strip().encode("utf-8", "surrogateescape"), token.encode("utf-8")
    ):
        return page(request, "login.html", status=401, next=target, error="That is not the token.")
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        COOKIE,
        cookie_value(token),
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/",
    )
    return response


@router.post("/logout")
async def logout() -> Response:
    """Forget the session cookie."""
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(COOKIE, path="/")
    return response
