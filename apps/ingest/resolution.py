"""Resolve the sensor references of a batch to sensors in one query, with a short per-process cache.

Saving or deleting a sensor, device or sensor type bumps a generation number in the shared cache (Redis);
every batch reads it once and drops this process's cache when it moved, so a changed plausible range or a
deleted sensor is seen by the next batch. Both are best-effort: a save goes through without Redis (its bump
is lost, so other processes see the change within INGEST_SENSOR_CACHE_S), and a batch that cannot read the
generation resolves afresh. Changes that bypass model signals (queryset.update) are seen within
INGEST_SENSOR_CACHE_S. Unknown references are never cached, so a sensor created a moment ago is found on the
next batch.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.db import connection

from apps.core.generation_cache import GenerationCache
from apps.ingest.payload import DEVICE_FIELD_REF, DEVICE_TYPE_REF, KEY_REF, SEP


@dataclass(frozen=True, slots=True)
class ResolvedDevice:
    device_pk: int
    device_id: str
    active: bool


@dataclass(frozen=True, slots=True)
class ResolvedSensor:
    sensor_id: int
    device: ResolvedDevice
    plausible_min: float | None
    plausible_max: float | None


GENERATION_KEY = "ingest:sensor-config-generation"
# Sensors by reference. Also the generation that alerting's cache of sensors follows (apps.alerts.services).
SENSORS = GenerationCache(GENERATION_KEY, ttl_s=settings.INGEST_SENSOR_CACHE_S)

_QUERY = """
SELECT s.id, s.key, s.channel, t.code, d.id, d.device_id, d.status, d.payload_adapter, t.plausible_min, t.plausible_max
  FROM devices_sensor s
  JOIN devices_device d ON d.id = s.device_id
  JOIN devices_sensortype t ON t.id = s.sensor_type_id
 WHERE s.key = ANY(%s) OR d.device_id = ANY(%s)
"""


def clear_cache() -> None:
    SENSORS.clear()


def configuration_changed(sender, **kwargs) -> None:
    """Signal receiver for saves and deletes of sensors, devices and sensor types."""
    SENSORS.changed()


def resolve_refs(refs: list[str]) -> tuple[dict[str, ResolvedSensor], dict[str, ResolvedDevice]]:
    """Sensors for the references that exist, and the devices named by device references (known ones)."""
    resolved, missing = SENSORS.lookup(refs)
    devices: dict[str, ResolvedDevice] = {}
    if missing:
        found = _load(missing, devices)
        SENSORS.store(found)
        resolved.update(found)
    # Each device's record is the one its sensors share: a batch names the same device for many sensors.
    for sensor in resolved.values():
        devices.setdefault(sensor.device.device_id, sensor.device)
    return resolved, devices


def _load(missing: list[str], devices: dict[str, ResolvedDevice]) -> dict[str, ResolvedSensor]:
    """The sensors of these references that exist (unknown ones are left out, so never cached), adding every
    device the query named, those of unknown references included, to `devices`."""
    keys = [ref[2:] for ref in missing if ref[0] == KEY_REF]
    device_ids = sorted({ref[2:].split(SEP, 1)[0] for ref in missing if ref[0] in (DEVICE_TYPE_REF, DEVICE_FIELD_REF)})
    by_key: dict[str, ResolvedSensor] = {}
    by_type: dict[tuple[str, str, str], ResolvedSensor] = {}
    adapters: dict[str, str] = {}
    with connection.cursor() as cursor:
        cursor.execute(_QUERY, [keys, device_ids])
        for sensor_id, key, channel, code, device_pk, device_id, status, adapter, low, high in cursor.fetchall():
            device = devices.get(device_id)
            if device is None:
                device = devices[device_id] = ResolvedDevice(device_pk, device_id, status != "inactive")
            sensor = ResolvedSensor(sensor_id, device, low, high)
            by_key[key] = sensor
            by_type[(device_id, code, channel)] = sensor
            adapters[device_id] = adapter or "flat"

    field_maps = settings.INGEST_FLAT_FIELD_MAPS
    found: dict[str, ResolvedSensor] = {}
    for ref in missing:
        kind, rest = ref[0], ref[2:]
        if kind == KEY_REF:
            sensor = by_key.get(rest)
        elif kind == DEVICE_TYPE_REF:
            device_id, code, channel = rest.split(SEP)
            sensor = by_type.get((device_id, code, channel))
        else:
            device_id, field_name, *channel = rest.split(SEP)
            code = field_maps.get(adapters.get(device_id, "flat"), {}).get(field_name, field_name)
            sensor = by_type.get((device_id, code, channel[0] if channel else ""))
        if sensor is not None:
            found[ref] = sensor
    return found
