"""A request id follows a request into the task it queues and into that task's log lines."""

from __future__ import annotations

import json
import logging

import pytest

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
def test_the_request_id_appears_in_the_log_records_of_the_task_it_queued(world, celery_worker, admin_api, wait_for):
    request_id = "ingest-trace-7f3a9c"
    response = admin_api.post(
        f"{API}/ingest/",
        [{"sensor": "env-001/temperature", "value": 21.0}],
        format="json",
        HTTP_X_REQUEST_ID=request_id,
    )
    assert response.status_code == 202 and response["X-Request-ID"] == request_id
    batch_id = response.json()["batch_id"]

    def task_lines():
        lines = []
        for line in celery_worker.log().splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if record.get("request_id") == request_id:
                lines.append(record)
        return lines if any(batch_id in record["message"] for record in lines) else None

    records = wait_for(task_lines, timeout=20)
    assert any(record["logger"] == "apps.ingest.pipeline" for record in records)
    assert all(record["level"] in {"INFO", "WARNING", "ERROR", "DEBUG"} for record in records)
