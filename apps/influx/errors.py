"""Errors in the InfluxDB v2 API's shape, which InfluxDB clients and Telegraf read:
`{"code": "invalid", "message": "...", "line": 3}` for bad lines (LineProtocolError), `{"code": "invalid",
"message": "...", "maxLength": N}` for a body too large (LineProtocolLengthError), and `{"code": ...,
"message": ...}` otherwise. The codes are the API reference's, chosen by HTTP status.
"""

from __future__ import annotations

from typing import Any

from rest_framework.response import Response

from apps.core.errors import api_exception_handler

CODE_BY_STATUS = {
    400: "invalid",
    401: "unauthorized",
    403: "forbidden",
    404: "not found",
    405: "method not allowed",
    413: "invalid",  # LineProtocolLengthError's only code
    415: "unsupported media type",
    422: "unprocessable entity",
    429: "too many requests",
    503: "unavailable",
}


def influx_error_body(status: int, message: str, **extra: Any) -> dict[str, Any]:
    return {"code": CODE_BY_STATUS.get(status, "internal error"), "message": message, **extra}


class InfluxError(Exception):
    """An answer of the write endpoint in InfluxDB's error shape; `extra` adds fields such as line or maxLength."""

    def __init__(self, status: int, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.extra = extra


def influx_exception_handler(exc: Exception, context: dict) -> Response | None:
    """The project's handler decides status and headers (Retry-After, WWW-Authenticate); the body is InfluxDB's."""
    if isinstance(exc, InfluxError):
        return Response(influx_error_body(exc.status, exc.message, **exc.extra), status=exc.status)
    response = api_exception_handler(exc, context)
    if response is not None:
        message = response.data.get("detail", "") if isinstance(response.data, dict) else str(response.data)
        response.data = influx_error_body(response.status_code, str(message))
    return response
