"""``mailpacer serve``: the HTTP API, live events and metrics over the delivery core (DESIGN §10).

One module per kind of resource (campaigns, templates, routes, events, metrics); :func:`create_app`
puts them together with the daemon that runs every due campaign.
"""

from mailpacer.service.app import create_app
from mailpacer.service.config import ServiceConfig

__all__ = ["ServiceConfig", "create_app"]
