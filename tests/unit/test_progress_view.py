"""The live progress display (issue 14.7), fed events as the engine emits them and drawn on a
rich console 80 columns wide that records to a string."""

from __future__ import annotations

import io
from typing import Any

from rich.console import Console

from mailpacer.cli.progress import ProgressView, eta, status_line
from mailpacer.core.events import Event, EventKind


def progress(**changes: Any) -> dict[str, Any]:
    """A PROGRESS event's data, as the engine builds it, with ``changes``."""
    data: dict[str, Any] = {
        "total": 1000, "sent": 448, "failed": 3, "deferred": 12, "uncertain": 0,
        "cancelled": 0, "sent_this_run": 448, "failed_this_run": 3, "deferred_this_run": 12,
        "uncertain_this_run": 0, "throttles_this_run": 2, "rate": 12.5, "connections": 3,
        "target_connections": 3, "elapsed": 62.0, "state": "running", "reason": None,
        "limits": "4 connections",
    }  # fmt: skip
    data.update(changes)
    return data


def draw(*events: Event, width: int = 80, title: str = "pause1000-workers") -> list[str]:
    """Feed ``events`` to a view and return the lines it draws (and printed above it)."""
    console = Console(width=width, file=io.StringIO(), record=True, color_system=None)
    view = ProgressView(console, title)
    for event in events:
        view(event)
    console.print(view.render())
    return console.export_text().rstrip("\n").splitlines()


def event(kind: EventKind, data: dict[str, Any]) -> Event:
    """An event of campaign 1."""
    return Event(kind, 1, 0.0, data)


def test_the_line_fits_80_columns_with_a_real_bar_and_the_whole_elapsed_time() -> None:
    """At 80 columns nothing is cut: the bar keeps at least 10 cells, counts, percent and the
    elapsed time are whole; the counts read as `word number` pairs separated by `·`."""
    head, status = draw(event(EventKind.PROGRESS, progress()))
    assert len(head) <= 80 and len(status) <= 80
    assert head.startswith("pause1000-workers ")
    assert head.rstrip().endswith("448/1000  45% 0:01:02")
    assert head.count("━") + head.count("╸") + head.count("╺") >= 10
    assert status == "sent 448 · failed 3 · deferred 12 · 3 connections · 12.5 msg/s · ETA 0:00:43"


def test_waiting_shows_the_reason_not_an_eta() -> None:
    """While the quota is used up the line says waiting and why, with no rate or ETA (a
    count-down from the last rate would be false)."""
    reason = "daily quota used up; waiting until about 14:00, then continuing"
    _, status = draw(
        event(EventKind.PROGRESS, progress(state="waiting", reason=reason, connections=0))
    )
    assert "ETA" not in status and "msg/s" not in status
    assert status.startswith("sent 448 · failed 3 · deferred 12 · 0 connections · waiting: daily")
    assert len(status) <= 80


def test_learned_limits_and_state_changes_are_printed_once_above() -> None:
    """A LIMITS event prints its text once, labelled as limits (not as connections open now);
    a repeat is not printed again; a state change with a reason is printed."""
    limits = event(EventKind.LIMITS, {"limits": {}, "text": "4 connections · 30/min"})
    state = event(EventKind.STATE, {"state": "paused", "reason": "paused by user"})
    lines = draw(event(EventKind.PROGRESS, progress()), limits, limits, state)
    assert lines[:2] == ["learned limits: 4 connections · 30/min", "paused: paused by user"]


def test_a_long_title_is_shortened_and_eta_edges() -> None:
    """A long campaign name does not eat the bar; no ETA without a rate or work left."""
    head, _ = draw(event(EventKind.PROGRESS, progress()), title="x" * 60)
    assert head.startswith("x" * 19 + "…") and len(head) <= 80
    assert eta(0, 5.0) == eta(10, 0.0) == "-"
    assert status_line({}) == "sent 0 · failed 0 · deferred 0 · 0 connections · 0.0 msg/s · ETA -"
