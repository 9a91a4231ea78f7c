"""Django's 400, 404 and 500 pages, in the API's error shape for API paths (unknown URLs, bodies Django refused,
crashes outside DRF)."""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views import defaults

API_PREFIXES = ("/api/", "/health", "/metrics")


def is_api(request: HttpRequest) -> bool:
    return request.path.startswith(API_PREFIXES)


def too_large_response(request: HttpRequest, limit: int) -> HttpResponse:
    message = f"The request body is larger than {limit} bytes; split it."
    if is_api(request):
        return JsonResponse({"detail": message, "errors": {"non_field_errors": [message]}}, status=413)
    return HttpResponse(message, status=413, content_type="text/plain; charset=utf-8")


def bad_request(request: HttpRequest, exception: Exception) -> HttpResponse:
    """Django's answer to a SuspiciousOperation: a body over DATA_UPLOAD_MAX_MEMORY_SIZE is a 413."""
    if isinstance(exception, RequestDataTooBig):
        return too_large_response(request, settings.DATA_UPLOAD_MAX_MEMORY_SIZE)
    if is_api(request):
        return JsonResponse({"detail": "Bad request.", "errors": {}}, status=400)
    return defaults.bad_request(request, exception)


def not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    if is_api(request):
        return JsonResponse({"detail": f"No endpoint at {request.path}.", "errors": {}}, status=404)
    return defaults.page_not_found(request, exception)


def server_error(request: HttpRequest) -> HttpResponse:
    if is_api(request):
        return JsonResponse({"detail": "Server error; it has been logged.", "errors": {}}, status=500)
    return defaults.server_error(request)
