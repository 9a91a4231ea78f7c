"""Each rule of apps/thresholds/services.py, refused alike by the API and by the admin: the same errors on the
same fields, and nothing stored by either."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from django.db.models import Model

from apps.thresholds.models import SensorThresholdMapping, Threshold
from tests.factories import API, World, assert_error_shape
from tests.thresholds.helpers import admin_errors, admin_url, submit

pytestmark = pytest.mark.django_db

ENDPOINTS = {Threshold: f"{API}/thresholds/", SensorThresholdMapping: f"{API}/threshold-mappings/"}


@dataclass(frozen=True)
class Rule:
    name: str
    model: type[Model]
    # The stored row the change is made to, or None: a new row is created.
    row: Callable[[World], Model | None]
    # The fields sent, as the API takes them (references by id); the admin page gets the same values.
    values: Callable[[World], dict[str, Any]]
    field: str
    says: str


def new(world: World) -> None:
    return None


def temperature_threshold(world: World) -> Threshold:
    return world.thresholds["temperature"]


def type_id(code: str) -> Callable[[World], int]:
    return lambda world: world.sensor_types[code].pk


def mapping_of(sensor_key: str, **overrides: Any) -> Callable[[World], dict[str, Any]]:
    return lambda world: {
        "sensor": world.sensors[sensor_key].pk,
        "threshold": world.thresholds["temperature"].pk,
        **overrides,
    }


# The world's temperature threshold: critical_low 0, warning_low 5, warning_high 30, critical_high 40; the
# mapping of env-002/temperature overrides warning_high to 35.
RULES = [
    Rule(
        "threshold bands out of order",
        Threshold,
        new,
        lambda world: {"sensor_type": type_id("humidity")(world), "warning_high": 50, "critical_high": 40},
        "critical_high",
        "at least warning_high (50",
    ),
    Rule(
        "an empty warning band",
        Threshold,
        new,
        lambda world: {"sensor_type": type_id("humidity")(world), "warning_low": 10, "warning_high": 10},
        "warning_high",
        "greater than warning_low (10",
    ),
    Rule(
        "critical_low above warning_low",
        Threshold,
        new,
        lambda world: {"sensor_type": type_id("humidity")(world), "critical_low": 10, "warning_low": 5},
        "warning_low",
        "at least critical_low (10",
    ),
    Rule(
        "a change is checked against the stored bands",
        Threshold,
        temperature_threshold,
        lambda world: {"warning_high": 45},
        "critical_high",
        "at least warning_high (45",
    ),
    Rule(
        "negative hysteresis",
        Threshold,
        new,
        lambda world: {"sensor_type": type_id("humidity")(world), "hysteresis": -1},
        "hysteresis",
        "Must not be negative.",
    ),
    Rule(
        "a name taken within the sensor type",
        Threshold,
        new,
        lambda world: {"sensor_type": type_id("temperature")(world), "name": "default"},
        "name",
        "already has a threshold named 'default'",
    ),
    Rule(
        "existing overrides stay ordered",
        Threshold,
        temperature_threshold,
        lambda world: {"critical_high": 32},
        "critical_high",
        "With the override for sensor env-002/temperature: Must be at least warning_high (35",
    ),
    Rule(
        "a mapped threshold keeps its sensor type",
        Threshold,
        temperature_threshold,
        lambda world: {"sensor_type": type_id("humidity")(world)},
        "sensor_type",
        "delete their mappings before moving it",
    ),
    Rule(
        "a mapping to a threshold of another sensor type",
        SensorThresholdMapping,
        new,
        mapping_of("env-001/humidity"),
        "threshold",
        "another sensor type than sensor env-001/humidity",
    ),
    Rule(
        "a second mapping of one sensor to one threshold",
        SensorThresholdMapping,
        new,
        mapping_of("env-002/temperature", warning_high=36),
        "threshold",
        "already has a mapping for this threshold",
    ),
    Rule(
        "overrides out of order",
        SensorThresholdMapping,
        new,
        mapping_of("env-001/temperature", warning_high=50, critical_high=45),
        "critical_high",
        "at least warning_high (50",
    ),
    Rule(
        "an override crossing the bands it inherits",
        SensorThresholdMapping,
        new,
        mapping_of("env-001/temperature", warning_high=50),
        "critical_high",
        "at least warning_high (50",
    ),
    Rule(
        "a changed override crossing the bands it inherits",
        SensorThresholdMapping,
        lambda world: world.mapping,
        lambda world: {"warning_low": 45},
        "warning_high",
        "greater than warning_low (45",
    ),
    Rule(
        "negative override hysteresis",
        SensorThresholdMapping,
        new,
        mapping_of("env-001/temperature", hysteresis=-0.5),
        "hysteresis",
        "Must not be negative.",
    ),
]


def stored(model: type[Model]) -> list[dict]:
    return list(model.objects.order_by("pk").values())


@pytest.mark.parametrize("rule", RULES, ids=[rule.name for rule in RULES])
def test_the_api_and_the_admin_refuse_alike(world, operator_api, admin_client, rule):
    before = stored(rule.model)
    row = rule.row(world)
    values = rule.values(world)

    if row is None:
        response = operator_api.post(ENDPOINTS[rule.model], values, format="json")
    else:
        response = operator_api.patch(f"{ENDPOINTS[rule.model]}{row.pk}/", values, format="json")

    assert response.status_code == 400, response.content
    api_errors = assert_error_shape(response, rule.field)["errors"]
    assert rule.says in " ".join(api_errors[rule.field]), api_errors
    assert stored(rule.model) == before

    page = submit(admin_client, admin_url(rule.model._meta.model_name, None if row is None else row.pk), values)

    assert admin_errors(page) == api_errors
    assert stored(rule.model) == before
