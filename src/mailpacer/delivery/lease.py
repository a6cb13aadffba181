"""Who holds a lease on a message, and whether that process may still be running."""

from __future__ import annotations

import os
import socket
import uuid
from pathlib import Path

__all__ = ["is_alive", "worker_identity"]


def worker_identity() -> str:
    """``host:pid:random`` — who holds a lease."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def is_alive(worker: str) -> bool:
    """Whether the process holding a lease may still be running (same host: check the pid)."""
    host, _, rest = worker.partition(":")
    if host != socket.gethostname():
        return True  # another machine: only its lease expiry tells
    pid_text = rest.partition(":")[0]
    if not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return False  # an earlier run in this process (tests) or a recycled pid
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return not _zombie(pid)


def _zombie(pid: int) -> bool:
    """Killed but not yet reaped by its parent (Linux; elsewhere: not known, so no): it holds
    nothing any more, though ``kill(pid, 0)`` still finds it."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[:1] == ["Z"]
