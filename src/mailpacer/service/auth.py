"""The bearer token (``MAILPACER_API_TOKEN``), compared in constant time."""

from __future__ import annotations

import hmac

from fastapi import HTTPException, Request

__all__ = ["require_token"]


def require_token(request: Request) -> None:
    """A FastAPI dependency: 401 unless ``Authorization: Bearer <token>`` matches (every route
    but ``/healthz``). Without a configured token (loopback only) every request passes."""
    token: str | None = request.app.state.service.config.token
    if not token:
        return
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(
        given.strip().encode("utf-8", "surrogateescape"), token.encode("utf-8")
    ):
        raise HTTPException(
            status_code=401,
            detail="missing or wrong token: send Authorization: Bearer $MAILPACER_API_TOKEN",
            headers={"WWW-Authenticate": "Bearer"},
        )
