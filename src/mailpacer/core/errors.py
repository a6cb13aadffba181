"""One exception root for mailpacer; every error a user can see derives from it.

Each subclass also inherits the builtin that fits, carries structured fields, and names the exit
code the CLI uses for it. Foreign exceptions (aiosmtplib, sqlite3, OSError) are translated once, at
the boundary where they occur.
"""

from __future__ import annotations

from dataclasses import dataclass


class MailpacerError(Exception):
    """Root of every mailpacer error. ``exit_code`` is what the CLI exits with."""

    exit_code: int = 1


class UsageError(MailpacerError, ValueError):
    """A flag, URL or option value is wrong; nothing was started."""

    exit_code = 2


class ConfigError(MailpacerError, ValueError):
    """A configuration file or environment variable is wrong (key and line where known)."""

    exit_code = 2

    def __init__(
        self,
        message: str,
        *,
        key: str | None = None,
        line: int | None = None,
        file: str | None = None,
    ) -> None:
        super().__init__(message)
        self.key = key
        self.line = line
        self.file = file


@dataclass(frozen=True)
class Problem:
    """One problem found in campaign input, located as precisely as we can."""

    message: str
    file: str | None = None
    line: int | None = None
    column: int | None = None
    row: int | None = None  #: 1-based CSV data row (header is row 0), when the problem is a row

    def where(self) -> str:
        """``file:line:column`` (or ``file row N``) as a prefix for messages."""
        if self.file is None:
            return ""
        parts = [self.file]
        if self.line is not None:
            parts.append(str(self.line))
            if self.column is not None:
                parts.append(str(self.column))
            return ":".join(parts)
        if self.row is not None:
            return f"{self.file} row {self.row}"
        return self.file

    def __str__(self) -> str:
        where = self.where()
        return f"{where}: {self.message}" if where else self.message


class InputError(MailpacerError, ValueError):
    """Campaign input (recipients, templates, attachments) is invalid; nothing was sent."""

    exit_code = 3

    def __init__(self, problems: list[Problem] | Problem | str) -> None:
        if isinstance(problems, str):
            problems = [Problem(problems)]
        elif isinstance(problems, Problem):
            problems = [problems]
        self.problems: list[Problem] = problems
        head = str(problems[0]) if problems else "invalid input"
        more = f" (and {len(problems) - 1} more problems)" if len(problems) > 1 else ""
        super().__init__(head + more)


class RouteError(MailpacerError, ConnectionError):
    """The route cannot be used (unreachable, TLS failure, wrong password): campaign paused."""

    exit_code = 4

    def __init__(self, message: str, *, code: int | None = None, reply: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.reply = reply


class StoreError(MailpacerError, RuntimeError):
    """The store refused an operation or is unusable."""

    exit_code = 5


class StoreUnavailable(StoreError):
    """The database cannot be reached (refused, dropped, restarting): nothing was changed by
    the operation that raised it, or its outcome is unknown; trying again later may work."""


class InvalidTransition(StoreError):
    """A message or campaign state change that the transition table does not allow."""

    def __init__(self, kind: str, old: str, new: str) -> None:
        super().__init__(f"{kind} cannot go from {old!r} to {new!r}")
        self.kind = kind
        self.old = old
        self.new = new


class NotFound(MailpacerError, LookupError):
    """A campaign, message or profile that does not exist."""

    exit_code = 2


class SandboxError(MailpacerError, RuntimeError):
    """The sandbox SMTP server could not start (port in use, unknown profile)."""

    exit_code = 2
