"""The ingest task evaluates the batch it stored, in the same process: its body called directly, and through
the real worker when that evaluation fails."""

from __future__ import annotations

import pytest
from django.db import connection

from apps.alerts.models import Alert
from apps.deadletters.models import DeadLetter
from apps.deadletters.services import deadletter_replay
from apps.ingest.models import IngestBatch, Reading
from apps.ingest.services import batch_create, normalize_request
from apps.thresholds.models import Threshold
from tests.alerts.helpers import T0, readings, store
from tests.factories import API
from workers.tasks.ingest import process_batch

TEMP = "env-001/temperature"


def queued(items) -> IngestBatch:
    """A batch as the API leaves it: received, not yet stored."""
    normalized = normalize_request(items, received_at=T0, device_id=None)
    return batch_create(normalized=normalized, received_at=T0)


@pytest.fixture
def plant(world):
    Threshold.objects.filter(pk=world.thresholds["temperature"].pk).update(min_duration_s=0)
    return world


def test_the_ingest_task_stores_and_evaluates_its_batch_and_a_redelivery_changes_nothing(plant):
    batch = queued(readings(TEMP, (0, 21.0), (10, 45.0)))

    first = process_batch(str(batch.pk))
    second = process_batch(str(batch.pk))

    assert (first["stored"], first["evaluation"]["readings"], first["evaluation"]["opened"]) == (2, 2, 1)
    assert second is None
    assert IngestBatch.objects.get(pk=batch.pk).evaluated_at is not None
    assert Reading.objects.filter(sensor=plant.sensors[TEMP]).count() == 2
    assert Alert.objects.count() == 1


def test_a_redelivered_ingest_task_evaluates_a_batch_stored_but_not_evaluated(plant, monkeypatch):
    # The process died between the store step's commit and the evaluation (no evaluation task was sent).
    monkeypatch.setattr("apps.ingest.pipeline.enqueue_evaluation", lambda *, batch_id: None)
    batch = store(readings(TEMP, (0, 45.0)))
    assert batch.evaluated_at is None

    result = process_batch(str(batch.pk))

    assert result["evaluation"]["opened"] == 1 and "stored" not in result
    assert IngestBatch.objects.get(pk=batch.pk).evaluated_at is not None
    assert Reading.objects.filter(sensor=plant.sensors[TEMP]).count() == 1


@pytest.fixture
def alerts_refused():
    """Every insert into the alerts table fails (a permanent, non-transient database error) until the test
    lets it through with the function it is given."""
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE FUNCTION test_refuse_alert() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN RAISE EXCEPTION 'alerts refused by the test'; END $$"
        )
        cursor.execute(
            "CREATE TRIGGER test_refuse_alert BEFORE INSERT ON alerts_alert "
            "FOR EACH ROW EXECUTE FUNCTION test_refuse_alert()"
        )

    def allow() -> None:
        with connection.cursor() as cursor:
            cursor.execute("DROP TRIGGER IF EXISTS test_refuse_alert ON alerts_alert")
            cursor.execute("DROP FUNCTION IF EXISTS test_refuse_alert()")

    try:
        yield allow
    finally:
        allow()


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_failed_evaluation_keeps_the_readings_and_ends_as_an_evaluation_dead_letter(
    plant, celery_worker, admin_api, alerts_refused, wait_for
):
    response = admin_api.post(f"{API}/ingest/", readings(TEMP, (0, 21.0), (10, 45.0)), format="json")
    batch_id = response.json()["batch_id"]

    # The ingest task stored the readings, failed to evaluate them and handed the batch to the evaluate task,
    # which fails for good (not a transient error) and becomes a dead letter of its own.
    dead_letter = wait_for(lambda: DeadLetter.objects.filter(task_name="alerts.evaluate_batch").first(), timeout=20)
    assert dead_letter.kwargs == {"batch_id": batch_id} and dead_letter.queue == "alerts"
    assert not DeadLetter.objects.filter(task_name="ingest.process_batch").exists()
    batch = IngestBatch.objects.get(pk=batch_id)
    assert (batch.status, batch.stored, batch.evaluated_at) == ("done", 2, None)

    alerts_refused()
    deadletter_replay(dead_letter=dead_letter)
    wait_for(lambda: IngestBatch.objects.filter(pk=batch_id, evaluated_at__isnull=False).exists(), timeout=20)
    assert Alert.objects.count() == 1
    assert Reading.objects.filter(sensor=plant.sensors[TEMP]).count() == 2
