"""Live progress on the terminal (rich), fed by engine events; the engine does not import it.

Two lines, laid out for the console's width (80 columns included)::

    workers  ━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━╺━━━━━━━━━━━━━   448/1000  45%   0:01:02
    sent 448 · failed 3 · deferred 12 · 3 connections · 12.3 msg/s · ETA 0:00:45

While the route's quota is used up the second line says so instead of a rate and an ETA (there is
none until the window resets). Learned limits and state changes are printed above, once each.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import TracebackType
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from mailpacer.core.events import Event, EventKind

_TITLE_MAX = 20


def clock(seconds: float) -> str:
    """``0:01:02``: hours, minutes, seconds."""
    s = max(0, int(seconds))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def eta(remaining: int, rate: float) -> str:
    """The time left at ``rate`` messages a second, or ``-`` when it cannot be known."""
    if rate <= 0 or remaining <= 0:
        return "-"
    return clock(remaining / rate)


def status_line(data: Mapping[str, Any]) -> str:
    """The second line: counts, each with its word first, then connections and pace."""
    total, sent = int(data.get("total", 0)), int(data.get("sent", 0))
    failed = int(data.get("failed", 0))
    parts = [f"sent {sent}", f"failed {failed}", f"deferred {data.get('deferred', 0)}"]
    if int(data.get("uncertain", 0)):
        parts.append(f"uncertain {data['uncertain']}")
    if int(data.get("cancelled", 0)):
        parts.append(f"cancelled {data['cancelled']}")
    open_now = int(data.get("connections", 0))
    parts.append(f"{open_now} connection{'s' if open_now != 1 else ''}")
    if data.get("state") == "waiting":
        reason = str(data.get("reason") or "the route's quota is used up")
        parts.append(f"waiting: {reason}")
    else:
        rate = float(data.get("rate", 0.0))
        parts.append(f"{rate:.1f} msg/s")
        parts.append(f"ETA {eta(total - sent - failed, rate)}")
    return " · ".join(parts)


class ProgressView:
    """The live two-line display (see the module docstring); an engine observer."""

    def __init__(self, console: Console, title: str) -> None:
        self.console = console
        self.title = title if len(title) <= _TITLE_MAX else title[: _TITLE_MAX - 1] + "…"
        self._data: dict[str, Any] = {}
        self._limits = ""
        self._live = Live(
            self.render(),
            console=console,
            transient=False,
            auto_refresh=False,
            redirect_stderr=False,
        )

    def __enter__(self) -> ProgressView:
        self._live.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def stop(self) -> None:
        """Stop the live display and leave the terminal as it was (idempotent)."""
        self._live.stop()

    def render(self) -> Group:
        """The two lines for the current data, fitted to the console's width."""
        data = self._data
        total, sent = int(data.get("total", 0)), int(data.get("sent", 0))
        done = sent + int(data.get("failed", 0)) + int(data.get("cancelled", 0))
        percent = f"{100 * done // total:>3d}%" if total else "  -%"
        head = Table.grid(padding=(0, 1), expand=True)
        head.add_column(no_wrap=True)
        head.add_column(ratio=1, min_width=10)
        head.add_column(no_wrap=True, justify="right")
        head.add_column(no_wrap=True, justify="right")
        head.add_column(no_wrap=True, justify="right")
        head.add_row(
            Text(self.title, style="bold"),
            ProgressBar(total=max(total, 1), completed=min(done, max(total, 1))),
            f"{sent}/{total}",
            percent,
            clock(float(data.get("elapsed", 0.0))),
        )
        line = Text(status_line(data), no_wrap=True, overflow="ellipsis")
        if data.get("state") == "waiting":
            line.stylize("yellow")
        return Group(head, line)

    def _refresh(self) -> None:
        self._live.update(self.render(), refresh=self._live.is_started)

    def __call__(self, event: Event) -> None:
        """Observer: redraw on STARTED / PROGRESS / FINISHED; print limits and state changes as
        lines above the display."""
        data = event.data
        if event.kind in (EventKind.STARTED, EventKind.PROGRESS):
            self._data = dict(data)
            self._refresh()
        elif event.kind is EventKind.FINISHED:
            self._data.update({k: data[k] for k in ("total", "sent", "failed") if k in data})
            self._data["cancelled"] = data.get("cancelled", self._data.get("cancelled", 0))
            self._data["state"] = data.get("state", self._data.get("state"))
            self._data["connections"] = 0
            self._refresh()
        elif event.kind is EventKind.LIMITS:
            text = str(data.get("text", ""))
            if text and text != self._limits:
                self._limits = text
                self.console.print(f"[cyan]learned limits:[/] {text}")
        elif event.kind is EventKind.STATE and data.get("reason"):
            self.console.print(f"[yellow]{data.get('state')}:[/] {data.get('reason')}")
