"""A request id that follows a request into the Celery tasks it queues and into their log lines.

The middleware takes X-Request-ID from the caller (or makes one) and answers with it; a logging filter puts
it on every record; Celery signals carry it in a message header to the worker, which sets it for the task's
duration.
"""

from __future__ import annotations

import logging
import re
import uuid
from contextvars import ContextVar

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)

HEADER = "X-Request-ID"
TASK_HEADER = "request_id"
_VALID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


class RequestIdMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        incoming = request.headers.get(HEADER, "")
        request_id = incoming if _VALID.match(incoming) else uuid.uuid4().hex
        request.request_id = request_id
        token = request_id_var.set(request_id)
        try:
            response = self.get_response(request)
        finally:
            request_id_var.reset(token)
        response[HEADER] = request_id
        return response


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if not getattr(record, "request_id", None):
            record.request_id = request_id_var.get()
        return True


def add_request_id_header(headers: dict | None = None, **kwargs) -> None:
    """before_task_publish: stamp the current request id on the outgoing message."""
    request_id = request_id_var.get()
    if request_id and headers is not None:
        headers.setdefault(TASK_HEADER, request_id)


def enter_task(task=None, **kwargs) -> None:
    """task_prerun: the task runs under the request id it was queued with (or, for a retry, kept with)."""
    request_id = getattr(task.request, TASK_HEADER, None) if task is not None else None
    task.request._request_id_token = request_id_var.set(request_id)


def leave_task(task=None, **kwargs) -> None:
    token = getattr(task.request, "_request_id_token", None) if task is not None else None
    if token is not None:
        request_id_var.reset(token)
