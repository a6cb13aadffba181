"""Who holds a lease, and whether that process may still be running: a process that died holds
nothing, also while its parent has not reaped it yet (a zombie still answers ``kill(pid, 0)``)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from mailpacer.delivery.lease import is_alive, worker_identity


def identity_of(pid: int) -> str:
    return f"{socket.gethostname()}:{pid}:0123abcd"


def test_this_process_is_not_alive_for_its_own_old_leases() -> None:
    """An earlier run in this process (or a recycled pid) holds nothing now."""
    assert not is_alive(worker_identity())


def test_a_running_process_on_this_machine_is_alive_and_a_gone_one_is_not() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        assert is_alive(identity_of(child.pid))
    finally:
        child.kill()
        child.wait(timeout=10)
    assert not is_alive(identity_of(child.pid))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="zombies are read from /proc")
def test_a_killed_process_not_yet_reaped_is_not_alive() -> None:
    """SIGKILLed, its parent (here: this test) not yet waiting for it: a zombie, dead."""
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        assert is_alive(identity_of(child.pid))
        os.kill(child.pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while is_alive(identity_of(child.pid)) and time.monotonic() < deadline:
            time.sleep(0.01)
        os.kill(child.pid, 0)  # still there: not reaped
        assert not is_alive(identity_of(child.pid))
    finally:
        child.kill()
        child.wait(timeout=10)


def test_another_machine_is_alive_until_its_lease_ends() -> None:
    assert is_alive("elsewhere.example:1:0123abcd")
