"""Readings have no foreign key to sensors (migration 0008): deleting sensors deletes their readings (a
pre_delete signal, a trigger for plain SQL), a batch storing while a sensor is deleted leaves none of that
sensor's readings behind, and neither side waits for a row the other holds while the other waits for it."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

import psycopg
import pytest
from django.db import connection, connections

from apps.devices.models import Device, Sensor
from apps.ingest.models import IngestBatch, Reading
from apps.ingest.partitions import partitions_ensure_range
from apps.ingest.pipeline import batch_process
from apps.ingest.resolution import clear_cache
from apps.ingest.sensor_deletion import STORE_LOCK
from tests.ingest.helpers import ingest, post_readings

pytestmark = pytest.mark.django_db(transaction=True)

AT = datetime(2026, 2, 12, 16, 30, tzinfo=UTC)


def _readings_of(sensor_id: int) -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM ingest_reading WHERE sensor_id = %s", [sensor_id])
        return cursor.fetchone()[0]


def _connect() -> psycopg.Connection:
    """A connection of its own, outside Django's, with a lock timeout: a wait that would be a deadlock fails in
    2 s instead of the test hanging until PostgreSQL's detector picks a side."""
    settings_dict = connection.settings_dict
    other = psycopg.connect(
        dbname=settings_dict["NAME"],
        user=settings_dict["USER"] or None,
        host=settings_dict["HOST"] or None,
        port=settings_dict["PORT"] or None,
        password=settings_dict["PASSWORD"] or None,
    )
    other.execute("SET lock_timeout = '2s'")
    other.commit()
    return other


def _waits_for(holder: psycopg.Connection, work: Callable[[], object], *, meanwhile=()) -> None:
    """Run `work` in a thread while `holder` holds the store lock: it must still be waiting after 0.5 s, the
    statements `meanwhile` (sql, params) must run on `holder` without waiting for it, and once `holder`
    commits, `work` must finish."""
    finished = threading.Event()

    def run() -> None:
        try:
            work()
            finished.set()
        finally:
            connections.close_all()

    thread = threading.Thread(target=run)
    thread.start()
    try:
        time.sleep(0.5)
        assert not finished.is_set()
        for sql, params in meanwhile:  # a wait here would be a deadlock: the lock timeout raises instead
            holder.execute(sql, params)
        holder.commit()
        thread.join(timeout=15)
        assert finished.is_set()
    finally:
        holder.close()
        thread.join(timeout=15)


def _store(client, key: str, minute: int) -> None:
    body = {"sensor": key, "ts": f"2026-02-12T16:{minute:02d}:00Z", "value": float(minute)}
    batch = ingest(client, body)
    assert batch.stored == 1


def test_readings_have_no_foreign_key_to_sensors():
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_constraint WHERE contype = 'f' AND confrelid = 'devices_sensor'::regclass"
            " AND (conrelid = 'ingest_reading'::regclass"
            "      OR conrelid IN (SELECT inhrelid FROM pg_inherits WHERE inhparent = 'ingest_reading'::regclass))"
        )
        assert cursor.fetchone()[0] == 0


def test_deleting_sensors_deletes_their_readings_and_no_others(world, admin_api):
    clear_cache()
    humidity, temperature = world.sensors["env-001/humidity"], world.sensors["env-001/temperature"]
    voltage = world.sensors["dc-meter-001/voltage_dc"]
    for minute in range(3):
        for sensor in (humidity, temperature, voltage):
            _store(admin_api, sensor.key, minute)

    temperature.delete()  # the ORM, which also deletes its threshold states and alerts
    assert (_readings_of(temperature.pk), _readings_of(humidity.pk)) == (0, 3)

    # SQL, without model signals: humidity has no threshold, so only its latest value refers to it.
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM ingest_latestreading WHERE sensor_id = %s", [humidity.pk])
        cursor.execute("DELETE FROM devices_sensor WHERE id = %s", [humidity.pk])
    assert _readings_of(humidity.pk) == 0

    Device.objects.filter(pk=voltage.device_id).delete()  # a cascade from the device
    assert not Sensor.objects.filter(pk=voltage.pk).exists()
    assert Reading.objects.count() == 0


