"""The new-campaign page: upload a CSV, choose template and route, see every problem by row before
anything is sent (the API's 422), then start. The form posts to ``/api/campaigns`` itself."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, JSONResponse

from mailpacer.service.pages.render import json_page, page, require_login
from mailpacer.service.runtime import service_of

__all__ = ["router"]

router = APIRouter(dependencies=[Depends(require_login)], include_in_schema=False)


def form_data(request: Request) -> dict[str, Any]:
    """What the form offers: the templates and routes by name."""
    service = service_of(request)
    config = service.config.config
    return {
        "templates": service.templates.names(),
        "routes": sorted(config.routes) if config else [],
    }


@router.get("/campaigns/new", response_class=HTMLResponse)
async def new_page(request: Request) -> HTMLResponse:
    """The form."""
    return page(request, "new.html", **form_data(request))


@router.get("/campaigns/new.json")
async def new_json(request: Request) -> JSONResponse:
    """The form's choices as JSON."""
    return json_page(form_data(request))
