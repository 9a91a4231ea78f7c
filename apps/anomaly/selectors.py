"""Effective anomaly rules: the type's rule with a sensor's override laid over it, defaults filled in."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from datetime import UTC, datetime

import numpy as np
from django.core.cache import cache
from django.db import connection

from apps.anomaly.detectors import FIRST_TS, LAST_TS, N, Settings, expected_band, warmed_up
from apps.anomaly.models import PARAMETER_FIELDS, AnomalyRule, AnomalyState
from apps.anomaly.states import decode_state
from apps.core.generation_cache import GenerationCache
from apps.core.sql import binary_cursor
from apps.devices.models import Sensor

_DEFAULTS = {field.name: field.default for field in fields(Settings)}


@dataclass(frozen=True)
class EffectiveRule:
    sensor_id: int
    type_rule_id: int | None
    override_id: int | None
    settings: Settings


def merge_parameters(type_rule: dict | None, override: dict | None) -> dict:
    """Every parameter: the override's where set, else the type rule's where set, else the default."""
    merged = dict(_DEFAULTS)
    for layer in (type_rule, override):
        if layer:
            merged.update({field: layer[field] for field in PARAMETER_FIELDS if layer.get(field) is not None})
    return merged


def rule_parameters(rule: AnomalyRule, type_rule: AnomalyRule | None = None) -> dict:
    """The parameters in force for a rule: a type's rule with defaults, an override over its type's rule."""
    as_dict = {field: getattr(rule, field) for field in PARAMETER_FIELDS}
    if rule.sensor_id is None:
        return merge_parameters(as_dict, None)
    inherited = {field: getattr(type_rule, field) for field in PARAMETER_FIELDS} if type_rule else None
    return merge_parameters(inherited, as_dict)


# Joined through unnest(): "= ANY(array)" is a linear search per row under a prepared plan.
_OVERRIDES = (
    "SELECT r.id, r.sensor_id, r.enabled, {fields} FROM unnest(%s::bigint[]) AS wanted(id)"
    " JOIN {table} r ON r.sensor_id = wanted.id"
).format(fields=", ".join(f"r.{field}" for field in PARAMETER_FIELDS), table=AnomalyRule._meta.db_table)


def _enabled(type_rule: dict | None, override: dict | None) -> bool:
    """An override decides for its sensor; without one, the type's rule."""
    return override["enabled"] if override is not None else bool(type_rule and type_rule["enabled"])


# Effective rules by (sensor id, sensor type id), None for a sensor without an enabled rule: every batch asks for
# those of all its sensors. Saving or deleting a rule bumps the generation (apps/anomaly/apps.py); a sensor that
# changes type is another key.
RULES_CACHE = GenerationCache("anomaly:rules-generation", ttl_s=30)


def effective_anomaly_rules(sensors: list[tuple[int, int]]) -> dict[int, EffectiveRule]:
    """The enabled effective rule of each of these (sensor_id, sensor_type_id) pairs, by sensor id: from this
    process's cache, the sensors it does not hold in two queries whatever their number. Sensors without a rule,
    or switched off, are left out."""
    if not sensors:
        return {}
    found = RULES_CACHE.get_many(sensors, _effective_rules_load)
    return {sensor_id: rule for (sensor_id, _), rule in found.items() if rule is not None}


