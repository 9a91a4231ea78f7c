from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from django.db import connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from apps.core.errors import ApplicationError
from apps.devices.keys import KEY_PREFIX_LENGTH, hash_ingest_key, new_ingest_key
from apps.devices.models import Device, Sensor, SensorType


def _set_new_key(device: Device) -> str:
    key = new_ingest_key()
    device.ingest_key_hash = hash_ingest_key(key)
    device.ingest_key_prefix = key[:KEY_PREFIX_LENGTH]
    device.ingest_key_rotated_at = timezone.now()
    return key


@transaction.atomic
def device_create(**fields) -> tuple[Device, str]:
    """Create a device; returns it with its ingest key, which is not stored and cannot be shown again."""
    device = Device(**fields)
    key = _set_new_key(device)
    device.save()
    return device, key


@transaction.atomic
def device_rotate_key(*, device: Device) -> str:
    """Replace the device's ingest key; the old one stops working at once."""
    key = _set_new_key(device)
    device.save(update_fields=["ingest_key_hash", "ingest_key_prefix", "ingest_key_rotated_at", "updated_at"])
    return key


def device_record_heartbeat(
    *, device: Device, fw_version: str | None = None, seen_at: datetime | None = None
) -> Device:
    """A sign of life: the device is online, seen now, and reports its firmware when it says it."""
    device.last_seen = seen_at or timezone.now()
    device.connection_status = Device.ConnectionStatus.ONLINE
    update_fields = ["last_seen", "connection_status", "updated_at"]
    if fw_version:
        device.fw_version = fw_version
        update_fields.append("fw_version")
    device.save(update_fields=update_fields)
    return device


def device_mark_offline(*, device: Device, at: datetime) -> bool:
    """The device said it is going away (its status message, or its MQTT last will): offline at once.
    False when it already was offline (the first report's time is kept)."""
    changed = (
        Device.objects.filter(pk=device.pk)
        .exclude(connection_status=Device.ConnectionStatus.OFFLINE)
        .update(connection_status=Device.ConnectionStatus.OFFLINE, offline_since=at, updated_at=timezone.now())
    )
    return bool(changed)


OTA_TEXT_FIELDS = {"status": 32, "fw_version": 64, "detail": 500}


def device_record_ota_status(*, device: Device, report: dict, at: datetime) -> Device:
    """Keep the device's latest OTA report ({"status", "progress", "fw_version", "detail"}); a successful
    update also sets the device's firmware version."""
    errors: dict[str, list[str]] = {}
    kept: dict = {}
    for name, limit in OTA_TEXT_FIELDS.items():
        value = report.get(name)
        if value is None:
            continue
        if not isinstance(value, str) or len(value) > limit or "\x00" in value:
            errors[name] = [f"Must be a string of at most {limit} characters."]
        else:
            kept[name] = value
    if "status" not in kept and "status" not in errors:
        errors["status"] = ["This field is required."]
    progress = report.get("progress")
    if progress is not None:
        if isinstance(progress, bool) or not isinstance(progress, int | float) or not 0 <= progress <= 100:
            errors["progress"] = ["Must be a number from 0 to 100."]
        else:
            kept["progress"] = progress
    if errors:
        raise ApplicationError("Invalid OTA status report.", errors=errors)
    kept["received_at"] = at.isoformat()
    device.ota_status = kept
    device.ota_updated_at = at
    update_fields = ["ota_status", "ota_updated_at", "updated_at"]
    if kept["status"] == "success" and kept.get("fw_version"):
        device.fw_version = kept["fw_version"]
        update_fields.append("fw_version")
    device.save(update_fields=update_fields)
    return device


# Rows are always locked in id order, like the ingest pipeline does, so the sweep and a batch touching the
# same devices cannot deadlock.
_STALE_ONLINE = """
SELECT id FROM devices_device
 WHERE connection_status = 'online' AND offline_since IS NOT NULL AND last_seen <= offline_since
 ORDER BY id FOR UPDATE
"""
_SILENT = """
SELECT id FROM devices_device
 WHERE connection_status IN ('online', 'unknown') AND last_seen IS NOT NULL
   AND last_seen < %s - COALESCE(offline_after_s, %s) * interval '1 second'
 ORDER BY id FOR UPDATE
"""


def _ids(sql: str, params: list) -> list[int]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return [row[0] for row in cursor.fetchall()]


@transaction.atomic
def devices_connectivity_sweep(
    *,
    default_offline_after_s: int,
    report_offline: Callable[[Device], None],
    report_online: Callable[[Device], None],
    now: datetime | None = None,
) -> tuple[int, int]:
    """Mark silent devices offline and tell alerting about every change of connectivity, whatever made it.
    Returns (devices reported offline, devices reported back).

    1. A device marked online by data older than the moment it went offline (a batch in flight when its
       last will arrived) is offline again.
    2. Devices silent for longer than their offline_after_s (or the default) go offline, since last seen.
    3. Active devices offline and not yet reported are reported (report_offline) and flagged.
    4. Devices online again with data newer than their going offline: reported back (report_online) if
       they had been reported offline, and their offline_since is cleared.
    The reports run in this transaction: if one fails nothing is flagged, and the next sweep tries again.
    """
    now = now or timezone.now()
    stale = _ids(_STALE_ONLINE, [])
    if stale:
        Device.objects.filter(pk__in=stale).update(connection_status=Device.ConnectionStatus.OFFLINE)
    silent = _ids(_SILENT, [now, default_offline_after_s])
    if silent:
        Device.objects.filter(pk__in=silent).update(
            connection_status=Device.ConnectionStatus.OFFLINE, offline_since=F("last_seen"), updated_at=now
        )

    went_offline = list(
        Device.objects.select_for_update()
        .filter(connection_status=Device.ConnectionStatus.OFFLINE, offline_alerted=False, status=Device.Status.ACTIVE)
        .order_by("pk")
    )
    for device in went_offline:
        report_offline(device)
    if went_offline:
        Device.objects.filter(pk__in=[d.pk for d in went_offline]).update(offline_alerted=True)

    back = list(
        Device.objects.select_for_update()
        .filter(connection_status=Device.ConnectionStatus.ONLINE)
        .filter(Q(offline_alerted=True) | Q(offline_since__isnull=False))
        .order_by("pk")
    )
    reported_back = 0
    for device in back:
        if device.offline_alerted:
            report_online(device)
            reported_back += 1
    if back:
        Device.objects.filter(pk__in=[d.pk for d in back]).update(offline_alerted=False, offline_since=None)
    return len(went_offline), reported_back


@transaction.atomic
def sensor_create(*, device: Device, sensor_type: SensorType, channel: str = "", key: str = "", **fields) -> Sensor:
    """Create a sensor; its key defaults to device/type[/channel] and its location to the device's."""
    key = key or Sensor.default_key(device.device_id, sensor_type.code, channel)
    if Sensor.objects.filter(key=key).exists():
        raise ApplicationError("A sensor with this key already exists.", errors={"key": [f"'{key}' is taken."]})
    fields.setdefault("location", device.location)
    if fields["location"] is None:
        fields["location"] = device.location
    return Sensor.objects.create(device=device, sensor_type=sensor_type, channel=channel, key=key, **fields)
