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

import time
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache
from django.db import connection

from apps.core.redis_outage import best_effort
from apps.ingest.payload import DEVICE_FIELD_REF, DEVICE_TYPE_REF, KEY_REF, SEP


@dataclass(frozen=True, slots=True)
class ResolvedSensor:
    sensor_id: int
    device_pk: int
    device_id: str
    device_active: bool
    plausible_min: float | None
    plausible_max: float | None


@dataclass(frozen=True, slots=True)
class ResolvedDevice:
    device_pk: int
    device_id: str
    active: bool


_cache: dict[str, tuple[float, ResolvedSensor]] = {}
_CACHE_LIMIT = 200_000
GENERATION_KEY = "ingest:sensor-config-generation"
_generation: list = [None]
# Stands for "could not be read": never equal to what Redis holds, so the cache is dropped again once it answers.
_UNREADABLE = object()

_QUERY = """
SELECT s.id, s.key, s.channel, t.code, d.id, d.device_id, d.status, d.payload_adapter, t.plausible_min, t.plausible_max
  FROM devices_sensor s
  JOIN devices_device d ON d.id = s.device_id
  JOIN devices_sensortype t ON t.id = s.sensor_type_id
 WHERE s.key = ANY(%s) OR d.device_id = ANY(%s)
"""


def clear_cache() -> None:
    _cache.clear()


def bump_generation() -> None:
    """Tell every worker process that sensor configuration changed."""
    best_effort("config_generation_bump", _bump, None)


def _bump() -> None:
    if not cache.add(GENERATION_KEY, 1, timeout=None):
        try:
            cache.incr(GENERATION_KEY)
        except ValueError:  # expired or evicted between add and incr
            cache.add(GENERATION_KEY, 1, timeout=None)


def configuration_changed(sender, **kwargs) -> None:
    """Signal receiver for saves and deletes of sensors, devices and sensor types."""
    bump_generation()


def _check_generation() -> None:
    generation = best_effort("config_generation_read", lambda: cache.get(GENERATION_KEY), _UNREADABLE)
    if generation is _UNREADABLE or generation != _generation[0]:
        _cache.clear()
        _generation[0] = generation


def resolve_refs(refs: list[str]) -> tuple[dict[str, ResolvedSensor], dict[str, ResolvedDevice]]:
    """Sensors for the references that exist, and the devices named by device references (known ones)."""
    _check_generation()
    now = time.monotonic()
    resolved: dict[str, ResolvedSensor] = {}
    missing: list[str] = []
    for ref in refs:
        hit = _cache.get(ref)
        if hit is not None and hit[0] > now:
            resolved[ref] = hit[1]
        else:
            missing.append(ref)
    devices: dict[str, ResolvedDevice] = {}
    if not missing:
        _add_devices(devices, resolved)
        return resolved, devices

    keys = [ref[2:] for ref in missing if ref[0] == KEY_REF]
    device_ids = sorted({ref[2:].split(SEP, 1)[0] for ref in missing if ref[0] in (DEVICE_TYPE_REF, DEVICE_FIELD_REF)})
    by_key: dict[str, ResolvedSensor] = {}
    by_type: dict[tuple[str, str, str], ResolvedSensor] = {}
    adapters: dict[str, str] = {}
    with connection.cursor() as cursor:
        cursor.execute(_QUERY, [keys, device_ids])
        for sensor_id, key, channel, code, device_pk, device_id, status, adapter, low, high in cursor.fetchall():
            sensor = ResolvedSensor(sensor_id, device_pk, device_id, status != "inactive", low, high)
            by_key[key] = sensor
            by_type[(device_id, code, channel)] = sensor
            adapters[device_id] = adapter or "flat"
            devices[device_id] = ResolvedDevice(device_pk, device_id, status != "inactive")

    field_maps = settings.INGEST_FLAT_FIELD_MAPS
    expires = now + settings.INGEST_SENSOR_CACHE_S
    if len(_cache) > _CACHE_LIMIT:
        _cache.clear()
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
            resolved[ref] = sensor
            _cache[ref] = (expires, sensor)
    _add_devices(devices, resolved)
    return resolved, devices


def _add_devices(devices: dict[str, ResolvedDevice], resolved: dict[str, ResolvedSensor]) -> None:
    """The devices of the resolved sensors, each made once: a batch names the same device for many sensors,
    and setdefault built a frozen dataclass for every sensor only to keep the first of each device's."""
    for sensor in resolved.values():
        if sensor.device_id not in devices:
            devices[sensor.device_id] = ResolvedDevice(sensor.device_pk, sensor.device_id, sensor.device_active)
