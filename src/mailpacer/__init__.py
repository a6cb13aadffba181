"""mailpacer: deliver large batches of personalized email through your own SMTP server, as fast
as that server allows, without tripping its limits and without losing a message.

The public Python API (the CLI's twin, DESIGN §7)::

    from mailpacer import Campaign, Sandbox, send

    with Sandbox("strict") as sandbox:
        report = send("workers.csv", template="templates", smtp=f"smtp://127.0.0.1:{sandbox.port}",
                      sender="HR <hr@example.com>", db="mailpacer.db")
    Campaign.get(report.campaign, db="mailpacer.db").counts

Names load on first use, so ``import mailpacer`` stays cheap (the SMTP client, the server and the
database drivers are imported only by what needs them).
"""

from __future__ import annotations

import importlib

TYPE_CHECKING = False  # not typing's: importing typing would double the cost of this module
if TYPE_CHECKING:
    from mailpacer.api import Campaign
    from mailpacer.core.errors import (
        ConfigError,
        InputError,
        InvalidTransition,
        MailpacerError,
        NotFound,
        Problem,
        RouteError,
        SandboxError,
        StoreError,
        UsageError,
    )
    from mailpacer.core.events import Event, EventKind, Observer
    from mailpacer.core.limits import Limits
    from mailpacer.core.route import Route, parse_route
    from mailpacer.delivery.report import Report
    from mailpacer.delivery.runner import send
    from mailpacer.sandbox import Sandbox, get_profile

__version__ = "0.1.0"

#: public name → the module that defines it (imported on first use)
_HOMES = {
    "send": "mailpacer.delivery.runner",
    "Report": "mailpacer.delivery.report",
    "Campaign": "mailpacer.api",
    "Route": "mailpacer.core.route",
    "parse_route": "mailpacer.core.route",
    "Limits": "mailpacer.core.limits",
    "Event": "mailpacer.core.events",
    "EventKind": "mailpacer.core.events",
    "Observer": "mailpacer.core.events",
    "Sandbox": "mailpacer.sandbox",
    "get_profile": "mailpacer.sandbox",
    **dict.fromkeys(
        (
            "MailpacerError",
            "UsageError",
            "ConfigError",
            "InputError",
            "Problem",
            "RouteError",
            "StoreError",
            "InvalidTransition",
            "NotFound",
            "SandboxError",
        ),
        "mailpacer.core.errors",
    ),
}

__all__ = [
    "Campaign",
    "ConfigError",
    "Event",
    "EventKind",
    "InputError",
    "InvalidTransition",
    "Limits",
    "MailpacerError",
    "NotFound",
    "Observer",
    "Problem",
    "Report",
    "Route",
    "RouteError",
    "Sandbox",
    "SandboxError",
    "StoreError",
    "UsageError",
    "__version__",
    "get_profile",
    "parse_route",
    "send",
]


def __getattr__(name: str) -> object:
    """Import a public name's module on first use and keep the name here."""
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
