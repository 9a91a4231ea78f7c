"""Effective thresholds: the type's bands with a sensor's mapping laid over them."""

from __future__ import annotations

from dataclasses import dataclass

from apps.core.generation_cache import GenerationCache
from apps.core.sql import binary_cursor
from apps.thresholds.models import BAND_FIELDS, SensorThresholdMapping, Threshold
from apps.thresholds.severity import severity_of

OVERRIDABLE_FIELDS = (*BAND_FIELDS, "hysteresis", "min_duration_s")


@dataclass(frozen=True)
class EffectiveThreshold:
    threshold_id: int
    sensor_id: int
    warning_low: float | None
    warning_high: float | None
    critical_low: float | None
    critical_high: float | None
    hysteresis: float
    min_duration_s: int

    def severity_of(self, value: float) -> str:
        """normal, warning or critical for one value (no hysteresis: that needs the previous state)."""
        return severity_of(self, value)


def merge_bands(threshold: dict, mapping: dict | None) -> dict:
    """The threshold's fields with the mapping's non-empty ones laid over them."""
    merged = {field: threshold[field] for field in OVERRIDABLE_FIELDS}
    if mapping:
        merged.update({field: mapping[field] for field in OVERRIDABLE_FIELDS if mapping.get(field) is not None})
    return merged


# Joined through unnest(): "= ANY(array)" is a linear search per row under a prepared plan.
_MAPPINGS = (
    "SELECT m.sensor_id, m.threshold_id, m.enabled, {fields} FROM unnest(%s::bigint[]) AS wanted(id)"
    " JOIN {table} m ON m.sensor_id = wanted.id"
).format(fields=", ".join(f"m.{field}" for field in OVERRIDABLE_FIELDS), table=SensorThresholdMapping._meta.db_table)


# Effective thresholds by (sensor id, sensor type id), an empty list for a sensor without one: every batch asks
# for those of all its sensors. Saving or deleting a threshold or a mapping bumps the generation
# (apps/thresholds/apps.py); a sensor that changes type is another key.
THRESHOLDS_CACHE = GenerationCache("thresholds:effective-generation", ttl_s=30)


def effective_thresholds(sensors: list[tuple[int, int]]) -> dict[int, list[EffectiveThreshold]]:
    """Effective thresholds for (sensor_id, sensor_type_id) pairs, by sensor id: from this process's cache, the
    sensors it does not hold in two queries whatever their number. Sensors without one are left out."""
    if not sensors:
        return {}
    found = THRESHOLDS_CACHE.get_many(sensors, _effective_thresholds_load)
    return {sensor_id: thresholds for (sensor_id, _), thresholds in found.items() if thresholds}


def _effective_thresholds_load(sensors: list[tuple[int, int]]) -> dict[tuple[int, int], list[EffectiveThreshold]]:
    """Two queries. (The mappings are read with one array parameter rather than an IN list of thousands, and
    sensors without a mapping share their threshold's bands without merging.)"""
    type_ids = {type_id for _, type_id in sensors}
    sensor_ids = [sensor_id for sensor_id, _ in sensors]
    thresholds_by_type: dict[int, list[dict]] = {}
    for row in Threshold.objects.filter(sensor_type_id__in=type_ids, enabled=True).values(
        "id", "sensor_type_id", *OVERRIDABLE_FIELDS
    ):
        thresholds_by_type.setdefault(row["sensor_type_id"], []).append(row)
    if not thresholds_by_type:
        return {pair: [] for pair in sensors}
    with binary_cursor() as cursor:
        cursor.execute(_MAPPINGS, [sensor_ids])
        columns = [column.name for column in cursor.description]
        mappings = {(row[0], row[1]): dict(zip(columns, row, strict=True)) for row in cursor.fetchall()}
    result: dict[tuple[int, int], list[EffectiveThreshold]] = {}
    for sensor_id, type_id in sensors:
        effective = result[(sensor_id, type_id)] = []
        for threshold in thresholds_by_type.get(type_id, []):
            mapping = mappings.get((sensor_id, threshold["id"]))
            if mapping is not None and not mapping["enabled"]:
                continue
            merged = merge_bands(threshold, mapping)
            effective.append(EffectiveThreshold(threshold_id=threshold["id"], sensor_id=sensor_id, **merged))
    return result
