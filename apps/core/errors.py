"""One error shape for every 4xx answer: {"detail": "...", "errors": {field: [messages]}}.

Services raise ApplicationError (optionally naming fields); the DRF exception handler turns it, and every DRF
and Django error, into that shape so clients parse one thing.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import ProtectedError, RestrictedError
from django.http import Http404, HttpResponse
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.serializers import as_serializer_error
from rest_framework.views import exception_handler

from apps.core.handlers import too_large_response


class ApplicationError(Exception):
    """A business rule said no. Maps to 400 unless a status is given."""

    def __init__(self, message: str, *, errors: dict[str, Any] | None = None, status_code: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.errors = errors or {}
        self.status_code = status_code


def _as_lists(errors: Any) -> dict[str, Any]:
    if isinstance(errors, dict):
        return errors
    if isinstance(errors, list):
        return {"non_field_errors": errors}
    return {"non_field_errors": [errors]}


def api_exception_handler(exc: Exception, context: dict) -> HttpResponse | None:
    if isinstance(exc, ApplicationError):
        return Response({"detail": exc.message, "errors": _as_lists(exc.errors)}, status=exc.status_code)
    if isinstance(exc, RequestDataTooBig):  # Django's own body limit, met while DRF reads the body
        return too_large_response(context["request"], settings.DATA_UPLOAD_MAX_MEMORY_SIZE)
    if isinstance(exc, (ProtectedError, RestrictedError)):
        blockers = sorted({str(obj._meta.verbose_name_plural) for obj in list(exc.args[1])[:100]})
        return Response(
            {"detail": f"Still referenced by {', '.join(blockers)}; remove or reassign those first.", "errors": {}},
            status=status.HTTP_409_CONFLICT,
        )
    if isinstance(exc, DjangoValidationError):
        exc = exceptions.ValidationError(as_serializer_error(exc))
    elif isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()

    response = exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        errors = _as_lists(response.data)
        response.data = {"detail": _summary(errors), "errors": errors}
    else:
        detail = response.data.get("detail", str(exc)) if isinstance(response.data, dict) else str(exc)
        response.data = {"detail": str(detail), "errors": {}}
    if response.status_code == status.HTTP_429_TOO_MANY_REQUESTS and getattr(exc, "wait", None):
        response.data["retry_after_s"] = int(exc.wait)
    return response


def _summary(errors: dict[str, Any]) -> str:
    fields = [name for name in errors if name != "non_field_errors"]
    if not fields:
        first = errors.get("non_field_errors") or ["Invalid input."]
        return str(first[0]) if isinstance(first, list) and first else "Invalid input."
    return "Invalid input: " + ", ".join(fields) + "."
