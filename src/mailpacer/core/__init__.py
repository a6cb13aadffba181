"""The bottom layer: mailpacer's types and pure rules, no I/O and nothing above it imported.

Errors (one root, :class:`MailpacerError`), message and campaign states with their one transition
table, the reply classifier (a rule table) and what a verdict means for a message, retry maths,
routes, a route's :class:`Limits`, and the one frozen :class:`Event` observers receive.
"""

from mailpacer.core.classify import Classification, Phase, Reply, Rule, Verdict, classify
from mailpacer.core.context import RouteHistory
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
    StoreUnavailable,
    UsageError,
)
from mailpacer.core.events import Emitter, Event, EventKind, Observer
from mailpacer.core.limits import Limits
from mailpacer.core.outcome import Decision, decide
from mailpacer.core.retry import RetryPolicy, next_retry
from mailpacer.core.route import Route, TlsMode, parse_route
from mailpacer.core.states import CampaignState, MessageState

__all__ = [
    "CampaignState",
    "Classification",
    "ConfigError",
    "Decision",
    "Emitter",
    "Event",
    "EventKind",
    "InputError",
    "InvalidTransition",
    "Limits",
    "MailpacerError",
    "MessageState",
    "NotFound",
    "Observer",
    "Phase",
    "Problem",
    "Reply",
    "RetryPolicy",
    "Route",
    "RouteError",
    "RouteHistory",
    "Rule",
    "SandboxError",
    "StoreError",
    "StoreUnavailable",
    "TlsMode",
    "UsageError",
    "Verdict",
    "classify",
    "decide",
    "next_retry",
    "parse_route",
]
