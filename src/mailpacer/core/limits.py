"""A route's limits (DESIGN §5): learned from the server and persisted, or configured as ceilings.

The store keeps :meth:`Limits.to_dict`; the report and the CLI show :meth:`Limits.describe`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from mailpacer.core.errors import ConfigError

__all__ = ["Limits"]


@dataclass(frozen=True)
class Limits:
    """A route's limits: learned from the server (persisted) or configured (hard ceilings)."""

    connections: int | None = None
    rate_per_minute: float | None = None
    messages_per_connection: int | None = None
    quota: int | None = None  #: messages per quota window
    quota_window_seconds: float | None = None
    #: a rate counted per window (Postfix anvil, per-minute counters): messages per window
    window_messages: int | None = None
    window_seconds: float | None = None
    #: why each limit was learned, in words: (field name, sentence) pairs
    evidence: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        for f in fields(self):
            if f.name == "evidence":
                continue
            value = getattr(self, f.name)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ConfigError(f"limit {f.name} must be a number, not {value!r}", key=f.name)
            if not math.isfinite(value) or value <= 0:
                raise ConfigError(f"limit {f.name} must be positive, not {value!r}", key=f.name)

    def to_dict(self) -> dict[str, Any]:
        """Every field, ``None`` for unknown, ``evidence`` as a mapping: the JSON the store
        keeps."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["evidence"] = dict(self.evidence)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Limits:
        """Read :meth:`to_dict` output; unknown keys (from a newer version) are ignored, missing
        ones (from an older version) are unknown."""
        names = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in names and k != "evidence"}
        evidence = data.get("evidence")
        if isinstance(evidence, Mapping):
            values["evidence"] = tuple((str(k), str(v)) for k, v in evidence.items())
        return cls(**values)

    @property
    def explanations(self) -> list[str]:
        """Why each limit was learned, one sentence each."""
        return [sentence for _, sentence in self.evidence]

    def describe(self) -> str:
        """E.g. "2 connections, about 120 messages a minute, 100 messages per connection"."""
        parts = []
        if self.connections is not None:
            parts.append(f"{self.connections} connection{'s' if self.connections != 1 else ''}")
        if self.rate_per_minute is not None:
            parts.append(_describe_rate(self.rate_per_minute))
        if self.messages_per_connection is not None:
            count = self.messages_per_connection
            parts.append(f"{count} message{'s' if count != 1 else ''} per connection")
        if self.quota is not None:
            window = self.quota_window_seconds
            span = f"per {_describe_seconds(window)}" if window else "per quota window"
            parts.append(f"{self.quota} messages {span}")
        if self.window_messages is not None and self.window_seconds is not None:
            span = _describe_seconds(round(self.window_seconds, 1))
            parts.append(f"{self.window_messages} messages per {span}")
        return ", ".join(parts) if parts else "no limits learned yet"


def _describe_rate(per_minute: float) -> str:
    if per_minute >= 10:
        return f"about {round(per_minute)} messages a minute"
    if per_minute >= 1:
        return f"about {per_minute:.1f} messages a minute"
    return f"about {per_minute * 60:.1f} messages an hour"


def _describe_seconds(seconds: float) -> str:
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size and seconds % size == 0:
            count = int(seconds // size)
            return unit if count == 1 else f"{count} {unit}s"
    return f"{seconds:g} seconds"