def _effective_rules_load(sensors: list[tuple[int, int]]) -> dict[tuple[int, int], EffectiveRule | None]:
    """Two queries. Sensors without an override share their type's Settings object."""
    type_ids = sorted({type_id for _, type_id in sensors})
    type_rules = {
        row["sensor_type_id"]: row
        for row in AnomalyRule.objects.filter(sensor_type_id__in=type_ids).values(
            "id", "sensor_type_id", "enabled", *PARAMETER_FIELDS
        )
    }
    with binary_cursor() as cursor:
        cursor.execute(_OVERRIDES, [sorted({sensor_id for sensor_id, _ in sensors})])
        columns = [column.name for column in cursor.description]
        overrides = {row[1]: dict(zip(columns, row, strict=True)) for row in cursor.fetchall()}
    shared: dict[int, Settings] = {}
    result: dict[tuple[int, int], EffectiveRule | None] = {}
    for sensor_id, type_id in sensors:
        type_rule, override = type_rules.get(type_id), overrides.get(sensor_id)
        if not _enabled(type_rule, override):
            result[(sensor_id, type_id)] = None
            continue
        if override is None:
            if type_id not in shared:
                shared[type_id] = Settings(**merge_parameters(type_rule, None))
            settings = shared[type_id]
        else:
            settings = Settings(**merge_parameters(type_rule, override))
        result[(sensor_id, type_id)] = EffectiveRule(
            sensor_id=sensor_id,
            type_rule_id=type_rule["id"] if type_rule else None,
            override_id=override["id"] if override else None,
            settings=settings,
        )
    return result


# Whether any anomaly rule is enabled at all, so that a plant without anomaly detection pays one cache read
# per batch. Saving or deleting a rule deletes the key (apps/anomaly/apps.py); the short timeout bounds what a
# change that sends no signal (a queryset update) could cost.
ANY_RULE_CACHE_KEY = "anomaly:any-enabled-rule"
_ANY_RULE_TIMEOUT_S = 30


def any_rule_enabled() -> bool:
    cached = cache.get(ANY_RULE_CACHE_KEY)
    if cached is None:
        cached = AnomalyRule.objects.filter(enabled=True).exists()
        cache.set(ANY_RULE_CACHE_KEY, cached, _ANY_RULE_TIMEOUT_S)
    return bool(cached)


def forget_any_rule_enabled(**_kwargs) -> None:
    cache.delete(ANY_RULE_CACHE_KEY)


# --- The expected band of one sensor ---------------------------------------------------------------------------

# The sensor, its type's rule, its override and its state in one query.
_BAND_INPUTS = """
SELECT s.id, s.key, st.version, st.state, t.id IS NOT NULL, t.enabled, {type_fields}, o.id IS NOT NULL, o.enabled,
       {override_fields}
  FROM {sensors} s
  LEFT JOIN {rules} t ON t.sensor_type_id = s.sensor_type_id
  LEFT JOIN {rules} o ON o.sensor_id = s.id
  LEFT JOIN {states} st ON st.sensor_id = s.id
 WHERE {{where}}
""".format(
    type_fields=", ".join(f"t.{field}" for field in PARAMETER_FIELDS),
    override_fields=", ".join(f"o.{field}" for field in PARAMETER_FIELDS),
    sensors=Sensor._meta.db_table,
    rules=AnomalyRule._meta.db_table,
    states=AnomalyState._meta.db_table,
)


class BandStatus:
    NO_RULE = "no_rule"
    WARMING_UP = "warming_up"
    READY = "ready"


@dataclass(frozen=True)
class SensorBand:
    """A sensor's expected band over a time grid, or why there is none (`status`). The points are the band of
    the state as it is now, projected: what a reading at each time would be scored against."""

    sensor_id: int
    sensor_key: str
    status: str
    settings: Settings | None
    learned_readings: int
    learned_from: datetime | None
    learned_until: datetime | None
    ts: np.ndarray  # epoch seconds; empty unless ready
    expected: np.ndarray
    low: np.ndarray
    high: np.ndarray
    seasonal: np.ndarray


def _moment(epoch_s: float) -> datetime | None:
    return None if math.isnan(epoch_s) else datetime.fromtimestamp(epoch_s, UTC)


