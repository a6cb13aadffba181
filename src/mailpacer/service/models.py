"""What the API takes and returns, as pydantic models: the OpenAPI schema is made from them."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Path as PathParam
from pydantic import BaseModel, Field

__all__ = [
    "CampaignCreate",
    "CampaignId",
    "CampaignOut",
    "ErrorOut",
    "MessageOut",
    "MessagePage",
    "ProblemOut",
    "RetryIn",
    "RouteOut",
    "TemplateCreate",
    "TemplateLanguage",
    "TemplateOut",
]


class ProblemOut(BaseModel):
    """One problem, located as precisely as known (CSV row / column, file line)."""

    message: str
    file: str | None = None
    row: int | None = None
    line: int | None = None
    column: int | None = None


class ErrorOut(BaseModel):
    """Every 4xx answer: what is wrong and, for campaign input, where."""

    error: str
    problems: list[ProblemOut] = Field(default_factory=list)


class CampaignCreate(BaseModel):
    """A campaign from JSON recipients (the multipart form takes the same fields and a CSV)."""

    template: str = Field(description="a template's name (GET /api/templates)")
    route: str = Field(description="a route's name from mailpacer.toml (GET /api/routes)")
    sender: str = Field(description="From, e.g. 'HR <hr@example.com>'")
    recipients: list[dict[str, str]] = Field(
        description="one object per recipient: email, name, language, other template variables"
    )
    name: str | None = None
    priority: int = Field(default=0, ge=-100, le=100, description="higher goes first")
    skip_invalid: bool = False
    start: bool = Field(default=True, description="false: created paused; resume starts it")


class CampaignOut(BaseModel):
    """A campaign: state, counts, learned limits in words, throughput, ETA, why it waits."""

    id: int
    name: str
    state: str
    reason: str | None
    route: str
    template: str | None
    priority: int
    created_at: float
    updated_at: float
    total: int
    counts: dict[str, int] = Field(description="messages by state")
    uncertain_ever: int = Field(description="messages uncertain at some point (resent or held)")
    progress: float = Field(description="finished messages / total, 0..1")
    throughput: float | None = Field(description="messages accepted per second, live")
    eta_seconds: float | None
    waiting: str | None = Field(description="why nothing is being sent right now, in words")
    connections: int = Field(description="connections open on its route in this process")
    limits: dict[str, Any] = Field(description="what the route's server allows, as learned")
    limits_text: str
    explanations: list[str] = Field(description="why each limit was learned, with the reply")


class MessageOut(BaseModel):
    """One message with its last reply."""

    id: int
    row: int
    email: str
    state: str
    attempts: int
    retry_at: float | None
    last_verdict: str | None
    last_code: int | None
    last_text: str | None
    updated_at: float
    ever_uncertain: bool


class MessagePage(BaseModel):
    """A page of messages; ``next_offset`` is null on the last page."""

    items: list[MessageOut]
    limit: int
    offset: int
    next_offset: int | None


class RetryIn(BaseModel):
    """Which messages to queue again."""

    failed: bool = True
    uncertain: bool = False


class RouteOut(BaseModel):
    """A route from mailpacer.toml: never its password."""

    name: str
    url: str
    provider: str | None
    ceilings: dict[str, Any]
    limits: dict[str, Any]
    limits_text: str
    explanations: list[str]


class TemplateLanguage(BaseModel):
    """One language of a template made from JSON."""

    subject: str
    text: str | None = None
    html: str | None = None


class TemplateCreate(BaseModel):
    """A template from JSON: a subject and a text and/or HTML body per language."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    languages: dict[str, TemplateLanguage] = Field(min_length=1)
    fallback_language: str | None = None


class TemplateOut(BaseModel):
    """A stored template."""

    name: str
    languages: list[str]
    fallback_language: str | None
    files: list[str]


#: a campaign id in a path: a positive 64-bit integer (larger ones are no campaign: 422)
CampaignId = Annotated[int, PathParam(ge=1, le=2**63 - 1, description="the campaign's id")]
