"""The upload size limit, for every request body (CSV, zip, JSON), counted as it arrives."""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mailpacer.service.errors import ApiError

__all__ = ["BodyLimit", "too_large"]


def too_large(limit: int) -> ApiError:
    """The 413 answer."""
    return ApiError(413, f"the request body is larger than the upload limit ({limit} bytes)")


class BodyLimit:
    """ASGI middleware: a body longer than ``limit`` bytes is refused with 413 — at once when
    ``Content-Length`` says so, else as soon as the bytes read pass the limit (the route sees
    an :class:`ApiError` and nothing is created)."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for key, value in scope.get("headers", []):
            if key == b"content-length" and value.isdigit() and int(value) > self.limit:
                body = json.dumps({"error": str(too_large(self.limit)), "problems": []}).encode()
                await send(
                    {
                        "type": "http.response.start",
                        "status": 413,
                        "headers": [
                            (b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close"),
                        ],
                    }
                )
                await send({"type": "http.response.body", "body": body})
                return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise too_large(self.limit)
            return message

        await self.app(scope, counted, send)
