"""What a faulty device may send: each case either refused whole (400 naming the field) or rejected per reading
with a reason, and never a batch that fails; with the worker's last defence for data the adapters did not foresee.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.test import override_settings
from django.utils import timezone
from prometheus_client import REGISTRY

from apps.ingest.models import IngestBatch, Reading
from apps.ingest.payload import NormalizedBatch, device_type_ref, key_ref
from apps.ingest.pipeline import batch_process
from apps.ingest.services import batch_create
from tests.factories import assert_error_shape, make_sensor, make_sensor_type
from tests.ingest.helpers import ingest, post_readings, stored_values

pytestmark = pytest.mark.django_db

GOOD = {"sensor": "env-001/humidity", "ts": "2026-02-12T16:00:00Z", "value": 50.0}
TEMPERATURE = "env-001/temperature"


def _rejected_metric(reason: str) -> float:
    return REGISTRY.get_sample_value("telemetry_readings_rejected_total", {"reason": reason}) or 0.0


@pytest.fixture
def unbounded_sensor(world):
    """A sensor whose type has no plausible range, so only the magnitude bound stands between it and the rollups."""
    return make_sensor(world.devices["env-001"], make_sensor_type("energy_wh", unit="Wh"))


@pytest.mark.parametrize(
    ("item", "field"),
    [
        ({"sensor": TEMPERATURE, "ts": [1], "value": 1}, "readings[0].ts"),
        ({"sensor": TEMPERATURE, "ts": {"at": 1}, "value": 1}, "readings[0].ts"),
        ({"sensor": TEMPERATURE, "ts": True, "value": 1}, "readings[0].ts"),
        ({"sensor": TEMPERATURE, "ts": 1e308, "value": 1}, "readings[0].ts"),
        ({"sensor": TEMPERATURE, "ts": -1e308, "value": 1}, "readings[0].ts"),
        # Epoch milliseconds of year 11476, and a year-9999 time that its offset carries into year 10000.
        ({"sensor": TEMPERATURE, "ts": 3e14, "value": 1}, "readings[0].ts"),
        ({"sensor": TEMPERATURE, "ts": "9999-12-31T23:00:00-05:00", "value": 1}, "readings[0].ts"),
        ({"sensor": TEMPERATURE, "ts": "0001-01-01T00:00:00+05:00", "value": 1}, "readings[0].ts"),
        ({"sensor": "env-001/temperature\x00", "value": 1}, "readings[0].sensor"),
        ({"sensor": "env-001\x1ftemperature", "value": 1}, "readings[0].sensor"),
        ({"device_id": "env\x00001", "measurements": [{"type": "temperature", "val": 1}]}, "readings[0].device_id"),
        (
            {"device_id": "env-001", "seq": 1, "measurements": [{"type": "temp\x00", "val": 1}]},
            "readings[0].measurements[0].type",
        ),
        (
            {"device_id": "env-001", "measurements": [{"type": "temperature", "channel": "a\x1fb", "val": 1}]},
            "readings[0].measurements[0].channel",
        ),
        (
            {"device_id": "env-001", "measurements": [{"type": "temperature", "channel": "c" * 301, "val": 1}]},
            "readings[0].measurements[0].channel",
        ),
        (
            {"device_id": "env-001", "seq": 2**63, "measurements": [{"type": "temperature", "val": 1}]},
            "readings[0].seq",
        ),
        ({"device_id": "env-001", "ts": "2026-02-12T16:00:00Z", "temp\x00": 1.0}, "readings[0].temp\ufffd"),
        ({"device_id": "env-001", "ts": "2026-02-12T16:00:00Z", "temp\x1fc": 1.0}, "readings[0].temp\ufffdc"),
        ({"device_id": "env-001", "ts": "2026-02-12T16:00:00Z", "t" * 301: 1.0}, f"readings[0].{'t' * 301}"),
    ],
)
def test_what_cannot_be_stored_at_all_is_a_400_naming_the_field_and_queues_nothing(world, admin_api, item, field):
    response = post_readings(admin_api, [item, GOOD])

    assert response.status_code == 400, response.content
    assert list(assert_error_shape(response, field)["errors"]) == [field]
    assert IngestBatch.objects.count() == 0


def test_the_largest_seq_and_the_calendars_edges_are_accepted(world, admin_api):
    datagram = {"device_id": "env-001", "seq": 2**63 - 1, "measurements": [{"type": "temperature", "val": 20.0}]}
    edges = [
        {"sensor": TEMPERATURE, "ts": "9999-12-31T23:59:59.999999Z", "value": 20.0},
        {"sensor": TEMPERATURE, "ts": "0001-01-01T00:00:00Z", "value": 20.0},
    ]
    batch = ingest(admin_api, [datagram, *edges])

    assert (batch.status, batch.stored) == ("done", 1)
    assert batch.rejected_by_reason == {"future_timestamp": 1, "timestamp_out_of_range": 1}


@pytest.mark.parametrize(
    ("item", "reason"),
    [
        ({"sensor": TEMPERATURE, "ts": "1999-12-31T23:59:59Z", "value": 20.0}, "timestamp_out_of_range"),
        ({"sensor": TEMPERATURE, "ts": 0, "value": 20.0}, "timestamp_out_of_range"),
        ({"sensor": TEMPERATURE, "ts": -86_400, "value": 20.0}, "timestamp_out_of_range"),
        ({"sensor": TEMPERATURE, "ts": "9999-12-31T00:00:00Z", "value": 20.0}, "future_timestamp"),
        ({"sensor": TEMPERATURE, "ts": 2.5e14, "value": 20.0}, "future_timestamp"),  # ms: year 9892
        ({"sensor": "env-001/energy_wh", "value": 1.5e308}, "value_out_of_range"),
        ({"sensor": "env-001/energy_wh", "value": -1e16}, "value_out_of_range"),
        ({"sensor": "env-001/energy_wh", "value": "1e400"}, "not_a_number"),
        ({"sensor": "env-001/energy_wh", "value": "\x00"}, "not_a_number"),
        ({"device_id": "env-001", "measurements": [{"type": "energy_wh", "val": 2e15}]}, "value_out_of_range"),
    ],
)
def test_a_reading_outside_what_is_kept_is_rejected_with_its_reason_and_the_rest_is_stored(
    world, admin_api, unbounded_sensor, item, reason
):
    counted_before = _rejected_metric(reason)

    batch = ingest(admin_api, [GOOD, item])

    assert (batch.status, batch.stored, batch.rejected) == ("done", 1, 1)
    assert _rejected_metric(reason) == counted_before + 1
    assert batch.rejected_by_reason == {reason: 1}
    assert batch.errors[0]["index"] == 1 and batch.errors[0]["reason"] == reason
    assert stored_values(world.sensors["env-001/humidity"]) == [("2026-02-12T16:00:00Z", 50.0)]


def test_the_timestamp_window_runs_from_2000_to_the_allowed_skew_past_arrival(world, admin_api):
    received = timezone.now()
    skew_s = 300
    inside = received.timestamp() + skew_s - 5
    outside = received.timestamp() + skew_s + 60
    with override_settings(INGEST_MAX_FUTURE_SKEW_S=skew_s):
        batch = ingest(
            admin_api,
            [
                {"sensor": TEMPERATURE, "ts": "2000-01-01T00:00:00Z", "value": 20.0},
                {"sensor": TEMPERATURE, "ts": inside, "value": 21.0},
                {"sensor": TEMPERATURE, "ts": outside, "value": 22.0},
            ],
        )

    assert (batch.stored, batch.rejected_by_reason) == (2, {"future_timestamp": 1})


@override_settings(INGEST_MAX_ABS_VALUE=100.0)
def test_the_magnitude_bound_is_a_setting(world, admin_api, unbounded_sensor):
    values = (100.0, -100.0, 100.5)
    batch = ingest(
        admin_api,
        [{"sensor": "env-001/energy_wh", "ts": f"2026-02-12T16:00:0{n}Z", "value": v} for n, v in enumerate(values)],
    )

    assert (batch.stored, batch.rejected_by_reason) == (2, {"value_out_of_range": 1})


def test_control_characters_in_a_not_a_number_value_are_reported_printable(world, admin_api):
    batch = ingest(admin_api, [GOOD, {"sensor": TEMPERATURE, "value": "bad\x00\x1b[31m"}])

    assert batch.errors[0]["detail"] == "bad\ufffd\ufffd[31m"


def _crafted_batch(normalized: NormalizedBatch) -> IngestBatch:
    """A batch whose payload did not come through the adapters (an older release's, or another producer's)."""
    return batch_create(normalized=normalized, received_at=timezone.now())


def test_data_the_database_refuses_costs_only_its_own_item(world):
    normalized = NormalizedBatch()
    ts = int(datetime(2026, 2, 12, 16, tzinfo=UTC).timestamp() * 1_000_000)
    for item in range(6):
        normalized.add(key_ref("env-001/humidity"), ts + item * 1_000_000, 40.0 + item, item)
    normalized.add(key_ref("env-001/temperature\x00"), ts, 20.0, 6)  # NUL: PostgreSQL refuses the text
    group = normalized.add_group("env-002", 2**63)  # beyond bigint
    normalized.add(device_type_ref("env-002", "temperature"), ts, 21.0, 7, group)
    normalized.add(key_ref("env-002/humidity"), ts, 60.0, 8)
    batch = _crafted_batch(normalized)

    batch_process(batch_id=str(batch.pk))

    batch.refresh_from_db()
    assert (batch.status, batch.received, batch.stored, batch.rejected) == ("done", 9, 7, 2)
    assert batch.rejected_by_reason == {"unstorable": 2}
    assert sorted(sample["index"] for sample in batch.errors) == [6, 7]
    assert {sample["detail"] for sample in batch.errors} == {
        "PostgreSQL text fields cannot contain NUL (0x00) bytes",
        "bigint out of range",
    }
    assert Reading.objects.filter(sensor=world.sensors["env-001/humidity"]).count() == 6
    assert stored_values(world.sensors["env-002/humidity"]) == [("2026-02-12T16:00:00Z", 60.0)]
    assert batch.payload is None


def test_a_crafted_timestamp_past_the_calendar_is_rejected_not_a_failure(world):
    normalized = NormalizedBatch()
    normalized.add(key_ref("env-001/humidity"), 2**62, 50.0, 0)  # year 146,000
    normalized.add(key_ref("env-001/humidity"), -(2**62), 50.0, 1)
    batch = _crafted_batch(normalized)

    batch_process(batch_id=str(batch.pk))

    batch.refresh_from_db()
    assert (batch.status, batch.rejected_by_reason) == ("done", {"future_timestamp": 1, "timestamp_out_of_range": 1})
