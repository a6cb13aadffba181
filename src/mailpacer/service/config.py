"""The service's settings: one frozen object, built at the edge (``mailpacer serve``)."""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from mailpacer.config.file import ConfigFile
from mailpacer.core.errors import UsageError
from mailpacer.delivery.scheduler import Timing

__all__ = ["TOKEN_ENV", "ServiceConfig", "is_loopback"]

#: the bearer token every request but ``/healthz`` must carry
TOKEN_ENV = "MAILPACER_API_TOKEN"  # noqa: S105 - the variable's name


def is_loopback(host: str) -> bool:
    """``127.0.0.1``, ``::1``, ``localhost``: only this machine can connect."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class ServiceConfig:
    """Everything ``serve`` needs; ``data_dir`` holds uploaded lists and templates."""

    db: str
    data_dir: Path
    token: str | None = field(default=None, repr=False)
    host: str = "127.0.0.1"
    port: int = 8025
    upload_limit: int = 100 * 1024 * 1024  #: bytes of one request body (CSV, zip, JSON)
    config: ConfigFile | None = None  #: mailpacer.toml: its [routes] are the named routes
    environ: Mapping[str, str] = field(default_factory=lambda: dict(os.environ), repr=False)
    timing: Timing = field(default_factory=Timing)
    poll: float = 1.0  #: how often the daemon looks for due campaigns
    worker: bool = True  #: run campaigns in this process (``--no-worker``: API only)
    settle_seconds: float = 30.0  #: how long pause/cancel wait for in-flight messages

    def check(self) -> None:
        """Refuse to listen beyond this machine without a token."""
        if not self.token and not is_loopback(self.host):
            raise UsageError(
                f"listening on {self.host} needs a token: set {TOKEN_ENV} (or listen on 127.0.0.1)"
            )
        if self.upload_limit < 1:
            raise UsageError("the upload limit must be at least 1 byte")
