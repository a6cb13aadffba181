"""What the sandbox saw: every accepted message and a few counters, in memory and optionally in a
mailbox directory (``mailbox.jsonl`` plus one ``.eml`` per message).

The server's event loop writes; tests read snapshots from any thread, so every read copies under a
lock. Recording one message is an append and a few integer increments; the JSONL file is buffered
and flushed by the server periodically and at close.
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

_MESSAGE_ID = re.compile(rb"^message-id:[ \t]*([^\r\n]*(?:\r?\n[ \t][^\r\n]*)*)", re.I | re.M)


def message_id_of(data: bytes) -> str | None:
    """The Message-ID header of raw message bytes (angle brackets kept), or None."""
    end = data.find(b"\r\n\r\n")
    head = data if end < 0 else data[: end + 2]
    match = _MESSAGE_ID.search(head)
    if match is None:
        return None
    value = b" ".join(match.group(1).split()).decode("ascii", "replace")
    return value or None


@dataclass(frozen=True, slots=True)
class AcceptedMessage:
    """One message the sandbox accepted (also those dropped after DATA)."""

    time: float  #: wall-clock seconds since the epoch
    connection_id: int
    mail_from: str
    rcpt_tos: tuple[str, ...]
    message_id: str | None
    size: int  #: bytes of DATA after dot-unstuffing
    dropped: bool = False  #: accepted, then the connection closed without a reply
    data: bytes | None = field(default=None, repr=False)  #: raw message, when kept

    def as_json(self) -> dict[str, object]:
        """The JSONL mailbox line for this message (no body)."""
        return {
            "time": self.time,
            "connection": self.connection_id,
            "mail_from": self.mail_from,
            "rcpt_tos": list(self.rcpt_tos),
            "message_id": self.message_id,
            "size": self.size,
            "dropped": self.dropped,
        }


@dataclass(frozen=True)
class Counters:
    """A snapshot of what the sandbox did since it started."""

    connections_opened: int = 0  #: TCP connections accepted (admitted or refused)
    #: over the connection limit: greeted with ``connection_reply`` and closed, or closed at once
    connections_refused: int = 0
    open_connections: int = 0  #: admitted connections open now
    peak_concurrent: int = 0  #: most admitted connections open at once (all IPs)
    accepted: int = 0  #: messages accepted (including dropped ones)
    dropped: int = 0  #: accepted, then closed without a reply
    internal_errors: int = 0  #: exceptions inside the sandbox (should stay 0)
    #: commands that arrived before the previous command was answered: round trips a
    #: pipelining client saved (2 per message for MAIL, RCPT and DATA sent at once)
    pipelined: int = 0
    #: commands read after the sandbox closed their connection on purpose, ignored unanswered
    ignored_after_close: int = 0
    replies: dict[int, int] = field(default_factory=dict)  #: final reply lines by code
    #: every 4xx/5xx reply by (code, full text), e.g. ``(421, "421 Too many ...")``
    refusals: dict[tuple[int, str], int] = field(default_factory=dict)

    def count(self, code: int) -> int:
        """Replies sent with ``code`` (0 when none)."""
        return self.replies.get(code, 0)


class Recorder:
    """The mutable record behind :class:`Counters` and the message list."""

    def __init__(self, *, keep_data: bool = True, mailbox_dir: Path | None = None) -> None:
        self.keep_data = keep_data
        self._lock = threading.Lock()
        self._messages: list[AcceptedMessage] = []
        self._replies: dict[int, int] = {}
        self._refusals: dict[tuple[int, str], int] = {}
        self.connections_opened = 0
        self.connections_refused = 0
        self.internal_errors = 0
        self.dropped = 0
        self.pipelined_commands = 0
        self.ignored_after_close = 0
        self.open_connections = 0
        self.peak_concurrent = 0
        self._mailbox_dir = mailbox_dir
        self._jsonl: IO[str] | None = None
        if mailbox_dir is not None:
            mailbox_dir.mkdir(parents=True, exist_ok=True)
            self._jsonl = (mailbox_dir / "mailbox.jsonl").open("a", encoding="utf-8")

    def opened(self, admitted: bool, open_now: int, peak: int) -> None:
        """Count one accepted TCP connection (refused at the greeting when not ``admitted``)."""
        with self._lock:
            self.connections_opened += 1
            if not admitted:
                self.connections_refused += 1
            self.open_connections = open_now
            self.peak_concurrent = peak

    def closed(self, open_now: int) -> None:
        """An admitted connection gave its slot back."""
        with self._lock:
            self.open_connections = open_now

    def internal_error(self) -> None:
        """Count an exception inside the sandbox."""
        with self._lock:
            self.internal_errors += 1

    def pipelined(self) -> None:
        """Count one command that arrived before the previous one was answered."""
        with self._lock:
            self.pipelined_commands += 1

    def ignored(self) -> None:
        """Count one command read after its connection was closed on purpose."""
        with self._lock:
            self.ignored_after_close += 1

    def reply(self, line: str) -> None:
        """Count one reply line the server sent (continuation lines ``250-`` are not counted)."""
        if len(line) > 3 and line[3] == "-":
            return
        try:
            code = int(line[:3])
        except ValueError:
            return
        with self._lock:
            self._replies[code] = self._replies.get(code, 0) + 1
            if code >= 400:
                key = (code, line)
                self._refusals[key] = self._refusals.get(key, 0) + 1

    def message(
        self,
        *,
        time: float,
        connection_id: int,
        mail_from: str,
        rcpt_tos: list[str],
        data: bytes,
        dropped: bool,
    ) -> AcceptedMessage:
        """Record one accepted message; writes it to the mailbox directory when there is one."""
        record = AcceptedMessage(
            time=time,
            connection_id=connection_id,
            mail_from=mail_from,
            rcpt_tos=tuple(rcpt_tos),
            message_id=message_id_of(data),
            size=len(data),
            dropped=dropped,
            data=data if self.keep_data else None,
        )
        with self._lock:
            self._messages.append(record)
            if dropped:
                self.dropped += 1
            number = len(self._messages)
        if self._jsonl is not None and self._mailbox_dir is not None:
            self._jsonl.write(json.dumps(record.as_json(), ensure_ascii=False) + "\n")
            (self._mailbox_dir / f"{number:08d}.eml").write_bytes(data)
        return record

    def messages(self) -> list[AcceptedMessage]:
        """A copy of the accepted messages, oldest first."""
        with self._lock:
            return list(self._messages)

    def counters(self) -> Counters:
        """A consistent snapshot of the counters."""
        with self._lock:
            return Counters(
                connections_opened=self.connections_opened,
                connections_refused=self.connections_refused,
                open_connections=self.open_connections,
                peak_concurrent=self.peak_concurrent,
                accepted=len(self._messages),
                dropped=self.dropped,
                internal_errors=self.internal_errors,
                pipelined=self.pipelined_commands,
                ignored_after_close=self.ignored_after_close,
                replies=dict(self._replies),
                refusals=dict(self._refusals),
            )

    def flush(self) -> None:
        """Push buffered mailbox lines to the file."""
        if self._jsonl is not None:
            self._jsonl.flush()

    def close(self) -> None:
        """Flush and close the mailbox file (the in-memory record stays readable)."""
        if self._jsonl is not None:
            self._jsonl.close()
            self._jsonl = None
