"""Time limits that end well, on a real worker with limits of a second or two (its own, on a Redis of its own):
a batch that only runs past its soft limit is retried; one that keeps being killed at the hard limit gets a
bounded number of attempts and then a dead letter to replay, never a redelivery every minute for ever."""

from __future__ import annotations

import psycopg
import pytest
from django.db import connection
from django.utils import timezone

from apps.deadletters.models import DeadLetter
from apps.deadletters.services import deadletter_replay
from apps.ingest.models import IngestBatch, Reading
from apps.ingest.services import normalize_request
from tests.ingest.helpers import post_readings
from tests.worker import private_worker
from tests.workers import stubborn

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]

LIMITS = {
    "CELERY_TASK_SOFT_TIME_LIMIT": "1",
    "CELERY_TASK_TIME_LIMIT": "3",
    "CELERY_VISIBILITY_TIMEOUT_S": "20",
    "TASK_MAX_RETRIES": "2",
    "TASK_RETRY_BACKOFF_MAX_S": "1",
}


@pytest.fixture
def limited_worker(tmp_path):
    """A worker whose tasks get a 1 s soft and a 3 s hard limit and two retries, on a private Redis that the
    test's own publishes go to as well."""
    with private_worker(tmp_path, env=LIMITS, include=(stubborn.__name__,)) as worker:
        yield worker


@pytest.fixture
def table_lock():
    """`table_lock("ingest_latestreading")`: hold a table in EXCLUSIVE mode from another connection, so a
    batch gets as far as writing its readings and then waits; `.release()` lets it go on."""
    settings_dict = connection.settings_dict
    holders: list[psycopg.Connection] = []

    class Lock:
        def __init__(self, table: str) -> None:
            self.connection = psycopg.connect(
                dbname=settings_dict["NAME"], user=settings_dict["USER"], host=settings_dict["HOST"] or "localhost",
                port=settings_dict["PORT"] or 5432, password=settings_dict["PASSWORD"] or None, autocommit=False,
            )  # fmt: skip
            holders.append(self.connection)
            self.connection.execute(f"LOCK TABLE {table} IN EXCLUSIVE MODE")

        def release(self) -> None:
            self.connection.rollback()

    yield Lock
    for holder in holders:
        holder.rollback()
        holder.close()


def _reading(minute: int) -> dict:
    return {"sensor": "env-001/temperature", "ts": f"2026-02-12T16:{minute:02d}:00Z", "value": 20.0 + minute}


def test_a_batch_past_its_soft_limit_is_retried_and_stored_once(
    world, device_api, limited_worker, table_lock, wait_for
):
    lock = table_lock("ingest_latestreading")
    batch_id = post_readings(device_api, [_reading(m) for m in range(5)]).json()["batch_id"]

    wait_for(lambda: "exceeded for ingest.process_batch" in limited_worker.log(), timeout=20)
    lock.release()

    batch = wait_for(lambda: IngestBatch.objects.filter(pk=batch_id, status__in=["done", "failed"]).first(), timeout=30)
    assert (batch.status, batch.stored) == ("done", 5)
    assert batch.attempts >= 2
    assert Reading.objects.filter(sensor=world.sensors["env-001/temperature"]).count() == 5
    assert not DeadLetter.objects.exists()


def test_a_batch_that_keeps_running_out_of_time_ends_failed_with_a_dead_letter_to_replay(
    world, device_api, limited_worker, table_lock, wait_for
):
    lock = table_lock("ingest_latestreading")
    batch_id = post_readings(device_api, [_reading(m) for m in range(5)]).json()["batch_id"]

    batch = wait_for(lambda: IngestBatch.objects.filter(pk=batch_id, status="failed").first(), timeout=60)
    dead_letter = DeadLetter.objects.get(task_name="ingest.process_batch")
    assert batch.attempts == 3  # the first run and TASK_MAX_RETRIES=2 retries
    assert dead_letter.args == [batch_id] and dead_letter.attempts == 3

    lock.release()
    deadletter_replay(dead_letter=dead_letter)
    batch = wait_for(lambda: IngestBatch.objects.filter(pk=batch_id, status="done").first(), timeout=30)
    assert (batch.stored, batch.attempts) == (5, 1)
    assert Reading.objects.filter(sensor=world.sensors["env-001/temperature"]).count() == 5


def test_a_batch_killed_at_the_hard_limit_is_tried_again_then_failed_with_a_dead_letter(
    world, limited_worker, table_lock, wait_for
):
    received_at = timezone.now()
    normalized = normalize_request([_reading(m) for m in range(5)], received_at=received_at, device_id=None)
    batch = IngestBatch.objects.create(received_at=received_at, received=5, payload=normalized.dumps())
    lock = table_lock("ingest_latestreading")
    limited_worker.app.send_task(stubborn.NAME, args=[str(batch.pk)], queue="ingest")

    failed = wait_for(lambda: IngestBatch.objects.filter(pk=batch.pk, status="failed").first(), timeout=60)
    dead_letter = DeadLetter.objects.get(task_name=stubborn.NAME)
    assert failed.attempts == 3  # killed three times: the first run and TASK_MAX_RETRIES=2 retries
    assert dead_letter.error.startswith("TimeLimitExceeded") and dead_letter.attempts == 3
    assert limited_worker.log().count(f"Hard time limit (3s) exceeded for {stubborn.NAME}") == 3

    lock.release()
    deadletter_replay(dead_letter=dead_letter)
    done = wait_for(lambda: IngestBatch.objects.filter(pk=batch.pk, status="done").first(), timeout=30)
    assert (done.stored, done.attempts) == (5, 1)
