from __future__ import annotations

from datetime import datetime

from django.db import transaction
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
