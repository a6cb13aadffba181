"""A built-in SMTP server that behaves like a strict provider (DESIGN §8).

>>> from mailpacer.sandbox import Sandbox, get_profile
>>> with Sandbox(get_profile("strict")) as sb:  # doctest: +SKIP
...     sb.host, sb.port, sb.counters
"""

from mailpacer.sandbox.control import USER, Sandbox
from mailpacer.sandbox.profiles import CAPACITY_FORMULA, PROFILES, Profile, get_profile
from mailpacer.sandbox.records import AcceptedMessage, Counters

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
