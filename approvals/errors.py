"""JSON errors ``{"error": code, "message": what to do}`` and their handlers."""

from __future__ import annotations

import logging
from typing import Any

from litestar import Request, Response
from litestar.exceptions import HTTPException, NotFoundException, ValidationException

log = logging.getLogger("approvals")

CODES = {
    400: "invalid",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    422: "invalid",
    429: "rate_limited",
}


class ApiError(Exception):
    """An error answered as JSON with a code and a message that says what to do."""

    def __init__(self, status: int, code: str, message: str, /, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.extra = extra


def invalid(field: str, message: str, status: int = 422) -> ApiError:
    """An ``invalid`` error naming the offending field."""
    return ApiError(status, "invalid", f"{field}: {message}", field=field)


def not_found(what: str) -> ApiError:
    """A ``not_found`` error for the named thing."""
    return ApiError(404, "not_found", f"{what} does not exist")


def error_body(code: str, message: str, **extra: Any) -> dict[str, Any]:
    """The JSON body of an error."""
    return {"error": code, "message": message, **extra}


def _api_error(_: Request[Any, Any, Any], exc: ApiError) -> Response[Any]:
    return Response(error_body(exc.code, exc.message, **exc.extra), status_code=exc.status)


def _validation(_: Request[Any, Any, Any], exc: ValidationException) -> Response[Any]:
    extra = exc.extra if isinstance(exc.extra, list) else []
    fields = [str(item.get("key")) for item in extra if isinstance(item, dict) and item.get("key")]
    detail = "; ".join(
        f"{item.get('key')}: {item.get('message')}" for item in extra if isinstance(item, dict)
    )
    message = detail or str(exc.detail)
    body = error_body("invalid", message)
    if fields:
        body["field"] = fields[0]
    return Response(body, status_code=400)


def _http(_: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    status = exc.status_code
    code = CODES.get(status, "error")
    message = str(exc.detail)
    if status == 413:
        message = "the request body is too large; send smaller batches"
    elif isinstance(exc, NotFoundException):
        message = "no such path; see /schema/openapi.json"
    return Response(error_body(code, message), status_code=status, headers=exc.headers)


def _internal(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return Response(
        error_body("internal", "the service failed; the error is in its log"), status_code=500
    )


exception_handlers: dict[Any, Any] = {
    ApiError: _api_error,
    ValidationException: _validation,
    HTTPException: _http,
    Exception: _internal,
}
