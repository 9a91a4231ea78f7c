"""The whole ingest path with a real Celery worker over Redis: HTTP in, rows committed by the worker."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import psycopg
import pytest
from celery.result import AsyncResult
from django.db import connection
from django.utils import timezone

from apps.deadletters.models import DeadLetter
from apps.deadletters.services import deadletter_replay
from apps.ingest.models import IngestBatch, LatestReading, Reading
from apps.ingest.services import enqueue_batch, normalize_request
from tests.factories import API
from tests.ingest.helpers import post_readings

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]


def _finished(client, batch_id: str, wait_for, timeout: float = 20) -> dict:
    def done():
        body = client.get(f"{API}/ingest/batches/{batch_id}/").json()
        return body if body["status"] in ("done", "failed") else None

    return wait_for(done, timeout=timeout)


def test_every_payload_shape_is_stored_by_the_worker(world, celery_worker, admin_api, device_api, wait_for):
    mixed = post_readings(
        admin_api,
        {
            "readings": [
                {"sensor": "dc-meter-001/voltage_dc", "ts": "2026-02-12T16:00:00Z", "value": 752.3},
                {
                    "v": 2, "device_id": "dc-meter-001", "ts": "2026-02-12T16:00:01.000Z", "seq": 42, "msg_type": "telemetry",
                    "measurements": [{"ts": "2026-02-12T16:00:01.000Z", "type": "voltage_dc", "val": 753.1, "unit": "V"}],
                },
                {"device_id": "env-001", "ts": "2026-02-12T16:00:00Z", "temperature_c": 25.5, "humidity": 60.0},
                {"sensor": "dc-meter-001/voltage_dc", "ts": "2026-02-12T16:00:00Z", "value": 752.3},
                {"sensor": "ghost/voltage_dc", "value": 1.0},
            ]
        },
    )  # fmt: skip
    from_device = post_readings(
        device_api, {"device_id": "env-001", "ts": "2026-02-12T16:05:00Z", "temperature_c": 26.0}
    )
    assert mixed.status_code == from_device.status_code == 202

    body = _finished(admin_api, mixed.json()["batch_id"], wait_for)
    assert (body["status"], body["received"], body["stored"], body["duplicates"], body["rejected"]) == (
        "done",
        6,
        4,
        1,
        1,
    )
    assert body["rejected_by_reason"] == {"unknown_sensor": 1}
    assert _finished(device_api, from_device.json()["batch_id"], wait_for)["stored"] == 1

    voltage = world.sensors["dc-meter-001/voltage_dc"]
    assert list(Reading.objects.filter(sensor=voltage).order_by("ts").values_list("value", flat=True)) == [752.3, 753.1]
    assert LatestReading.objects.get(sensor=world.sensors["env-001/temperature"]).value == 26.0
    realtime = {row["sensor"]: row for row in admin_api.get(f"{API}/realtime/").json()["results"]}
    assert realtime["env-001/humidity"]["value"] == 60.0


def test_a_poison_batch_becomes_a_dead_letter_and_its_replay_stores_it_once(world, celery_worker, admin_api, wait_for):
    received_at = timezone.now()
    batch = IngestBatch.objects.create(received_at=received_at, received=1, payload=b"\x00 not json")
    enqueue_batch(batch_id=str(batch.pk))

    # Not a transient error: no retries, straight to a dead letter, and the batch says it failed.
    dead_letter = wait_for(lambda: DeadLetter.objects.filter(task_name="ingest.process_batch").first(), timeout=20)
    failed = wait_for(lambda: IngestBatch.objects.filter(pk=batch.pk, status="failed").first())
    assert dead_letter.args == [str(batch.pk)]
    assert dead_letter.queue == "ingest"
    assert "JSONDecodeError" in dead_letter.error and "JSONDecodeError" in failed.failure

    # Staff repair the cause (here: the payload) and replay it from the admin.
    repaired = normalize_request(
        {"sensor": "env-001/temperature", "ts": "2026-02-12T16:00:00Z", "value": 20.0},
        received_at=received_at,
        device_id=None,
    )
    IngestBatch.objects.filter(pk=batch.pk).update(payload=repaired.dumps())
    deadletter_replay(dead_letter=dead_letter)
    # The batch says failed until the worker takes the replay: wait for done, not for any final status.
    body = wait_for(
        lambda: (found := admin_api.get(f"{API}/ingest/batches/{batch.pk}/").json())["status"] == "done" and found,
        timeout=20,
    )
    assert (body["status"], body["stored"]) == ("done", 1)

    # A second replay is harmless: its task runs and finds the batch done.
    second = deadletter_replay(dead_letter=DeadLetter.objects.get(pk=dead_letter.pk))
    assert AsyncResult(second).get(timeout=20) is None
    assert DeadLetter.objects.get(pk=dead_letter.pk).replay_count == 2
    assert Reading.objects.filter(sensor=world.sensors["env-001/temperature"]).count() == 1
    assert IngestBatch.objects.get(pk=batch.pk).stored == 1


def _pool_children(master_pid: int) -> list[int]:
    children = Path(f"/proc/{master_pid}/task/{master_pid}/children").read_text().split()
    return [int(pid) for pid in children]


def test_a_worker_process_killed_mid_batch_loses_and_duplicates_nothing(world, celery_worker, admin_api, wait_for):
    """SIGKILL the pool process while it holds a batch half-written: the message is redelivered (late ack,
    reject on worker lost), the half-done transaction is rolled back by PostgreSQL, and the end state is the
    same as without the kill."""
    readings = [
        {"sensor": "env-001/temperature", "ts": f"2026-02-12T16:{m:02d}:00Z", "value": 20.0 + m} for m in range(30)
    ]
    settings_dict = connection.settings_dict
    blocker = psycopg.connect(
        dbname=settings_dict["NAME"], user=settings_dict["USER"], host=settings_dict["HOST"] or "localhost",
        port=settings_dict["PORT"] or 5432, autocommit=False,
    )  # fmt: skip
    try:
        # Hold back the latest-value upsert: the worker gets as far as writing readings, then waits.
        blocker.execute("LOCK TABLE ingest_latestreading IN EXCLUSIVE MODE")
        batch_id = post_readings(admin_api, readings).json()["batch_id"]

        def worker_is_blocked() -> bool:
            row = blocker.execute(
                "SELECT count(*) FROM pg_locks WHERE NOT granted AND relation = 'ingest_latestreading'::regclass"
            ).fetchone()
            return row[0] > 0

        wait_for(worker_is_blocked, timeout=20)
        for pid in _pool_children(celery_worker.process.pid):
            os.kill(pid, signal.SIGKILL)
    finally:
        blocker.rollback()
        blocker.close()

    body = _finished(admin_api, batch_id, wait_for, timeout=60)
    assert (body["status"], body["stored"], body["duplicates"], body["rejected"]) == ("done", 30, 0, 0)
    assert body["attempts"] == 2
    assert Reading.objects.filter(sensor=world.sensors["env-001/temperature"]).count() == 30
    assert LatestReading.objects.get(sensor=world.sensors["env-001/temperature"]).value == 49.0
    assert "WorkerLostError" in celery_worker.log() or "SIGKILL" in celery_worker.log()
