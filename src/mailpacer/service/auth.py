"""The bearer token (``MAILPACER_API_TOKEN``), compared in constant time — sent as
``Authorization: Bearer`` by programs, or carried by the dashboard's session cookie, which the
login page sets once per browser session (its value is derived from the token, never the token)."""

from __future__ import annotations

import hashlib
import hmac

from fastapi import HTTPException, Request

__all__ = ["COOKIE", "authorized", "cookie_value", "require_token"]

#: the dashboard's session cookie (HttpOnly, SameSite=Strict, no expiry: ends with the session)
COOKIE = "mailpacer_session"
_UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def cookie_value(token: str) -> str:
    """What the session cookie holds for ``token``: a keyed hash, so the cookie jar never
    holds the token itself."""
    return hmac.new(
        token.encode("utf-8"), b"mailpacer dashboard session", hashlib.sha256
    ).hexdigest()


def _same_origin(request: Request) -> bool:
    """A cookie-carried request that changes something must come from our own pages."""
    if request.method not in _UNSAFE:
        return True
    origin = request.headers.get("origin")
    if origin is None:
        return request.headers.get("sec-fetch-site", "same-origin") == "same-origin"
    return origin.partition("://")[2] == request.headers.get("host", "")


def authorized(request: Request) -> bool:
    """Whether the request carries the token (header or session cookie); always True when the
    service has no token (loopback only)."""
    token: str | None = request.app.state.service.config.token
    if not token:
        return True
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer":
        return hmac.compare_digest(
            given.strip().encode("utf-8", "surrogateescape"), token.encode("utf-8")
        )
    session = request.cookies.get(COOKIE)
    if session is None:
        return False
    matches = hmac.compare_digest(
        session.encode("utf-8", "surrogateescape"), cookie_value(token).encode("ascii")
    )
    return matches and _same_origin(request)


def require_token(request: Request) -> None:
    """A FastAPI dependency: 401 unless ``Authorization: Bearer <token>`` (or the dashboard's
    session cookie) matches — every route but ``/healthz``. Without a configured token (loopback
    only) every request passes."""
    if not authorized(request):
        raise HTTPException(
            status_code=401,
            detail="missing or wrong token: send Authorization: Bearer $MAILPACER_API_TOKEN",
            headers={"WWW-Authenticate": "Bearer"},
        )
