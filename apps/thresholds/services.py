"""Writes of thresholds and per-sensor mappings, and every rule they keep. The API saves through these
functions; the admin shows `threshold_errors` / `mapping_errors` as field errors and then saves through them
too; the demo seeder and the tests' factories call them like any other client.

The rules, each error naming its field:
- band ends and hysteresis are finite numbers, hysteresis is not negative;
- bands are in order wherever both ends are set, critical_low <= warning_low < warning_high <= critical_high
  (the database constraints say the same, without naming the field);
- a threshold's name is unique within its sensor type;
- a mapping joins a sensor to a threshold of the sensor's own type, at most once; its overrides are in order
  among themselves and with the bands they inherit;
- existing overrides stay ordered: changing a threshold's bands must not leave a mapped sensor with crossed
  bands, and a threshold with mappings keeps its sensor type.
Field types and ranges (min_duration_s is a non-negative integer) are the model fields', which the API's
serializers and the admin's forms derive from.

Every writer first locks the row its checks read: the sensor type (a threshold's name is unique in it), the
threshold (its bands are what mappings inherit, and its mappings are what its bands must suit). So a check and
the write it allows never interleave with another writer's: two thresholds of one name, two mappings of one
sensor to one threshold, a new override and a change of the bands under it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from django.db import models, transaction

from apps.core.errors import ApplicationError
from apps.devices.models import Sensor, SensorType
from apps.thresholds.models import BAND_FIELDS, BAND_ORDER, SensorThresholdMapping, Threshold
from apps.thresholds.selectors import OVERRIDABLE_FIELDS, merge_bands

THRESHOLD_FIELDS = ("sensor_type", "name", *OVERRIDABLE_FIELDS, "enabled")
MAPPING_FIELDS = ("sensor", "threshold", *OVERRIDABLE_FIELDS, "enabled")

FieldErrors = dict[str, list[str]]


def band_order_errors(bands: Mapping[str, float | None]) -> FieldErrors:
    """Errors keyed by the upper field of each pair out of order (BAND_ORDER), wherever both ends are set."""
    errors: FieldErrors = {}
    for lower, upper, strict in BAND_ORDER:
        low, high = bands.get(lower), bands.get(upper)
        if low is None or high is None:
            continue
        if (strict and low >= high) or (not strict and low > high):
            relation = "greater than" if strict else "at least"
            errors.setdefault(upper, []).append(f"Must be {relation} {lower} ({low}).")
    return errors


def _number_errors(values: Mapping[str, float | int | None]) -> FieldErrors:
    # A NaN band would order after every number in PostgreSQL and compare false in Python, so the two
    # classifiers (apps/thresholds/severity.py) would disagree; the API's and the admin's number fields
    # refuse it already, this covers every other caller.
    errors: FieldErrors = {}
    for field in (*BAND_FIELDS, "hysteresis"):
        value = values.get(field)
        if value is None:
            continue
        if not math.isfinite(value):
            errors[field] = ["Must be a finite number."]
        elif field == "hysteresis" and value < 0:
            errors[field] = ["Must not be negative."]
    return errors


def _bands(row: Threshold | SensorThresholdMapping) -> dict[str, float | int | None]:
    return {field: getattr(row, field) for field in OVERRIDABLE_FIELDS}


def _bands_clean(errors: FieldErrors) -> bool:
    return not any(field in errors for field in BAND_FIELDS)


def _add(errors: FieldErrors, more: FieldErrors) -> None:
    for field, messages in more.items():
        errors.setdefault(field, []).extend(messages)


def _conflicts_with_mappings(threshold: Threshold, bands: dict) -> FieldErrors:
    """A stored threshold's mappings against its new type and bands (the first sensor, by key, that conflicts)."""
    mappings = SensorThresholdMapping.objects.filter(threshold_id=threshold.pk).select_related("sensor")
    for mapping in mappings.order_by("sensor__key"):
        if mapping.sensor.sensor_type_id != threshold.sensor_type_id:
            return {"sensor_type": ["Sensors are mapped to this threshold; delete their mappings before moving it."]}
        errors = band_order_errors(merge_bands(bands, _bands(mapping)))
        if errors:
            return {
                field: [f"With the override for sensor {mapping.sensor.key}: {message}" for message in messages]
                for field, messages in errors.items()
            }
    return {}


def threshold_errors(*, threshold: Threshold) -> FieldErrors:
    """What keeps `threshold` (new, or changed and not yet saved) from being saved, by field; empty if nothing.

    1. Numbers finite, hysteresis not negative, bands in order.
    2. The name free within the sensor type (unless the type is not saved yet: nothing can clash then).
    3. For a stored threshold with bands in order: its mappings are of sensors of its type, and every
       override is still in order with the new bands.
    """
    bands = _bands(threshold)
    errors = _number_errors(bands)
    if _bands_clean(errors):
        _add(errors, band_order_errors(bands))
    if threshold.sensor_type_id is not None:
        clash = Threshold.objects.filter(sensor_type_id=threshold.sensor_type_id, name=threshold.name)
        if clash.exclude(pk=threshold.pk).exists():
            _add(errors, {"name": [f"This sensor type already has a threshold named {threshold.name!r}."]})
    if threshold.pk is not None and _bands_clean(errors):
        _add(errors, _conflicts_with_mappings(threshold, bands))
    return errors


