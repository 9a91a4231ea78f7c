"""Device-offline alerts, opened and resolved by the service functions the connectivity sweep calls."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.alerts.models import Alert, AlertEvent
from apps.alerts.services import alert_device_offline, alert_device_online
from apps.notifications.models import Notification
from apps.notifications.services import notifications_fan_out
from tests.alerts.helpers import events_of, make_subscription

pytestmark = pytest.mark.django_db


def fan_out_all() -> None:
    notifications_fan_out(event_ids=list(AlertEvent.objects.filter(fanned_out_at=None).values_list("pk", flat=True)))


def test_offline_detection_opens_an_alert_per_device_and_resolves_it_when_the_device_is_back(world, settings):
    settings.ALERT_DEVICE_OFFLINE_SEVERITY = "critical"
    device = world.devices["env-001"]
    since = timezone.now() - timedelta(minutes=12)

    alert = alert_device_offline(device_id=device.pk, since=since)

    assert (alert.kind, alert.state, alert.severity, alert.device_id) == (
        "device_offline",
        "open",
        "critical",
        device.pk,
    )
    assert (alert.sensor_id, alert.threshold_id, alert.location_id) == (None, None, world.area_a1_south.pk)
    assert alert.breach_started_at == since
    assert events_of(alert) == [("opened", "critical")]

    # The sweep runs again while the device is still silent: the same alert, no new event.
    assert alert_device_offline(device_id=device.pk, since=since).pk == alert.pk
    assert AlertEvent.objects.filter(alert=alert).count() == 1

    resolved = alert_device_online(device_id=device.pk)
    assert (resolved.pk, resolved.state, resolved.resolution) == (alert.pk, "resolved", "device_online")
    assert events_of(alert) == [("opened", "critical"), ("resolved", "critical")]
    assert alert_device_online(device_id=device.pk) is None

    # Silent again later: a new episode.
    again = alert_device_offline(device_id=device.pk, since=timezone.now())
    assert again.pk != alert.pk
    assert Alert.objects.filter(kind="device_offline").count() == 2


def test_offline_alerts_go_to_subscriptions_of_the_devices_location(world):
    building_a = make_subscription(name="building A", location=world.building_a)
    building_b = make_subscription(name="building B", location=world.building_b)
    temperature_only = make_subscription(name="temperature", sensor_type=world.sensor_types["temperature"])

    alert = alert_device_offline(device_id=world.devices["env-001"].pk, since=None)
    alert_device_online(device_id=world.devices["env-001"].pk)
    fan_out_all()

    assert list(
        Notification.objects.filter(subscription=building_a).order_by("id").values_list("event__kind", flat=True)
    ) == ["opened", "resolved"]
    assert not Notification.objects.filter(subscription__in=[building_b, temperature_only]).exists()
    assert Notification.objects.filter(alert=alert).count() == 2


def test_offline_for_an_unknown_device_is_a_no_op(world):
    assert alert_device_offline(device_id=999999, since=None) is None
    assert alert_device_online(device_id=999999) is None
    assert not Alert.objects.exists()


def test_an_offline_alert_is_acknowledged_and_resolved_through_the_api_like_any_other(world, operator_api):
    alert = alert_device_offline(device_id=world.devices["env-002"].pk, since=None)

    acknowledged = operator_api.post(f"/api/v1/alerts/{alert.pk}/acknowledge/", {"comment": "power cut"}, format="json")
    resolved = operator_api.post(f"/api/v1/alerts/{alert.pk}/resolve/", {"reason": "power back"}, format="json")

    assert acknowledged.status_code == resolved.status_code == 200
    body = resolved.json()
    assert (body["kind"], body["sensor"], body["device_id"], body["state"]) == (
        "device_offline",
        None,
        "env-002",
        "resolved",
    )
    assert [e["kind"] for e in body["events"]] == ["opened", "acknowledged", "resolved"]
