"""Effective anomaly rules: the type's rule with a sensor's override laid over it, defaults filled in."""

from __future__ import annotations

from dataclasses import dataclass, fields

from django.core.cache import cache
from django.db import connection

from apps.anomaly.detectors import Settings
from apps.anomaly.models import PARAMETER_FIELDS, AnomalyRule

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


def effective_anomaly_rules(sensors: list[tuple[int, int]]) -> dict[int, EffectiveRule]:
    """The enabled effective rule of each of these (sensor_id, sensor_type_id) pairs, by sensor id, in two
    queries whatever the number of sensors. Sensors without a rule, or switched off, are left out. Sensors
    without an override share their type's Settings object."""
    if not sensors:
        return {}
    type_ids = sorted({type_id for _, type_id in sensors})
    type_rules = {
        row["sensor_type_id"]: row
        for row in AnomalyRule.objects.filter(sensor_type_id__in=type_ids).values(
            "id", "sensor_type_id", "enabled", *PARAMETER_FIELDS
        )
    }
    with connection.cursor() as cursor:
        cursor.execute(_OVERRIDES, [sorted({sensor_id for sensor_id, _ in sensors})])
        columns = [column.name for column in cursor.description]
        overrides = {row[1]: dict(zip(columns, row, strict=True)) for row in cursor.fetchall()}
    shared: dict[int, Settings] = {}
    result: dict[int, EffectiveRule] = {}
    for sensor_id, type_id in sensors:
        type_rule, override = type_rules.get(type_id), overrides.get(sensor_id)
        enabled = override["enabled"] if override is not None else bool(type_rule and type_rule["enabled"])
        if not enabled:
            continue
        if override is None:
            if type_id not in shared:
                shared[type_id] = Settings(**merge_parameters(type_rule, None))
            settings = shared[type_id]
        else:
            settings = Settings(**merge_parameters(type_rule, override))
        result[sensor_id] = EffectiveRule(
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
