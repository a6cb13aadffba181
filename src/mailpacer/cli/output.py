"""What the campaign commands print on the terminal: the stderr console and the final report
(a local run's and a followed service run's alike)."""

from __future__ import annotations

import json

import click
from rich.console import Console

from mailpacer.delivery.report import Report

__all__ = ["err", "print_report"]

err = Console(stderr=True, soft_wrap=True)  # log files get whole lines, not 80 columns


def print_report(report: Report, *, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(report.to_dict(), ensure_ascii=False))
        return
    err.print(
        f"campaign {report.campaign} ({report.name}): [bold]{report.state}[/]"
        + (f" — {report.reason}" if report.reason else "")
    )
    err.print(
        f"  sent {report.sent}/{report.total} · failed {report.failed}"
        f" · uncertain {report.uncertain}"
        f" · deferred {report.deferred} · queued {report.queued} · cancelled {report.cancelled}"
    )
    err.print(
        f"  this run: {report.sent_this_run} sent in {report.seconds:.1f} s "
        f"({report.throughput:.1f} msg/s), {report.throttles} throttle replies"
    )
    if len(report.routes) > 1:  # a group: what each route sent, learned, or why it failed
        for route in report.routes:
            learned = f" — learned: {route.limits_text}" if route.limits_text else ""
            err.print(f"  route {route.route}: sent {route.sent}{learned}")
            if route.error:
                err.print(f"    [red]failed[/]: {route.error} (its messages went to the others)")
    elif report.limits_text:
        err.print(f"  learned: {report.limits_text}")
    for failure in report.failures[:20]:
        err.print(f"  [red]failed[/] {failure.email}: {failure.code or ''} {failure.reason}")
    if len(report.failures) > 20:
        err.print(f"  … and {len(report.failures) - 20} more (mailpacer status {report.campaign})")
