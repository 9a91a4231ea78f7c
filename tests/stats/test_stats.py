"""GET /api/v1/stats/: counts and rates for a dashboard."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.apps import apps
from django.utils import timezone

from apps.aggregates.services import rollups_refresh
from apps.devices.models import Device
from apps.ingest.resolution import clear_cache
from tests.aggregates.helpers import series, store
from tests.factories import API

pytestmark = pytest.mark.django_db

STATS = f"{API}/stats/"


@pytest.fixture(autouse=True)
def fresh_sensor_cache():
    clear_cache()
    yield
    clear_cache()


def test_devices_sensors_readings_and_ingest_rate(world, viewer_api):
    Device.objects.filter(device_id="env-002").update(status="maintenance", connection_status="offline")
    now = timezone.now()
    rollups_refresh()
    store(series("env-001/temperature", now - timedelta(hours=30), count=30 * 6, step=timedelta(minutes=10)))
    rollups_refresh()
    store([("env-001/temperature", now - timedelta(minutes=1), 45.0)])  # critical, not rolled up yet
    store([("dc-meter-001/voltage_dc", now - timedelta(minutes=2), 750.0)])  # normal

    body = viewer_api.get(STATS).json()

    assert body["devices"] == {
        "total": 3,
        "by_status": {"active": 2, "inactive": 0, "maintenance": 1},
        "by_connection_status": {"online": 2, "offline": 1, "unknown": 0},
    }
    assert body["sensors"] == {"total": 6, "by_status": {"normal": 1, "warning": 0, "critical": 1, "stale": 4}}
    # Readings every ten minutes: six in the last hour (plus the two new ones), a day's worth in the last day.
    assert body["readings"]["last_hour"] in (6 + 2, 5 + 2)
    assert body["readings"]["last_day"] in (24 * 6 + 2, 24 * 6 - 1 + 2)
    assert body["ingest"]["readings_per_s_1m"] == round((180 + 2) / 60, 2)
    assert body["ingest"]["readings_per_s_5m"] == round((180 + 2) / 300, 2)
    assert body["ingest"]["last_hour"] == {"batches": 3, "stored": 182, "duplicates": 0, "rejected": 0}
    assert body["ingest"]["batches_last_day"] == {"queued": 0, "processing": 0, "failed": 0}
    assert body["rollups"]["last_refresh_batches"] == 1 and body["rollups"]["backfilled"] is True


def test_alerts_and_notifications_when_the_alerting_apps_are_there(world, viewer_api):
    try:
        alert = apps.get_model("alerts", "Alert")
        apps.get_model("notifications", "Notification")
    except LookupError:
        body = viewer_api.get(STATS).json()
        assert body["alerts"] is None and body["notifications"] is None
        return
    now = timezone.now()
    # Device-offline alerts need no threshold; one unresolved per device.
    for device_id, severity, state in [
        ("env-001", "warning", "open"),
        ("env-002", "critical", "open"),
        ("dc-meter-001", "critical", "acknowledged"),
        ("env-001", "critical", "resolved"),
    ]:
        alert.objects.create(
            kind="device_offline",
            device=world.devices[device_id],
            severity=severity,
            max_severity=severity,
            state=state,
            breach_started_at=now,
            opened_at=now,
            resolved_at=now if state == "resolved" else None,
        )

    body = viewer_api.get(STATS).json()

    assert body["alerts"] == {"open": {"warning": 1, "critical": 1}, "acknowledged": {"warning": 0, "critical": 1}}
    assert set(body["notifications"]) == {"last_day_by_status", "last_day_by_channel"}
    assert body["notifications"]["last_day_by_status"]["sent"] == 0


@pytest.mark.parametrize(("principal", "expected"), [("anonymous", 401), ("device", 403), ("viewer", 200)])
def test_who_may_read_stats(world, api_as, principal, expected):
    assert api_as(principal).get(STATS).status_code == expected


def test_query_count_does_not_grow_with_the_plant(world, viewer_api, django_assert_max_num_queries):
    # About two dozen (savepoints included), however many devices, sensors, readings and alerts there are.
    with django_assert_max_num_queries(25):
        assert viewer_api.get(STATS).status_code == 200
