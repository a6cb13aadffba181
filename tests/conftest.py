"""Fixtures shared by every test layer."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from mailpacer.sandbox import Profile, Sandbox, get_profile


@pytest.fixture
def sandbox() -> Iterator[Callable[..., Sandbox]]:
    """Start sandboxes on 127.0.0.1 (any free port); all are stopped at teardown.

    ``sandbox("strict", greylist_seconds=1.0)``: a profile name or :class:`Profile`, profile
    fields to override, and ``mailbox_dir=`` / ``keep_data=`` / ``password=`` / ``port=`` (to
    start one again where another was) for the sandbox.
    """
    started: list[Sandbox] = []

    def start(
        profile: str | Profile = "strict",
        *,
        mailbox_dir: Path | None = None,
        keep_data: bool = True,
        password: str | None = None,
        port: int = 0,
        **overrides: Any,
    ) -> Sandbox:
        base = get_profile(profile) if isinstance(profile, str) else profile
        sb = Sandbox(
            dataclasses.replace(base, **overrides),
            port=port,
            mailbox_dir=mailbox_dir,
            keep_data=keep_data,
            password=password,
        )
        sb.__enter__()
        started.append(sb)
        return sb

    yield start
    for sb in reversed(started):
        sb.close()


@pytest.fixture
def unused_port() -> int:
    """A loopback TCP port that nothing listens on (bound, then released)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
