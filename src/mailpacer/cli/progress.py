"""Live progress on the terminal (rich), fed by engine events; the engine does not import it."""

from __future__ import annotations

from types import TracebackType

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from mailpacer.core.events import Event, EventKind


def _eta(remaining: int, rate: float) -> str:
    if rate <= 0 or remaining <= 0:
        return "-"
    seconds = int(remaining / rate)
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


class ProgressView:
    """A progress bar with sent / failed / deferred, connections, rate, ETA and learned limits."""

    def __init__(self, console: Console, title: str) -> None:
        self.console = console
        self.title = title
        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total} sent"),
            TextColumn("[red]{task.fields[failed]} failed"),
            TextColumn("[yellow]{task.fields[deferred]} deferred"),
            TextColumn("{task.fields[connections]} conn"),
            TextColumn("{task.fields[rate]:.1f} msg/s"),
            TextColumn("ETA {task.fields[eta]}"),
            TimeElapsedColumn(),
            console=console,
            transient=False,
        )
        self._task: TaskID | None = None
        self._limits = ""

    def __enter__(self) -> ProgressView:
        self._progress.start()
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
        self._progress.stop()

    def __call__(self, event: Event) -> None:
        """Observer: update the bar from PROGRESS, print limits and state changes as lines."""
        data = event.data
        if event.kind in (EventKind.STARTED, EventKind.PROGRESS):
            total = int(data.get("total", 0))
            sent = int(data.get("sent", 0))
            fields = {
                "failed": data.get("failed", 0),
                "deferred": data.get("deferred", 0),
                "connections": f"{data.get('connections', 0)}/{data.get('target_connections', 0)}",
                "rate": float(data.get("rate", 0.0)),
                "eta": _eta(
                    total - sent - int(data.get("failed", 0)), float(data.get("rate", 0.0))
                ),
            }
            if self._task is None:
                self._task = self._progress.add_task(
                    self.title, total=total, completed=sent, **fields
                )
            else:
                self._progress.update(self._task, total=total, completed=sent, **fields)
        elif event.kind is EventKind.FINISHED and self._task is not None:
            self._progress.update(
                self._task, total=int(data.get("total", 0)), completed=int(data.get("sent", 0))
            )
        elif event.kind is EventKind.LIMITS:
            text = str(data.get("text", ""))
            if text and text != self._limits:
                self._limits = text
                self._progress.console.print(f"[cyan]learned:[/] {text}")
        elif event.kind is EventKind.STATE and data.get("reason"):
            self._progress.console.print(f"[yellow]{data.get('state')}:[/] {data.get('reason')}")
