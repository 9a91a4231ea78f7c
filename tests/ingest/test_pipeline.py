"""The ingest task's body (apps.ingest.pipeline.batch_process), called directly on batches made by the API."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.devices.connectivity import _advance_sequence
from apps.devices.models import Device
from apps.ingest.models import IngestBatch, Reading
from apps.ingest.partitions import partitions_ensure_range
from apps.ingest.pipeline import batch_process
from apps.ingest.resolution import clear_cache
from tests.factories import make_device, make_sensor
from tests.ingest.helpers import ingest, latest, post_readings, stored_values

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def fresh_sensor_cache():
    clear_cache()
    yield
    clear_cache()


def test_single_reading_is_stored_with_its_latest_value(world, admin_api):
    sensor = world.sensors["dc-meter-001/voltage_dc"]
    batch = ingest(admin_api, {"sensor": sensor.key, "ts": "2026-02-12T16:00:00Z", "value": 752.3})

    assert (batch.status, batch.received, batch.stored, batch.duplicates, batch.rejected) == ("done", 1, 1, 0, 0)
    assert stored_values(sensor) == [("2026-02-12T16:00:00Z", 752.3)]
    assert latest(sensor) == ("2026-02-12T16:00:00Z", 752.3)
    assert batch.payload is None  # cleared once stored


def test_device_datagram_is_stored_by_device_and_type(world, admin_api):
    datagram = {
        "v": 2,
        "device_id": "dc-meter-001",
        "ts": "2026-02-12T16:00:00.000Z",
        "seq": 42,
        "msg_type": "telemetry",
        "measurements": [
            {"ts": "2026-02-12T16:00:00.000Z", "type": "voltage_dc", "val": 752.3, "unit": "V"},
            {"type": "current_dc", "val": 12.5, "unit": "A"},
        ],
    }
    batch = ingest(admin_api, datagram)

    assert (batch.stored, batch.rejected) == (2, 0)
    assert stored_values(world.sensors["dc-meter-001/voltage_dc"]) == [("2026-02-12T16:00:00Z", 752.3)]
    # A measurement without its own ts takes the datagram's.
    assert stored_values(world.sensors["dc-meter-001/current_dc"]) == [("2026-02-12T16:00:00Z", 12.5)]
    device = Device.objects.get(device_id="dc-meter-001")
    assert device.last_seq == 42
    assert device.connection_status == "online"
    assert device.last_seen == batch.received_at


def test_flat_record_fields_map_to_sensor_types(world, admin_api):
    batch = ingest(
        admin_api, {"device_id": "env-001", "ts": "2026-02-12T16:00:00Z", "temperature_c": 25.5, "humidity": 60.0}
    )

    assert (batch.stored, batch.rejected) == (2, 0)
    assert stored_values(world.sensors["env-001/temperature"]) == [("2026-02-12T16:00:00Z", 25.5)]
    assert stored_values(world.sensors["env-001/humidity"]) == [("2026-02-12T16:00:00Z", 60.0)]


def test_mixed_shapes_in_one_request(world, admin_api):
    body = {
        "readings": [
            {"sensor": "dc-meter-001/voltage_dc", "ts": "2026-02-12T16:00:00Z", "value": 751},
            {
                "device_id": "dc-meter-001",
                "seq": 1,
                "ts": "2026-02-12T16:00:01Z",
                "measurements": [{"type": "voltage_dc", "val": 752}],
            },
            {"device_id": "env-001", "ts": "2026-02-12T16:00:02Z", "temperature_c": 21.0},
        ]
    }
    batch = ingest(admin_api, body)

    assert (batch.received, batch.stored) == (3, 3)
    assert [value for _, value in stored_values(world.sensors["dc-meter-001/voltage_dc"])] == [751, 752]
    assert stored_values(world.sensors["env-001/temperature"]) == [("2026-02-12T16:00:02Z", 21.0)]


def test_duplicate_readings_are_counted_not_stored(world, admin_api):
    reading = {"sensor": "env-001/temperature", "ts": "2026-02-12T16:00:00Z", "value": 20.0}
    first = ingest(admin_api, [reading, reading])
    second = ingest(admin_api, [reading, {**reading, "value": 99.0}])

    assert (first.stored, first.duplicates) == (1, 1)
    assert (second.stored, second.duplicates) == (0, 2)
    assert stored_values(world.sensors["env-001/temperature"]) == [("2026-02-12T16:00:00Z", 20.0)]


def test_repeated_datagram_seq_is_a_duplicate_and_a_jump_is_a_gap(world, admin_api):
    def datagram(seq: int, second: int) -> dict:
        return {
            "device_id": "env-001",
            "seq": seq,
            "ts": f"2026-02-12T16:00:{second:02d}Z",
            "measurements": [{"type": "temperature", "val": 20 + seq}],
        }

    first = ingest(admin_api, [datagram(1, 0), datagram(2, 1)])
    # seq 2 again (a different timestamp, so only the seq betrays it), then 5: 3 and 4 are missing.
    second = ingest(admin_api, [datagram(2, 2), datagram(5, 3)])

    assert (first.stored, first.sequence_gaps) == (2, 0)
    assert (second.stored, second.duplicates, second.sequence_gaps) == (1, 1, 2)
    device = Device.objects.get(device_id="env-001")
    assert (device.last_seq, device.seq_gaps) == (5, 2)
    assert [value for _, value in stored_values(world.sensors["env-001/temperature"])] == [21, 22, 25]


def test_sequence_rules():
    assert _advance_sequence(None, [7]) == (7, 0)
    assert _advance_sequence(7, [8, 9]) == (9, 0)
    assert _advance_sequence(9, [12]) == (12, 2)
    assert _advance_sequence(12, [10]) == (12, 0)  # late datagram: no gap, no move
    assert _advance_sequence(5000, [1, 2]) == (2, 0)  # far below: the device restarted its counter
    assert _advance_sequence(12, [1_000_012]) == (1_000_012, 999_999)
    assert _advance_sequence(12, [1_000_013, 2**63 - 1]) == (2**63 - 1, 0)  # far above: a new counter too


def test_rejects_are_reported_with_reasons(world, admin_api):
    future = (datetime.now(UTC) + timedelta(hours=2)).isoformat()
    body = [
        {"sensor": "no-such/sensor", "value": 1.0},
        {"sensor": "env-001/temperature", "value": "n/a"},
        {"sensor": "env-001/temperature", "value": 1e6},
        {"sensor": "env-001/temperature", "ts": future, "value": 20.0},
        {"sensor": "env-001/temperature", "ts": "2026-02-12T16:00:00Z", "value": 20.0},
    ]
    batch = ingest(admin_api, body)

    assert (batch.received, batch.stored, batch.rejected) == (5, 1, 4)
    assert batch.rejected_by_reason == {
        "unknown_sensor": 1,
        "not_a_number": 1,
        "out_of_range": 1,
        "future_timestamp": 1,
    }
    reasons = {(sample["index"], sample["reason"]) for sample in batch.errors}
    assert reasons == {(0, "unknown_sensor"), (1, "not_a_number"), (2, "out_of_range"), (3, "future_timestamp")}
    not_a_number = next(sample for sample in batch.errors if sample["reason"] == "not_a_number")
    assert not_a_number["detail"] == "n/a" and not_a_number["sensor"] == "env-001/temperature"


def test_device_key_cannot_write_another_devices_sensor(world, device_api):
    # device_api holds env-001's key; env-002/temperature belongs to env-002.
    batch = ingest(
        device_api,
        [
            {"sensor": "env-002/temperature", "ts": "2026-02-12T16:00:00Z", "value": 20.0},
            {"sensor": "env-001/temperature", "ts": "2026-02-12T16:00:00Z", "value": 21.0},
        ],
    )

    assert (batch.stored, batch.rejected, batch.rejected_by_reason) == (1, 1, {"forbidden_sensor": 1})
    assert not Reading.objects.filter(sensor=world.sensors["env-002/temperature"]).exists()
    assert Device.objects.get(device_id="env-002").last_seen is None  # a foreign sensor is no sign of life


def test_inactive_device_readings_are_rejected(world, admin_api):
    Device.objects.filter(device_id="env-001").update(status=Device.Status.INACTIVE)
    batch = ingest(admin_api, {"sensor": "env-001/temperature", "value": 20.0})
    assert batch.rejected_by_reason == {"device_inactive": 1}


def test_late_reading_does_not_replace_a_newer_latest_value(world, admin_api):
    sensor = world.sensors["env-001/temperature"]
    ingest(admin_api, {"sensor": sensor.key, "ts": "2026-02-12T16:10:00Z", "value": 22.0})
    late = ingest(admin_api, {"sensor": sensor.key, "ts": "2026-02-12T16:00:00Z", "value": 19.0})

    assert late.stored == 1
    assert latest(sensor) == ("2026-02-12T16:10:00Z", 22.0)
    assert len(stored_values(sensor)) == 2


def test_running_a_batch_twice_changes_nothing(world, admin_api):
    response = post_readings(
        admin_api, [{"sensor": "env-001/temperature", "ts": "2026-02-12T16:00:00Z", "value": 20.0}]
    )
    batch_id = response.json()["batch_id"]

    first = batch_process(batch_id=batch_id)
    second = batch_process(batch_id=batch_id)

    assert first.stored == 1
    assert second is None  # a redelivered message finds the batch done
    batch = IngestBatch.objects.get(pk=batch_id)
    assert (batch.stored, batch.duplicates, batch.attempts) == (1, 0, 1)
    assert Reading.objects.count() == 1


def test_a_failed_batch_processed_again_stores_exactly_once(world, admin_api):
    """What a dead-letter replay does: the failed batch kept its payload and is processed from scratch."""
    response = post_readings(
        admin_api, [{"sensor": "env-001/temperature", "ts": "2026-02-12T16:00:00Z", "value": 20.0}]
    )
    batch_id = response.json()["batch_id"]
    IngestBatch.objects.filter(pk=batch_id).update(status=IngestBatch.Status.FAILED, failure="OperationalError: gone")

    batch_process(batch_id=batch_id)

    batch = IngestBatch.objects.get(pk=batch_id)
    assert (batch.status, batch.stored, batch.failure) == ("done", 1, "")


def _datagram_batch(admin_api, readings: int, sensors: list[str]) -> str:
    base = datetime(2026, 2, 12, 16, tzinfo=UTC)
    body = [
        {"sensor": sensors[n % len(sensors)], "ts": (base + timedelta(seconds=n)).isoformat(), "value": 20.0 + n % 7}
        for n in range(readings)
    ]
    return post_readings(admin_api, body).json()["batch_id"]


def test_query_count_of_the_ingest_task_does_not_grow_with_readings_or_sensors(world, admin_api):
    many_devices = [make_device(f"qc-{n:03d}")[0] for n in range(40)]
    many_sensors = [make_sensor(device, world.sensor_types["temperature"]).key for device in many_devices]
    small = _datagram_batch(admin_api, 2, ["env-001/temperature"])
    large = _datagram_batch(admin_api, 2000, many_sensors)
    # Their partition exists already, as it would for live data (made ahead by the beat).
    partitions_ensure_range(datetime(2026, 2, 12, tzinfo=UTC), datetime(2026, 2, 13, tzinfo=UTC))

    counts = []
    for batch_id in (small, large):
        clear_cache()
        with CaptureQueriesContext(connection) as queries:
            batch_process(batch_id=batch_id)
        counts.append(len(queries))

    assert IngestBatch.objects.get(pk=large).stored == 2000
    assert counts[0] == counts[1], counts


def test_a_changed_plausible_range_applies_to_the_next_batch(world, admin_api):
    ingest(admin_api, {"sensor": "env-001/humidity", "value": 50.0})  # warms this process's sensor cache
    humidity = world.sensor_types["humidity"]
    humidity.plausible_max = 40.0
    humidity.save()

    batch = ingest(admin_api, {"sensor": "env-001/humidity", "value": 50.0})

    assert batch.rejected_by_reason == {"out_of_range": 1}


def test_a_sensor_deleted_behind_the_cache_is_rejected_not_a_failure(world, admin_api):
    ingest(admin_api, {"sensor": "env-001/humidity", "ts": "2026-02-12T16:00:00Z", "value": 50.0})
    # Deleted without model signals, so nothing tells the cache: the foreign key catches it.
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM ingest_latestreading WHERE sensor_id = %s", [world.sensors["env-001/humidity"].pk])
        cursor.execute("DELETE FROM devices_sensor WHERE key = 'env-001/humidity'")

    batch = ingest(admin_api, {"sensor": "env-001/humidity", "ts": "2026-02-12T16:01:00Z", "value": 51.0})

    assert (batch.status, batch.rejected_by_reason) == ("done", {"unknown_sensor": 1})


def test_readings_received_before_a_last_will_do_not_bring_the_device_back_online(world, admin_api):
    response = post_readings(admin_api, {"sensor": "env-001/temperature", "value": 20.0})
    batch = IngestBatch.objects.get(pk=response.json()["batch_id"])
    # The device's last will (offline) arrived after this request, before the worker got to it.
    Device.objects.filter(device_id="env-001").update(
        connection_status=Device.ConnectionStatus.OFFLINE, offline_since=batch.received_at + timedelta(microseconds=1)
    )

    batch_process(batch_id=str(batch.pk))

    device = Device.objects.get(device_id="env-001")
    assert device.connection_status == "offline"
    assert IngestBatch.objects.get(pk=batch.pk).stored == 1

    later = ingest(admin_api, {"sensor": "env-001/temperature", "value": 21.0})  # news after the will
    assert later.received_at > device.offline_since
    assert Device.objects.get(device_id="env-001").connection_status == "online"


def test_several_batches_in_one_outer_transaction_store_each_reading_once(world, admin_api):
    first = post_readings(admin_api, [{"sensor": "env-001/temperature", "ts": "2026-02-12T16:00:00Z", "value": 1.0}])
    second = post_readings(admin_api, [{"sensor": "env-001/temperature", "ts": "2026-02-12T16:01:00Z", "value": 2.0}])

    # pytest-django wraps this test in a transaction: both batches run inside it, as an importer might.
    first_outcome = batch_process(batch_id=first.json()["batch_id"])
    Reading.objects.all().delete()  # so a leftover staged row of the first batch would show as stored again
    second_outcome = batch_process(batch_id=second.json()["batch_id"])

    assert (first_outcome.stored, second_outcome.stored, second_outcome.duplicates) == (1, 1, 0)
    assert list(Reading.objects.values_list("value", flat=True)) == [2.0]
