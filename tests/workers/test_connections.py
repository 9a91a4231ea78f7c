"""Database connections of a real worker: kept from one task to the next (Celery's Django fix-up would open a
new one for every task), and replaced when the server drops one."""

from __future__ import annotations

import pytest
from django.db import connection

from tests.worker import CeleryWorker, private_worker
from tests.workers import backend_pid

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]


@pytest.fixture
def worker(tmp_path):
    """One pool process, so consecutive tasks run where the same connection would be, on a Redis of its own."""
    with private_worker(tmp_path, include=(backend_pid.__name__,), concurrency=1) as worker:
        yield worker


def _served_by(worker: CeleryWorker) -> int:
    return worker.app.send_task(backend_pid.NAME, queue="default").get(timeout=30)


def test_tasks_share_a_connection_and_a_dropped_one_is_replaced(worker):
    first = _served_by(worker)
    assert _served_by(worker) == first == _served_by(worker)

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(%s)", [first])
        assert cursor.fetchone() == (True,)

    # The next run finds its connection gone, fails, and is retried on a new one.
    replaced = _served_by(worker)
    assert replaced != first
    assert _served_by(worker) == replaced
