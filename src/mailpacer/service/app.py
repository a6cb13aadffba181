"""The FastAPI application: resources, the dashboard, auth, errors, the upload limit, and the
daemon's lifetime (started with the app, stopped with it: in-flight messages finish and are
recorded)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import BaseModel

from mailpacer import __version__
from mailpacer.service import campaigns, events, metrics, pages, routes, templates
from mailpacer.service.auth import require_token
from mailpacer.service.config import ServiceConfig
from mailpacer.service.errors import install
from mailpacer.service.limits import BodyLimit
from mailpacer.service.runtime import Service, service_of

__all__ = ["create_app"]


class Health(BaseModel):
    """``/healthz``: the store answers."""

    status: str
    version: str
    campaigns_running: int


def create_app(config: ServiceConfig) -> FastAPI:
    """The service as an ASGI app (``uvicorn.run(create_app(config))``)."""
    config.check()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        service = Service(config)
        app.state.service = service
        pages.attach(app, service)
        try:
            await service.start()
            yield
        finally:
            await service.stop()

    app = FastAPI(
        title="mailpacer",
        version=__version__,
        description="Bulk email through your own SMTP server, as fast as it allows.",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    install(app)
    app.add_middleware(BodyLimit, limit=config.upload_limit)
    guarded = [Depends(require_token)]
    for module in (campaigns, events, templates, routes, metrics):
        app.include_router(module.router, dependencies=guarded)
    pages.install(app)  # the dashboard: its pages log in themselves (token or session cookie)

    @app.get("/healthz", response_model=Health, tags=["service"], summary="Liveness")
    async def healthz(request: Request) -> Health:
        """200 when the store answers (no token needed)."""
        service = service_of(request)
        await service.db.list_campaigns()
        running = len(service.daemon.tasks) if service.daemon is not None else 0
        return Health(status="ok", version=__version__, campaigns_running=running)

    @app.get("/openapi.json", include_in_schema=False, dependencies=guarded)
    async def openapi() -> JSONResponse:
        return JSONResponse(schema(app))

    @app.get("/docs", include_in_schema=False, dependencies=guarded)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url="/openapi.json", title="mailpacer API")

    return app


def schema(app: FastAPI) -> dict[str, Any]:
    """The OpenAPI schema, with the bearer token declared."""
    if app.openapi_schema is None:
        data = app.openapi()
        data.setdefault("components", {})["securitySchemes"] = {
            "bearer": {"type": "http", "scheme": "bearer"}
        }
        data["security"] = [{"bearer": []}]
        data["paths"]["/healthz"]["get"]["security"] = []
        app.openapi_schema = data
    return app.openapi_schema