def sensor_band(*, sensor_id: int | None = None, sensor_key: str | None = None, ts: np.ndarray) -> SensorBand | None:
    """The expected band of the sensor with this id (or key) at the times `ts` (epoch seconds), from its
    enabled effective rule and its stored state, in one query; None for an unknown sensor.

    1. Load the sensor with its type's rule, its override and its state.
    2. No enabled effective rule: `no_rule`. A state that has not learned its warm-up yet: `warming_up`. In
       both cases no points: nothing would be scored against a band yet.
    3. Otherwise the state, as it is, projected over `ts` by the detectors' own band (detectors.expected_band):
       hour-of-day shaped where the seasonal model is in force, flat where the flat level is.
    """
    where, value = ("s.id = %s", sensor_id) if sensor_id is not None else ("s.key = %s", sensor_key)
    with connection.cursor() as cursor:
        cursor.execute(_BAND_INPUTS.format(where=where), [value])
        row = cursor.fetchone()
    if row is None:
        return None
    width = len(PARAMETER_FIELDS)
    found_id, key, version, raw_state = row[:4]
    type_rule = _rule_columns(row[4], row[5], row[6 : 6 + width])
    override = _rule_columns(row[6 + width], row[7 + width], row[8 + width :])
    state = decode_state(raw_state, version)
    empty = np.empty(0)
    answer = {
        "sensor_id": found_id,
        "sensor_key": key,
        "learned_readings": int(state[N]),
        "learned_from": _moment(state[FIRST_TS]),
        "learned_until": _moment(state[LAST_TS]),
        "ts": empty,
        "expected": empty,
        "low": empty,
        "high": empty,
        "seasonal": np.empty(0, dtype=bool),
    }
    if not _enabled(type_rule, override):
        return SensorBand(status=BandStatus.NO_RULE, settings=None, **answer)
    settings = Settings(**merge_parameters(type_rule, override))
    params = settings.vector()[np.newaxis]
    if not warmed_up(state[np.newaxis], params)[0]:
        return SensorBand(status=BandStatus.WARMING_UP, settings=settings, **answer)
    ts = np.asarray(ts, dtype=np.float64)
    band = expected_band(
        np.broadcast_to(state, (len(ts), len(state))), np.broadcast_to(params, (len(ts), params.shape[1])), ts
    )
    answer.update(ts=ts, expected=band.expected, low=band.low, high=band.high, seasonal=band.seasonal)
    return SensorBand(status=BandStatus.READY, settings=settings, **answer)


def _rule_columns(exists: bool, enabled: bool | None, values: tuple) -> dict | None:
    if not exists:
        return None
    return {"enabled": enabled, **dict(zip(PARAMETER_FIELDS, values, strict=True))}


# A month of hourly points with room to spare; a longer range takes a longer step.
MAX_BAND_POINTS = 2000
DEFAULT_BAND_STEP_S = 3600


def band_point_count(start_s: float, end_s: float, step_s: int) -> int:
    """How many points `band_times` gives."""
    inside = max(0, math.ceil(end_s / step_s) - 1 - math.floor(start_s / step_s))
    return inside + 2


def default_band_step(start_s: float, end_s: float) -> int:
    """An hour, or the shortest whole number of hours that keeps the range within MAX_BAND_POINTS."""
    step = DEFAULT_BAND_STEP_S
    while band_point_count(start_s, end_s, step) > MAX_BAND_POINTS:
        step = max(step + DEFAULT_BAND_STEP_S, math.ceil((end_s - start_s) / (MAX_BAND_POINTS - 2) / 3600) * 3600)
    return step


def band_times(start_s: float, end_s: float, step_s: int) -> np.ndarray:
    """`start`, every multiple of `step_s` since the epoch strictly between `start` and `end`, and `end`: with
    a step of an hour the points fall on the hours, where an hour-of-day band changes, and each point's band
    holds until the next point."""
    first = (math.floor(start_s / step_s) + 1) * step_s
    inside = np.arange(first, end_s, step_s, dtype=np.float64)
    return np.concatenate([[start_s], inside[inside < end_s], [end_s]])
