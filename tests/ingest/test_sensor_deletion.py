"""Readings have no foreign key to sensors (migration 0008): deleting sensors deletes their readings by a
trigger, and a batch storing while a sensor is deleted leaves none of that sensor's readings behind."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime

import psycopg
import pytest
from django.db import connection, connections

from apps.devices.models import Device, Sensor
from apps.ingest.models import Reading
from apps.ingest.partitions import partitions_ensure_range
from apps.ingest.pipeline import STORE_LOCK
from apps.ingest.resolution import clear_cache
from tests.ingest.helpers import ingest

pytestmark = pytest.mark.django_db(transaction=True)

AT = datetime(2026, 2, 12, 16, 30, tzinfo=UTC)


def _readings_of(sensor_id: int) -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM ingest_reading WHERE sensor_id = %s", [sensor_id])
        return cursor.fetchone()[0]


def _store(admin_api, key: str, minute: int) -> None:
    body = {"sensor": key, "ts": f"2026-02-12T16:{minute:02d}:00Z", "value": float(minute)}
    batch = ingest(admin_api, body)
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
    settings_dict = connection.settings_dict
    storing = psycopg.connect(
        dbname=settings_dict["NAME"],
        user=settings_dict["USER"] or None,
        host=settings_dict["HOST"] or None,
        port=settings_dict["PORT"] or None,
        password=settings_dict["PASSWORD"] or None,
    )
    # A batch between its lock and its commit: its readings of the sensor are not yet visible to anyone.
    storing.execute("SELECT pg_advisory_xact_lock_shared(%s)", [STORE_LOCK])
    storing.execute(
        "INSERT INTO ingest_reading (sensor_id, ts, value) VALUES (%s, %s, 1), (%s, %s, 2)",
        [humidity.pk, AT, temperature.pk, AT],
    )
    finished = threading.Event()

    def delete() -> None:
        try:
            Sensor.objects.get(pk=humidity.pk).delete()
            finished.set()
        finally:
            connections.close_all()

    deleter = threading.Thread(target=delete)
    deleter.start()
    try:
        time.sleep(0.5)
        assert not finished.is_set()  # waiting for the batch, not deleting around it
        storing.commit()
        deleter.join(timeout=10)
        assert finished.is_set()
    finally:
        storing.close()
        deleter.join(timeout=10)

    assert (_readings_of(humidity.pk), _readings_of(temperature.pk)) == (0, 1)