def test_a_sensor_deleted_while_a_batch_stores_it_keeps_none_of_its_readings(world, admin_api):
    humidity, temperature = world.sensors["env-001/humidity"], world.sensors["env-001/temperature"]
    partitions_ensure_range(datetime(2026, 2, 12, tzinfo=UTC), datetime(2026, 2, 13, tzinfo=UTC))
    storing = _connect()
    # A batch between its lock and its commit: its readings of the sensor are not yet visible to anyone.
    storing.execute("SELECT pg_advisory_xact_lock_shared(%s)", [STORE_LOCK])
    storing.execute(
        "INSERT INTO ingest_reading (sensor_id, ts, value) VALUES (%s, %s, 1), (%s, %s, 2)",
        [humidity.pk, AT, temperature.pk, AT],
    )
    _waits_for(storing, lambda: Sensor.objects.get(pk=humidity.pk).delete())

    assert (_readings_of(humidity.pk), _readings_of(temperature.pk)) == (0, 1)


def test_a_device_deletion_waits_for_a_storing_batch_before_it_holds_any_row(world, admin_api, device_api):
    """Django deletes a sensor's latest value and sets its device's batches to NULL before deleting the sensor;
    a batch storing that device's readings must still be able to write those rows and commit."""
    clear_cache()
    humidity, temperature = world.sensors["env-001/humidity"], world.sensors["env-001/temperature"]
    other = world.sensors["env-002/humidity"]
    for client, sensor in ((device_api, humidity), (device_api, temperature), (admin_api, other)):
        _store(client, sensor.key, 0)  # the device's own key: its batches name it
    device_id = humidity.device_id
    assert IngestBatch.objects.filter(device_id=device_id).count() == 2
    storing = _connect()
    # A batch between its lock and its commit, writing what a batch of this device writes.
    storing.execute("SELECT pg_advisory_xact_lock_shared(%s)", [STORE_LOCK])
    storing.execute("INSERT INTO ingest_reading (sensor_id, ts, value) VALUES (%s, %s, 1)", [humidity.pk, AT])
    _waits_for(
        storing,
        lambda: Device.objects.filter(pk=device_id).delete(),
        meanwhile=[
            ("UPDATE ingest_latestreading SET value = 5 WHERE sensor_id = %s", [humidity.pk]),
            ("UPDATE devices_device SET last_seen = now() WHERE id = %s", [device_id]),
            ("UPDATE ingest_ingestbatch SET stored = stored WHERE device_id = %s", [device_id]),
        ],
    )

    assert not Device.objects.filter(pk=device_id).exists()
    assert (_readings_of(humidity.pk), _readings_of(temperature.pk), _readings_of(other.pk)) == (0, 0, 1)


def test_a_batch_waits_for_a_deletion_before_it_locks_its_own_row(world, device_api):
    """A batch of a device being deleted waits for the store lock holding nothing, so the deletion can set that
    batch's device to NULL; the batch then finds its sensors gone."""
    clear_cache()
    humidity = world.sensors["env-001/humidity"]
    deleting = _connect()
    # Before the batch exists, so that a worker taking it from the queue waits as well.
    deleting.execute("SELECT pg_advisory_xact_lock(%s)", [STORE_LOCK])
    try:
        response = post_readings(device_api, {"sensor": humidity.key, "ts": "2026-02-12T16:00:00Z", "value": 1.0})
        assert response.status_code == 202, response.content
    except BaseException:
        deleting.close()
        raise
    batch_id = response.json()["batch_id"]
    _waits_for(
        deleting,
        lambda: batch_process(batch_id=batch_id),
        meanwhile=[
            ("UPDATE ingest_ingestbatch SET device_id = NULL WHERE id = %s", [batch_id]),
            ("DELETE FROM ingest_latestreading WHERE sensor_id = %s", [humidity.pk]),
            ("DELETE FROM devices_sensor WHERE id = %s", [humidity.pk]),
        ],
    )

    batch = IngestBatch.objects.get(pk=batch_id)
    assert (batch.status, batch.stored, batch.rejected) == (IngestBatch.Status.DONE, 0, 1)
    assert _readings_of(humidity.pk) == 0
