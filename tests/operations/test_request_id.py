"""A request id follows a request into the task it queues (and so into that task's log lines)."""

from __future__ import annotations

import logging

import pytest
from celery.signals import before_task_publish

from apps.ingest.models import IngestBatch
from apps.operations.request_id import RequestIdFilter, request_id_var
from tests.factories import API

pytestmark = pytest.mark.django_db


def test_the_request_id_is_echoed_or_made(admin_api):
    given = admin_api.get(f"{API}/locations/", HTTP_X_REQUEST_ID="trace-abc.123")
    assert given["X-Request-ID"] == "trace-abc.123"
    made = admin_api.get(f"{API}/locations/")
    assert len(made["X-Request-ID"]) == 32
    unsafe = admin_api.get(f"{API}/locations/", HTTP_X_REQUEST_ID="bad id\nwith newline")
    assert unsafe["X-Request-ID"] != "bad id\nwith newline"


def test_log_records_carry_the_current_request_id():
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "hello", (), None)
    token = request_id_var.set("rid-42")
    try:
        RequestIdFilter().filter(record)
    finally:
        request_id_var.reset(token)
    assert record.request_id == "rid-42"


@pytest.mark.django_db(transaction=True)
@pytest.mark.worker
def test_the_request_id_travels_with_the_task_it_queued(world, celery_worker, admin_api, wait_for):
    """The task's message carries the request's id; the worker runs the task under it, so its log lines carry
    it too (tests/operations/test_logs.py reads them from a worker logging at DEBUG: at INFO a batch that is
    stored logs nothing)."""
    request_id = "ingest-trace-7f3a9c"
    published: list[tuple[str, str | None]] = []

    def capture(sender=None, headers=None, **kwargs):
        published.append((sender, (headers or {}).get("request_id")))

    before_task_publish.connect(capture, weak=False, dispatch_uid="test-capture-request-id")
    try:
        response = admin_api.post(
            f"{API}/ingest/",
            [{"sensor": "env-001/temperature", "value": 21.0}],
            format="json",
            HTTP_X_REQUEST_ID=request_id,
        )
    finally:
        before_task_publish.disconnect(dispatch_uid="test-capture-request-id")
    assert response.status_code == 202 and response["X-Request-ID"] == request_id

    assert ("ingest.process_batch", request_id) in published
    batch = IngestBatch.objects.filter(pk=response.json()["batch_id"])
    wait_for(lambda: batch.filter(status=IngestBatch.Status.DONE).exists(), timeout=20)
