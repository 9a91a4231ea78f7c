"""Representations say which is which the same way everywhere (README, "API overview"): `sensor` is the key
and `sensor_id` the id, `sensor_type` the id and `sensor_type_code` the code, `device` the id and `device_id`
the external id, `location` the id and `location_path` the path. Checked on the OpenAPI schema, which the
schema test (test_openapi.py) holds every answer to."""

from __future__ import annotations

import pytest

from tests.core.test_openapi import openapi_document

TYPES = {
    "sensor": "string",
    "sensor_id": "integer",
    "sensor_key": "string",
    "sensor_type": "integer",
    "sensor_type_code": "string",
    "device": "integer",
    "device_id": "string",
    "device_external_id": "string",
    "location": "integer",
    "location_path": "string",
}
# Where a field holds an id, an answer also says the name it stands for.
COMPANIONS = {"sensor_type": "sensor_type_code", "device": "device_id", "sensor_id": "sensor"}
# The configuration resources written with a sensor's id: there `sensor` is that id (as the threshold mapping
# of the spec has it), `sensor_id` the same and `sensor_key` the key.
SENSOR_IS_WRITTEN_AS_ID = {"ThresholdMapping", "AnomalyRule"}

SCHEMAS = openapi_document()["components"]["schemas"]


def _resource(component: str) -> str:
    return component.removeprefix("Patched").removesuffix("Request")


def _named(component: str) -> dict[str, dict]:
    properties = SCHEMAS[component].get("properties", {})
    return {name: schema for name, schema in properties.items() if name in TYPES}


NAMED = [(component, name) for component in SCHEMAS for name in _named(component)]


@pytest.mark.parametrize(("component", "name"), NAMED, ids=[f"{c}.{n}" for c, n in NAMED])
def test_a_name_holds_the_same_kind_of_value_everywhere(component, name):
    expected = TYPES[name]
    if name == "sensor" and _resource(component) in SENSOR_IS_WRITTEN_AS_ID:
        expected = "integer"

    assert SCHEMAS[component]["properties"][name]["type"] == expected


@pytest.mark.parametrize("component", [c for c in SCHEMAS if not c.endswith("Request") and _named(c)])
def test_an_answer_with_an_id_also_names_what_it_is(component):
    names = set(_named(component))
    missing = {companion for name, companion in COMPANIONS.items() if name in names and companion not in names}

    assert missing == set()
    if _resource(component) in SENSOR_IS_WRITTEN_AS_ID:
        assert {"sensor", "sensor_id", "sensor_key"} <= names


def test_the_read_answers_carry_both_names():
    """So the tests above look at what matters: the answers of the read endpoints."""
    for component, names in {
        "Reading": {"sensor", "sensor_id"},
        "RealtimeRow": {"sensor", "sensor_id", "device", "device_id", "sensor_type", "sensor_type_code"},
        "Alert": {"sensor", "sensor_id", "device", "device_id", "sensor_type", "sensor_type_code", "location"},
        "Series": {"sensor", "sensor_id", "sensor_type", "sensor_type_code", "location"},
        "Sensor": {"device", "device_id", "sensor_type", "sensor_type_code", "location"},
        "Command": {"device", "device_id"},
    }.items():
        assert names <= set(_named(component)), component
