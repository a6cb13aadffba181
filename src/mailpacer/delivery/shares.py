"""How processes sharing a route divide it (DESIGN §5, §6): pure decisions, tested without a store.

A route's connection slots are shared by every process that carries it; each gets a fair share
of the route's connection count (water-filling over what each would use), a process above its
share gives a slot back only while another is short of its own, and a process publishes only
what it learned itself (a patch of the limits that changed since it last published or adopted).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["fair_shares", "limits_patch", "must_yield"]


def fair_shares(limit: int, wants: Mapping[str, int]) -> dict[str, int]:
    """Split ``limit`` connection slots among holders by what each ``wants``: one at a time, in
    holder order, to everyone who wants more, so nobody gets more than it wants and the
    smallest wants are met first. Every holder is in the result (0 when it gets none)."""
    shares = dict.fromkeys(wants, 0)
    remaining = max(0, limit)
    order = sorted(wants)
    while remaining > 0:
        hungry = [h for h in order if shares[h] < wants[h]]
        if not hungry:
            break
        for holder in hungry[:remaining]:
            shares[holder] += 1
        remaining -= min(remaining, len(hungry))
    return shares


def must_yield(me: str, limit: int, wants: Mapping[str, int], held: Mapping[str, int]) -> bool:
    """Whether ``me`` should give a slot back: it holds more than its fair share while another
    holder has fewer than its own (an idle connection nobody else needs is kept)."""
    shares = fair_shares(limit, wants)
    if held.get(me, 0) <= shares.get(me, 0):
        return False
    return any(held.get(h, 0) < share for h, share in shares.items() if h != me)


def limits_patch(before: Mapping[str, Any], after: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON merge patch that turns ``before`` into ``after`` (two :meth:`Limits.to_dict`):
    changed fields, and only the changed sentences of ``evidence`` (``None``: removed)."""
    patch: dict[str, Any] = {}
    for key in sorted(set(before) | set(after)):
        old, new = before.get(key), after.get(key)
        if key == "evidence" and isinstance(new, Mapping):
            old_map: Mapping[str, Any] = old if isinstance(old, Mapping) else {}
            changed = {
                k: new.get(k) for k in set(old_map) | set(new) if old_map.get(k) != new.get(k)
            }
            if changed:
                patch[key] = changed
        elif old != new:
            patch[key] = new
    return patch
