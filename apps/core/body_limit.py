"""Request bodies are bounded before anything reads them, and a body over the limit is a 413 in the error shape.

The limit of a request is its view's `max_body_setting` (the name of a setting: ingest sizes its own to its
reading limit) or DATA_UPLOAD_MAX_MEMORY_SIZE. It is checked in `process_view`, once the URL has named the view
and before any view or CSRF check reads the body:
- a Content-Length over the limit is answered at once, without reading a byte of the body;
- a body without one (`Transfer-Encoding: chunked`, which Django's WSGI request would read as empty) is read
  here, at most one byte past the limit, and handed on with its length, or answered 413 when it is longer.
Django's own check (RequestDataTooBig, for bodies read elsewhere) answers the same 413 through the error
handlers (`apps.core.errors`, `apps.core.handlers`).
"""

from __future__ import annotations

from io import BytesIO

from django.conf import settings
from django.http import HttpRequest, HttpResponse

from apps.core.handlers import too_large_response


def body_limit(view_func) -> int:
    view_class = getattr(view_func, "cls", None) or getattr(view_func, "view_class", None)
    setting = getattr(view_class, "max_body_setting", None) or "DATA_UPLOAD_MAX_MEMORY_SIZE"
    return getattr(settings, setting)


class RequestBodyLimitMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_view(self, request: HttpRequest, view_func, view_args, view_kwargs) -> HttpResponse | None:
        limit = body_limit(view_func)
        declared = request.META.get("CONTENT_LENGTH")
        if declared:
            try:
                length = int(declared)
            except ValueError:
                return None  # Django reads such a body as empty
            return too_large_response(request, limit) if length > limit else None
        stream = _unbounded_body(request)
        if stream is None:
            return None
        body = stream.read(limit + 1)
        if len(body) > limit:
            return too_large_response(request, limit)
        request._stream = BytesIO(body)
        request.META["CONTENT_LENGTH"] = str(len(body))
        return None


def _unbounded_body(request: HttpRequest):
    """The stream of a body that came without Content-Length, or None when there is none."""
    environ = request.META
    if "wsgi.input" in environ:
        # A WSGI server that decodes chunked bodies says so (gunicorn does); otherwise there is none to read.
        chunked = "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower()
        return environ["wsgi.input"] if chunked and environ.get("wsgi.input_terminated") else None
    return getattr(request, "_stream", None)  # ASGI: the body Django has spooled
