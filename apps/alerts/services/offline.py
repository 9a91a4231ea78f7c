"""Device-offline alerts: the connectivity sweep (apps/devices/connectivity.py) calls these for each change it finds.
They have the lifecycle and the subscriptions of threshold alerts; evaluation never resolves them, since only
the sweep knows whether data is a real return or readings that were in flight when the device went away."""

from __future__ import annotations

from datetime import datetime

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from apps.alerts.models import Alert, AlertEvent
from apps.alerts.services.events import events_save
from apps.devices.models import Device


def _unresolved_offline(device_id: int):
    return Alert.objects.filter(kind=Alert.Kind.DEVICE_OFFLINE, device_id=device_id).exclude(state=Alert.State.RESOLVED)


def alert_device_offline(*, device_id: int, since: datetime | None, now: datetime | None = None) -> Alert | None:
    """Open a device-offline alert (the device has sent nothing since `since`). Idempotent: while one is
    unresolved, it is returned as is. None if the device does not exist. Runs in the caller's transaction;
    the fan-out is queued after its commit."""
    now = now or timezone.now()
    with transaction.atomic():
        # The device row lock serializes two detectors racing for the same device; the partial unique
        # constraint would refuse the second alert anyway.
        device = Device.objects.select_for_update().filter(pk=device_id).only("id", "location_id").first()
        if device is None:
            return None
        existing = _unresolved_offline(device_id).first()
        if existing is not None:
            return existing
        alert = Alert.opened(
            Alert.Kind.DEVICE_OFFLINE,
            at=now,
            severity=settings.ALERT_DEVICE_OFFLINE_SEVERITY,
            device_id=device_id,
            location_id=device.location_id,
            breach_started_at=since,
        )
        alert.save()
        comment = f"No data since {since.isoformat()}." if since else "The device has never sent data."
        events_save([alert.event(AlertEvent.Kind.OPENED, at=now, comment=comment)])
    return alert


def alert_device_online(*, device_id: int, at: datetime | None = None) -> Alert | None:
    """Resolve the device's unresolved offline alert, if it has one (which is returned)."""
    at = at or timezone.now()
    with transaction.atomic():
        alert = _unresolved_offline(device_id).select_for_update().first()
        if alert is None:
            return None
        event = alert.resolve(Alert.Resolution.DEVICE_ONLINE, at=at, reason="The device reported again.")
        alert.save(update_fields=Alert.RESOLVE_FIELDS)
        events_save([event])
    return alert
