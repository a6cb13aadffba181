"""Failed messages grouped by reason: one group per verdict, reply code and reply text (with the
recipient's address taken out, so "550 5.1.1 <a@x>: unknown" and "<b@x>" are one reason)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from mailpacer.store import MessageRecord

__all__ = ["Group", "group_failures", "reason_of"]

_ADDRESS = re.compile(r"<?[^\s<>@]+@[^\s<>]+>?")
#: recipients listed per group (the count is always whole)
SHOWN = 20


def reason_of(text: str | None) -> str:
    """The reply text with addresses replaced by ``<address>``."""
    if not text:
        return "(no reply text)"
    return _ADDRESS.sub("<address>", text).strip()


@dataclass
class Group:
    """Failures that share a reason."""

    verdict: str
    code: int | None
    reason: str
    reply: str  #: one full reply, as the server said it
    count: int = 0
    recipients: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """As the page's JSON."""
        return {
            "verdict": self.verdict,
            "code": self.code,
            "reason": self.reason,
            "reply": self.reply,
            "count": self.count,
            "recipients": self.recipients,
        }


def group_failures(messages: Iterable[MessageRecord]) -> list[Group]:
    """Groups, most frequent first."""
    groups: dict[tuple[str, int | None, str], Group] = {}
    for m in messages:
        verdict = m.last_verdict or "failed"
        key = (verdict, m.last_code, reason_of(m.last_text))
        group = groups.get(key)
        if group is None:
            reply = f"{m.last_code} {m.last_text or ''}".strip() if m.last_code else m.last_text
            group = groups[key] = Group(verdict, m.last_code, key[2], reply or "(no reply)")
        group.count += 1
        if len(group.recipients) < SHOWN:
            group.recipients.append({"row": m.row, "email": m.email, "name": _name(m)})
    return sorted(groups.values(), key=lambda g: (-g.count, g.reason))


def _name(m: MessageRecord) -> str:
    return str(m.variables.get("name", "")) if m.variables else ""
