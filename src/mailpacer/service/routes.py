"""``/api/routes``: the routes of mailpacer.toml, named; never a password."""

from __future__ import annotations

from fastapi import APIRouter, Request

from mailpacer.config.file import RouteConfig
from mailpacer.config.settings import ceilings, endpoint_of
from mailpacer.core.errors import NotFound
from mailpacer.core.limits import Limits
from mailpacer.service.errors import ERRORS
from mailpacer.service.models import RouteOut
from mailpacer.service.runtime import Service, service_of

__all__ = ["router"]

router = APIRouter(prefix="/api/routes", tags=["routes"], responses=ERRORS)


def _configured(service: Service) -> dict[str, RouteConfig]:
    config = service.config.config
    return dict(config.routes) if config else {}


async def _out(service: Service, rc: RouteConfig) -> RouteOut:
    endpoint = endpoint_of(rc)  # no password: the config keeps only where it comes from
    learned = await service.db.load_route_limits(endpoint.key)
    limits = Limits.from_dict(learned) if learned else Limits()
    ceiling = ceilings(rc)
    return RouteOut(
        name=rc.name,
        url=endpoint.url,
        provider=rc.provider,
        ceilings={
            k: v for k, v in (ceiling or Limits()).to_dict().items() if v and k != "evidence"
        },
        limits={k: v for k, v in limits.to_dict().items() if v is not None and k != "evidence"},
        limits_text=limits.describe(),
        explanations=limits.explanations,
    )


@router.get("", response_model=list[RouteOut], summary="Every route of mailpacer.toml")
async def list_routes(request: Request) -> list[RouteOut]:
    """Each route's URL (no password), ceilings and what has been learned of its server."""
    service = service_of(request)
    return [await _out(service, rc) for rc in _configured(service).values()]


@router.get("/{name}", response_model=RouteOut, summary="One route")
async def get_route(request: Request, name: str) -> RouteOut:
    """One route by its name in mailpacer.toml."""
    service = service_of(request)
    routes = _configured(service)
    if name not in routes:
        raise NotFound(f"route {name!r}: no such route (known: {', '.join(routes) or 'none'})")
    return await _out(service, routes[name])
