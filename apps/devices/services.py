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