def mapping_errors(*, mapping: SensorThresholdMapping) -> FieldErrors:
    """What keeps `mapping` (new, or changed and not yet saved) from being saved, by field; empty if nothing.

    1. Numbers finite, hysteresis not negative.
    2. Without both a sensor and a threshold nothing more can be checked (the caller reports the missing one).
    3. The threshold is of the sensor's type; the sensor has no other mapping to it (unless either is not
       saved yet).
    4. The overrides in order among themselves, then with the bands they inherit from the threshold.
    """
    overrides = _bands(mapping)
    errors = _number_errors(overrides)
    # getattr with a default: an unset relation raises RelatedObjectDoesNotExist, an AttributeError.
    sensor: Sensor | None = getattr(mapping, "sensor", None)
    threshold: Threshold | None = getattr(mapping, "threshold", None)
    if sensor is None or threshold is None:
        return errors
    if sensor.sensor_type_id != threshold.sensor_type_id:
        _add(errors, {"threshold": [f"Threshold belongs to another sensor type than sensor {sensor.key}."]})
        return errors
    if sensor.pk is not None and threshold.pk is not None:
        clash = SensorThresholdMapping.objects.filter(sensor_id=sensor.pk, threshold_id=threshold.pk)
        if clash.exclude(pk=mapping.pk).exists():
            _add(errors, {"threshold": ["This sensor already has a mapping for this threshold."]})
    if _bands_clean(errors):
        _add(errors, band_order_errors(overrides) or band_order_errors(merge_bands(_bands(threshold), overrides)))
    return errors


def _raise_if_any(errors: FieldErrors, what: str) -> None:
    if errors:
        raise ApplicationError(f"Invalid {what}: {', '.join(errors)}.", errors=errors)


def _lock(model: type[models.Model], pk: int) -> None:
    # FOR NO KEY UPDATE, not FOR UPDATE: it still serializes the writers here, without blocking the foreign
    # key checks of rows being inserted elsewhere that point at the locked one (sensors of a type, say).
    list(model.objects.select_for_update(no_key=True).filter(pk=pk).values_list("pk"))


def _locked_threshold(pk: int) -> Threshold:
    return Threshold.objects.select_related("sensor_type").select_for_update(no_key=True, of=("self",)).get(pk=pk)


def _check_fields(data: Mapping[str, Any], allowed: tuple[str, ...]) -> None:
    unknown = sorted(set(data) - set(allowed))
    if unknown:
        raise TypeError(f"Not a field that can be changed here: {', '.join(unknown)}")


@transaction.atomic
def threshold_create(
    *,
    sensor_type: SensorType,
    name: str = "default",
    warning_low: float | None = None,
    warning_high: float | None = None,
    critical_low: float | None = None,
    critical_high: float | None = None,
    hysteresis: float = 0.0,
    min_duration_s: int = 0,
    enabled: bool = True,
) -> Threshold:
    """Create a threshold for a sensor type; ApplicationError naming the fields if it breaks a rule."""
    _lock(SensorType, sensor_type.pk)
    threshold = Threshold(
        sensor_type=sensor_type,
        name=name,
        warning_low=warning_low,
        warning_high=warning_high,
        critical_low=critical_low,
        critical_high=critical_high,
        hysteresis=hysteresis,
        min_duration_s=min_duration_s,
        enabled=enabled,
    )
    _raise_if_any(threshold_errors(threshold=threshold), "threshold")
    threshold.save()
    return threshold


@transaction.atomic
def threshold_update(*, threshold: Threshold, data: Mapping[str, Any]) -> Threshold:
    """Change the fields in `data` (any of THRESHOLD_FIELDS) of a stored threshold, over its stored values
    rather than the caller's copy; ApplicationError naming the fields if the result breaks a rule, its
    mappings' overrides included. Returns the threshold as saved."""
    _check_fields(data, THRESHOLD_FIELDS)
    _lock(SensorType, data["sensor_type"].pk if "sensor_type" in data else threshold.sensor_type_id)
    current = _locked_threshold(threshold.pk)
    for field, value in data.items():
        setattr(current, field, value)
    _raise_if_any(threshold_errors(threshold=current), "threshold")
    current.save()
    return current


@transaction.atomic
def mapping_create(
    *,
    sensor: Sensor,
    threshold: Threshold,
    warning_low: float | None = None,
    warning_high: float | None = None,
    critical_low: float | None = None,
    critical_high: float | None = None,
    hysteresis: float | None = None,
    min_duration_s: int | None = None,
    enabled: bool = True,
) -> SensorThresholdMapping:
    """Map a sensor to a threshold of its type, overriding the band fields given (None inherits) or, with
    enabled=False, switching the threshold off for the sensor; ApplicationError naming the fields if it breaks
    a rule. The overrides are checked against the threshold's bands as stored now."""
    mapping = SensorThresholdMapping(
        sensor=sensor,
        threshold=_locked_threshold(threshold.pk),
        warning_low=warning_low,
        warning_high=warning_high,
        critical_low=critical_low,
        critical_high=critical_high,
        hysteresis=hysteresis,
        min_duration_s=min_duration_s,
        enabled=enabled,
    )
    _raise_if_any(mapping_errors(mapping=mapping), "threshold mapping")
    mapping.save()
    return mapping


@transaction.atomic
def mapping_update(*, mapping: SensorThresholdMapping, data: Mapping[str, Any]) -> SensorThresholdMapping:
    """Change the fields in `data` (any of MAPPING_FIELDS) of a stored mapping, over its stored values;
    ApplicationError naming the fields if the result breaks a rule. Returns the mapping as saved."""
    _check_fields(data, MAPPING_FIELDS)
    threshold = _locked_threshold(data["threshold"].pk if "threshold" in data else mapping.threshold_id)
    current = (
        SensorThresholdMapping.objects.select_related("sensor")
        .select_for_update(no_key=True, of=("self",))
        .get(pk=mapping.pk)
    )
    for field, value in data.items():
        setattr(current, field, value)
    current.threshold = threshold
    _raise_if_any(mapping_errors(mapping=current), "threshold mapping")
    current.save()
    return current
