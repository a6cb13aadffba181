"""``mailpacer demo --serve``: the demo campaign run by ``mailpacer serve`` on 127.0.0.1 (no token:
loopback only), to watch on the dashboard. The sandbox is its route ``sandbox``; the worker-qr
template and list are put in place as an upload would, attachments included."""

from __future__ import annotations

import asyncio
import csv
import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

from mailpacer.cli.send import err
from mailpacer.cli.serve import serve_app
from mailpacer.config.file import load_config
from mailpacer.sandbox import Sandbox, get_profile
from mailpacer.service import ServiceConfig, create_app
from mailpacer.service.creating import Request, create_campaign
from mailpacer.service.runtime import Service

__all__ = ["serve_demo"]

QUICK_ROWS = 40


def _list_writer(example: Path, quick: bool) -> Callable[[Path], str]:
    """Writes the recipients (the first 40 with ``quick``) and their attachments' folder."""

    def write(path: Path) -> str:
        source = example / "workers.csv"
        with source.open(encoding="utf-8-sig", newline="") as f:
            rows = list(csv.reader(f))
        keep = rows[: QUICK_ROWS + 1] if quick else rows
        with path.open("w", encoding="utf-8", newline="") as f:
            csv.writer(f, lineterminator="\r\n").writerows(keep)
        shutil.copytree(example / "files", path.parent / "files", dirs_exist_ok=True)
        return "demo"

    return write


def serve_demo(example: Path, out: Path, *, port: int, quick: bool, sender: str) -> None:
    """Serve until Ctrl-C; the campaign starts at once."""
    profile = get_profile("strict")
    with Sandbox(profile, port=0, mailbox_dir=out / "mailbox") as sb:
        toml = out / "mailpacer.toml"
        toml.write_text(f'[routes.sandbox]\nurl = "smtp://{sb.host}:{sb.port}"\n', "utf-8")
        data_dir = out / "service"
        shutil.copytree(example / "templates", data_dir / "templates" / "worker-qr")
        config = ServiceConfig(
            db=str(out / "mailpacer.db"),
            data_dir=data_dir,
            port=port,
            config=load_config(toml),
            environ={k: v for k, v in os.environ.items() if not k.startswith("MAILPACER_")},
        )
        app = create_app(config)

        async def started(bound: int) -> None:
            service: Service = app.state.service
            asked = Request(
                template="worker-qr", route="sandbox", sender=sender, name="worker-qr demo"
            )
            record, _ = await create_campaign(service, asked, _list_writer(example, quick), None)
            err.print(
                f"sandbox '{profile.name}' on {sb.host}:{sb.port}: at most "
                f"{profile.max_connections} connections; mailpacer is told none of this"
            )
            print(
                f"dashboard: http://127.0.0.1:{bound}/campaigns/{record.id}  (Ctrl-C stops)",
                file=sys.stderr,
                flush=True,
            )

        if not asyncio.run(serve_app(app, "127.0.0.1", port, started)):
            sys.exit(1)
