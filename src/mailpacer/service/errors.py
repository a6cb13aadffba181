"""mailpacer's errors as HTTP answers: every 4xx body is an :class:`ErrorOut`.

Foreign errors (FastAPI's request validation, HTTP exceptions) are translated here, once.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from mailpacer.core.errors import (
    ConfigError,
    InputError,
    InvalidTransition,
    MailpacerError,
    NotFound,
    Problem,
    UsageError,
)
from mailpacer.service.models import ErrorOut, ProblemOut

__all__ = ["ERRORS", "ApiError", "install"]

#: the error answers every API route documents
ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorOut} for code in (400, 401, 404, 409, 413, 415, 422)
}


class ApiError(MailpacerError):
    """An answer other than 2xx, raised by the resources."""

    def __init__(self, status: int, message: str, problems: list[Problem] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.problems = problems or []


def problem_out(p: Problem) -> ProblemOut:
    """A :class:`Problem` as the API shows it."""
    return ProblemOut(message=p.message, file=p.file, row=p.row, line=p.line, column=p.column)


def _answer(status: int, message: str, problems: list[ProblemOut] | None = None) -> JSONResponse:
    body = ErrorOut(error=message, problems=problems or [])
    return JSONResponse(body.model_dump(), status_code=status)


def _status(exc: MailpacerError) -> int:
    if isinstance(exc, ApiError):
        return exc.status
    if isinstance(exc, NotFound):
        return 404
    if isinstance(exc, InvalidTransition):
        return 409
    if isinstance(exc, InputError | ConfigError | UsageError):
        return 422
    return 500


def install(app: FastAPI) -> None:
    """Register the handlers on ``app``."""

    async def mailpacer_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, MailpacerError)
        problems = getattr(exc, "problems", [])
        listed = [problem_out(p) for p in problems if isinstance(p, Problem)]
        status = _status(exc)
        text = str(exc) if status != 500 else "internal error: the store could not be used"
        return _answer(status, text, listed)

    async def validation_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        listed = [
            ProblemOut(
                message=str(e.get("msg", "invalid")),
                file=".".join(str(part) for part in e.get("loc", ())) or None,
            )
            for e in exc.errors()
        ]
        return _answer(422, "the request is not valid", listed)

    async def http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, HTTPException)
        response = _answer(exc.status_code, str(exc.detail))
        for key, value in (exc.headers or {}).items():
            response.headers[key] = value
        return response

    app.add_exception_handler(MailpacerError, mailpacer_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(HTTPException, http_error)
