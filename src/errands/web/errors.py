"""The API's error answers: every failure is a JSON body `{"error": "...", "detail": ...}` with the status that
names it, never a traceback.

errands' own errors map by type (the first match in `STATUS_FOR` wins, so subclasses come first); a route that
must refuse on its own raises `ApiError`. Anything else is a bug of ours: a 500 with a JSON body, logged.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from errands import errors
from errands.web.responses import JSONResponse

log = logging.getLogger("errands.web")


class ApiError(Exception):
    """A refusal the web layer decides itself (no session, CSRF, role): status, message, headers."""

    def __init__(self, status: int, message: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


def _status_table() -> list[tuple[type[Exception], int]]:
    """errands errors -> HTTP status, subclasses before their bases."""
    return [
        (errors.AuthFailed, 401),  # an InvalidInput
        (errors.UserExists, 409),  # an InvalidInput
        (errors.InvalidInput, 400),
        (errors.JobNotFound, 404),
        (errors.UserNotFound, 404),
        (errors.TokenNotFound, 404),
        (errors.BulkRunNotFound, 404),
        (errors.InvalidTransition, 409),
        (errors.RateLimited, 429),
        (errors.StoreError, 503),  # StoreUnavailable, NotMigrated and the rest: the database, not the request
        (errors.ConfigError, 500),
    ]


STATUS_FOR = _status_table()


def error_body(message: str, detail: Any = None) -> dict[str, Any]:
    return {"error": message} if detail is None else {"error": message, "detail": detail}


def _errands_error(request: Request, exc: Exception) -> JSONResponse:
    status = next((status for kind, status in STATUS_FOR if isinstance(exc, kind)), 500)
    headers: dict[str, str] = {}
    retry_after = getattr(exc, "retry_after", None)
    if status == 429 and isinstance(retry_after, int | float):
        headers["Retry-After"] = str(max(1, round(retry_after + 0.5)))
    if status == 503:
        # what the database said stays in the log: its URL or host is nobody's business
        log.warning("database unavailable: %s %s: %s", request.method, request.url.path, exc)
        return JSONResponse(error_body("database unavailable"), status_code=503, headers={"Retry-After": "1"})
    if status == 500:
        log.error("%s %s: %s", request.method, request.url.path, exc)
        return JSONResponse(error_body("internal error"), status_code=500)
    return JSONResponse(error_body(str(exc)), status_code=status, headers=headers)


def _api_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return JSONResponse(error_body(exc.message), status_code=exc.status, headers=exc.headers)


def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    return JSONResponse(error_body(str(exc.detail)), status_code=exc.status_code, headers=exc.headers)


def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    """pydantic's errors without their `input` (it may be megabytes, or the password of a login) or `ctx`."""
    assert isinstance(exc, RequestValidationError)
    detail = [
        {
            "loc": [str(part) for part in error.get("loc", ())],
            "msg": str(error.get("msg", "")),
            "type": error.get("type"),
        }
        for error in exc.errors()
    ]
    return JSONResponse(error_body("invalid request", detail), status_code=422)


def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unexpected error on %s %s", request.method, request.url.path)
    return JSONResponse(error_body("internal error"), status_code=500)


def install(app: FastAPI) -> None:
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(errors.ErrandsError, _errands_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(Exception, _unexpected)
