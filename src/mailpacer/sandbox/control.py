""":class:`Sandbox`: start a sandbox SMTP server from Python, synchronously or inside a loop.

``with Sandbox(...)`` runs the server's own event loop in a background thread (for plain tests
and scripts); ``async with Sandbox(...)`` serves on the running loop. Either way ``host``/``port``
are the bound address and :attr:`Sandbox.messages` / :attr:`Sandbox.counters` are snapshots that
may be read from any thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import tempfile
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

from mailpacer.core.errors import SandboxError
from mailpacer.sandbox.builtin import get_profile
from mailpacer.sandbox.profiles import Profile
from mailpacer.sandbox.records import AcceptedMessage, Counters, Recorder
from mailpacer.sandbox.server import SandboxState, start_server, stop_server

if TYPE_CHECKING:
    from mailpacer.sandbox.handler import SandboxHandler
    from mailpacer.sandbox.tls import Certificate

USER = "sandbox"  #: the one user of profiles with AUTH
_START_TIMEOUT = 30.0
_FLUSH_EVERY = 0.2


class Sandbox:
    """A sandbox SMTP server for one profile, usable as a sync or async context manager."""

    def __init__(
        self,
        profile: Profile | str = "strict",
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        mailbox_dir: str | Path | None = None,
        keep_data: bool = True,
        password: str | None = None,
    ) -> None:
        self.profile = get_profile(profile) if isinstance(profile, str) else profile
        self.host = host
        self.port = port
        self.mailbox_dir = Path(mailbox_dir) if mailbox_dir is not None else None
        #: ``(user, password)`` when the profile requires AUTH, else None
        self.credentials: tuple[str, str] | None = None
        if self.profile.auth_tls:
            self.credentials = (USER, password or secrets.token_urlsafe(12))
        self.certificate: Certificate | None = None
        self._recorder = Recorder(keep_data=keep_data, mailbox_dir=None)
        self._keep_data = keep_data
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._server: asyncio.Server | None = None
        self._state: SandboxState | None = None
        self._flusher: asyncio.Task[None] | None = None
        # background-thread mode
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._started = threading.Event()
        self._start_error: BaseException | None = None

    # -- what tests read -------------------------------------------------------------------

    @property
    def messages(self) -> list[AcceptedMessage]:
        """Every accepted message so far (a copy)."""
        return self._recorder.messages()

    @property
    def counters(self) -> Counters:
        """Connections, replies by code, refusals by text (a snapshot)."""
        return self._recorder.counters()

    @property
    def cafile(self) -> Path | None:
        """CA certificate that signed the STARTTLS certificate (auth profiles only)."""
        return self.certificate.cafile if self.certificate else None

    @property
    def certificate_pem(self) -> str | None:
        """That CA certificate as PEM text."""
        return self.certificate.ca_pem if self.certificate else None

    @property
    def handler(self) -> SandboxHandler:
        """The running sandbox's aiosmtpd hooks (``handle_MAIL``, ``handle_RCPT``, ...).

        Tests inject faults by replacing one on this object before connecting (connections read
        the hooks when they open), as aiosmtplib's own tests do with their server's handler.
        """
        if self._state is None:
            raise SandboxError("sandbox not started")
        return self._state.handler

    def wait_idle(self, timeout: float = 5.0, *, at_most: int = 0) -> bool:
        """Wait (sync) until at most ``at_most`` admitted connections are open; False if
        ``timeout`` passed first."""
        deadline = time.monotonic() + timeout
        while self.counters.open_connections > at_most:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.005)
        return True

    def __repr__(self) -> str:
        c = self.counters
        return (
            f"<Sandbox {self.profile.name} {self.host}:{self.port} accepted={c.accepted} "
            f"open={c.open_connections} refused={c.connections_refused}>"
        )

    # -- async life cycle ------------------------------------------------------------------

    async def start(self) -> None:
        """Listen (on the running loop). :class:`SandboxError` if the address is unusable."""
        if self._server is not None:
            raise SandboxError("sandbox already started")
        self._tmp = tempfile.TemporaryDirectory(prefix="mailpacer-sandbox-")
        tls_context = None
        if self.profile.auth_tls:
            from mailpacer.sandbox.tls import make_certificate  # cryptography: only when needed

            self.certificate = make_certificate(
                Path(self._tmp.name), self.profile.hostname, self.host
            )
            tls_context = self.certificate.server_context()
        try:
            self._recorder = Recorder(keep_data=self._keep_data, mailbox_dir=self.mailbox_dir)
        except OSError as exc:
            self._cleanup_tmp()
            raise SandboxError(f"cannot write mailbox in {self.mailbox_dir}: {exc}") from exc
        self._state = SandboxState(
            self.profile, self._recorder, credentials=self.credentials, tls_context=tls_context
        )
        try:
            self._server = await start_server(self._state, self.host, self.port)
        except OSError as exc:
            self._recorder.close()
            self._cleanup_tmp()
            reason = exc.strerror or str(exc)
            raise SandboxError(f"cannot listen on {self.host}:{self.port}: {reason}") from exc
        self.port = int(self._server.sockets[0].getsockname()[1])
        if self.mailbox_dir is not None:
            self._flusher = asyncio.create_task(self._flush_periodically())

    async def aclose(self) -> None:
        """Stop listening, cut open connections, flush the mailbox."""
        if self._server is None or self._state is None:
            return
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
            self._flusher = None
        await stop_server(self._server, self._state)
        self._server = None
        self._recorder.close()
        self._cleanup_tmp()

    async def _flush_periodically(self) -> None:
        while True:
            await asyncio.sleep(_FLUSH_EVERY)
            self._recorder.flush()

    def _cleanup_tmp(self) -> None:
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    async def __aenter__(self) -> Sandbox:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    # -- sync life cycle: own loop in a background thread ----------------------------------

    def __enter__(self) -> Sandbox:
        self._started.clear()
        self._start_error = None
        self._thread = threading.Thread(
            target=self._thread_main, name=f"sandbox-{self.profile.name}", daemon=True
        )
        self._thread.start()
        if not self._started.wait(_START_TIMEOUT):
            raise SandboxError("sandbox did not start in time")
        if self._start_error is not None:
            self._thread.join()
            raise self._start_error
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Stop a sandbox started with ``with`` (idempotent)."""
        if self._thread is None:
            return
        if self._loop is not None and self._stop is not None:
            with contextlib.suppress(RuntimeError):  # loop already finished
                self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join()
        self._thread = None

    def _thread_main(self) -> None:
        asyncio.run(self._thread_serve())

    async def _thread_serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        try:
            await self.start()
        except BaseException as exc:
            self._start_error = exc
            self._started.set()
            return
        self._started.set()
        try:
            await self._stop.wait()
        finally:
            await self.aclose()
