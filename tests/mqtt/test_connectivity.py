"""Connectivity: the sweep marks silent devices offline after their timeout and reports every change of
connectivity to alerting once, whichever path made it (MQTT status and last will, heartbeats, ingest)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.alerts.models import Alert
from apps.devices.connectivity import device_mark_offline, device_record_heartbeat
from apps.devices.models import Device
from apps.mqtt import topics
from workers.tasks.devices import check_connectivity

pytestmark = pytest.mark.django_db


def _set(device_id: str, **fields) -> Device:
    Device.objects.filter(device_id=device_id).update(**fields)
    return Device.objects.get(device_id=device_id)


def _offline_alerts(device: Device):
    return Alert.objects.filter(kind=Alert.Kind.DEVICE_OFFLINE, device=device)


def test_a_device_silent_past_its_timeout_goes_offline_and_an_alert_opens(world, settings):
    settings.DEVICE_OFFLINE_AFTER_S = 600
    long_ago = timezone.now() - timedelta(seconds=120)
    quiet = _set("env-001", connection_status="online", last_seen=long_ago, offline_after_s=60)
    # The same silence is within the default timeout of a device without one of its own.
    patient = _set("env-002", connection_status="online", last_seen=long_ago)

    assert check_connectivity() == {"offline": 1, "back": 0}

    quiet.refresh_from_db()
    assert (quiet.connection_status, quiet.offline_since, quiet.offline_alerted) == ("offline", long_ago, True)
    alert = _offline_alerts(quiet).get()
    assert (alert.state, alert.breach_started_at) == ("open", long_ago)
    assert Device.objects.get(pk=patient.pk).connection_status == "online"
    assert not _offline_alerts(patient).exists()
    # Nothing new to report: the next sweep changes nothing.
    assert check_connectivity() == {"offline": 0, "back": 0}


def test_the_default_timeout_applies_and_devices_never_seen_stay_unknown(world, settings):
    settings.DEVICE_OFFLINE_AFTER_S = 60
    _set("env-001", connection_status="online", last_seen=timezone.now() - timedelta(seconds=61))

    check_connectivity()

    assert Device.objects.get(device_id="env-001").connection_status == "offline"
    assert Device.objects.get(device_id="dc-meter-001").connection_status == "unknown"


def test_a_device_back_online_resolves_its_offline_alert(world):
    device = _set(
        "env-001", connection_status="online", last_seen=timezone.now() - timedelta(hours=1), offline_after_s=60
    )
    check_connectivity()

    device_record_heartbeat(device=Device.objects.get(pk=device.pk), fw_version="1.0.1")
    assert check_connectivity() == {"offline": 0, "back": 1}

    device.refresh_from_db()
    assert (device.connection_status, device.offline_since, device.offline_alerted) == ("online", None, False)
    alert = _offline_alerts(device).get()
    assert (alert.state, alert.resolution) == ("resolved", "device_online")


def test_data_older_than_the_last_will_does_not_bring_the_device_back(world):
    """A batch in flight when the last will arrived marks the device online with an older last seen (the
    ingest pipeline does not know about the will); the sweep puts it back offline, with no "back" report."""
    device = Device.objects.get(device_id="env-001")
    said_goodbye = timezone.now()
    device_mark_offline(device=device, at=said_goodbye)
    check_connectivity()
    _set("env-001", connection_status="online", last_seen=said_goodbye - timedelta(seconds=1))

    assert check_connectivity() == {"offline": 0, "back": 0}

    assert Device.objects.get(pk=device.pk).connection_status == "offline"
    assert _offline_alerts(device).get().state == "open"


def test_devices_not_active_are_not_alerted(world):
    _set("env-001", status="maintenance", connection_status="online", last_seen=timezone.now() - timedelta(hours=2))

    check_connectivity()

    assert Device.objects.get(device_id="env-001").connection_status == "offline"
    assert not Alert.objects.exists()


@pytest.mark.django_db(transaction=True)
@pytest.mark.worker
def test_a_last_will_opens_the_offline_alert_right_away(world, celery_worker, start_bridge, device_mqtt, wait_for):
    start_bridge()
    sensor = device_mqtt("env-002", will=True)
    sensor.publish(topics.HELLO, {"msg_type": "hello", "fw_version": "1.0.0"})
    wait_for(lambda: Device.objects.get(device_id="env-002").connection_status == "online")

    sensor.drop_with_will()

    # The bridge asks for a sweep at once instead of waiting for the beat's.
    alert = wait_for(
        lambda: Alert.objects.filter(kind="device_offline", device__device_id="env-002").first(), timeout=20
    )
    assert alert.state == "open"
