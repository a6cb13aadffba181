"""The dashboard: HTML pages served by ``mailpacer serve`` itself (Jinja templates and static
files shipped in the package; no Node build, nothing from a CDN). One module per kind of page;
every page has a ``.json`` twin and the API under ``/api`` does the work."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from mailpacer.service.pages import campaigns, login, new, preview
from mailpacer.service.pages.history import History
from mailpacer.service.pages.render import LoginRequired, login_redirect
from mailpacer.service.runtime import Service

__all__ = ["attach", "install"]


def install(app: FastAPI) -> None:
    """Add the pages and ``/static`` to ``app`` (new before ``/campaigns/{id}``)."""
    app.add_exception_handler(LoginRequired, login_redirect)
    for module in (login, new, preview, campaigns):
        app.include_router(module.router)
    app.mount("/static", StaticFiles(packages=[("mailpacer.service", "static")]), name="static")
    app.state.history = History()


def attach(app: FastAPI, service: Service) -> None:
    """Feed the chart's history from the service's engine events."""
    service.broker.hooks.append(app.state.history)
