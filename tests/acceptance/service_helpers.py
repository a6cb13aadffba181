"""Helpers for tests that run the real ``mailpacer serve`` (uvicorn on 127.0.0.1) against the
sandbox."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx

ENV = {k: v for k, v in os.environ.items() if not k.startswith("MAILPACER_")}
TOKEN = "test-token-Zk3"
SENDER = "HR <hr@example.com>"
TEMPLATE = {
    "name": "hello",
    "languages": {
        "en": {"subject": "Hello {{ name }}", "text": "Dear {{ name }},\nyour code is {{ code }}."}
    },
}


def free_port() -> int:
    """A loopback port nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write_config(folder: Path, sb: Any, extra: str = "") -> Path:
    """A mailpacer.toml whose route ``sandbox`` is ``sb``."""
    path = folder / "mailpacer.toml"
    path.write_text(
        f'[routes.sandbox]\nurl = "smtp://{sb.host}:{sb.port}"\n{extra}', encoding="utf-8"
    )
    return path


class Served:
    """One ``mailpacer serve`` process; :meth:`start` again after :meth:`kill` is a restart."""

    def __init__(self, folder: Path, config: Path, *args: str, token: str | None = TOKEN) -> None:
        self.folder = folder
        self.db = folder / "mailpacer.db"
        self.config = config
        self.args = args
        self.token = token
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None
        self._log: Any = None

    def command(self) -> list[str]:
        """The command line."""
        return [
            sys.executable, "-m", "mailpacer", "serve", "--db", str(self.db),
            "--port", str(self.port), "--config", str(self.config), *self.args,
        ]  # fmt: skip

    def start(self, timeout: float = 30.0) -> Served:
        """Start it and wait until ``/healthz`` answers (bounded)."""
        env = {**ENV, **({"MAILPACER_API_TOKEN": self.token} if self.token else {})}
        if self._log is not None:
            self._log.close()
        self._log = (self.folder / "serve.log").open("a")
        self.process = subprocess.Popen(
            self.command(), cwd=self.folder, env=env, stdout=self._log, stderr=self._log
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"serve exited: {(self.folder / 'serve.log').read_text()}")
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise AssertionError("serve did not answer /healthz")

    def client(self, token: str | None = "default", **options: Any) -> httpx.Client:  # noqa: S107
        """An HTTP client with the token (``None``: without one)."""
        token = self.token if token == "default" else token
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, **{"timeout": 60, **options})

    def kill(self) -> None:
        """SIGKILL: no clean-up at all."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> int:
        """SIGTERM and wait (bounded); the exit code."""
        if self._log is not None:
            self._log.close()
            self._log = None
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else 0
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait(timeout=10)


def recipients(count: int, *, nouser: int = 0, prefix: str = "w") -> list[dict[str, str]]:
    """``count`` recipients; the first ``nouser`` are refused by the sandbox (unknown user)."""
    return [
        {
            "email": f"{'nouser' if i < nouser else prefix}{i}@example.com",
            "name": f"W{i}",
            "code": f"C{i:05d}",
        }
        for i in range(count)
    ]


def create(client: httpx.Client, rows: list[dict[str, str]], **fields: Any) -> dict[str, Any]:
    """Create a campaign from JSON recipients with the ``hello`` template; its JSON."""
    body = {"template": "hello", "route": "sandbox", "sender": SENDER, "recipients": rows}
    response = client.post("/api/campaigns", json={**body, **fields})
    assert response.status_code == 201, response.text
    data: dict[str, Any] = response.json()
    return data


def wait_for(
    client: httpx.Client,
    campaign: int,
    check: Callable[[dict[str, Any]], bool],
    timeout: float = 60.0,
) -> dict[str, Any]:
    """Poll the campaign until ``check(json)`` holds; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        data: dict[str, Any] = client.get(f"/api/campaigns/{campaign}").json()
        if check(data):
            return data
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out; campaign is {data}")
        time.sleep(0.05)


def sse_events(response: httpx.Response, limit: int = 100_000) -> Iterator[tuple[str, Any]]:
    """(event, data) pairs from an SSE stream (at most ``limit``)."""
    kind = ""
    count = 0
    for line in response.iter_lines():
        if line.startswith("event: "):
            kind = line[7:]
        elif line.startswith("data: "):
            yield kind, json.loads(line[6:])
            count += 1
            if count >= limit:
                return
