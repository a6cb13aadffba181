"""A built-in SMTP server that behaves like a strict provider (DESIGN §8).

>>> from mailpacer.sandbox import Sandbox, get_profile
>>> with Sandbox(get_profile("strict")) as sb:  # doctest: +SKIP
...     sb.host, sb.port, sb.counters

Profiles are cheap to import; the server (aiosmtpd, cryptography) loads on first use of
:class:`Sandbox`, so ``mailpacer --help`` stays fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mailpacer.sandbox.builtin import PROFILES, get_profile
from mailpacer.sandbox.profiles import CAPACITY_FORMULA, Profile
from mailpacer.sandbox.records import AcceptedMessage, Counters

if TYPE_CHECKING:
    from mailpacer.sandbox.control import USER, Sandbox

__all__ = [
    "CAPACITY_FORMULA",
    "PROFILES",
    "USER",
    "AcceptedMessage",
    "Counters",
    "Profile",
    "Sandbox",
    "get_profile",
]


def __getattr__(name: str) -> Any:
    if name in ("Sandbox", "USER"):
        from mailpacer.sandbox import control

        return getattr(control, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
