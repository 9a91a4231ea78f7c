"""Every endpoint that filters by sensor, device or sensor type answers the same whether they are named by key
(external id, code), by id, or both mixed in one comma-separated value."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import pytest

from apps.commands.services import command_create
from apps.thresholds.models import Threshold
from tests.alerts.helpers import evaluate, readings
from tests.factories import API, World, make_mapping, make_threshold

pytestmark = pytest.mark.django_db

WINDOW = {"start": "20260212", "end": "20260213", "tz": "UTC"}
# The two of each kind every case names (the world's third one, or more, must be filtered out).
NAMED = {
    "sensor": ("env-001/temperature", "env-002/temperature"),
    "device": ("env-001", "env-002"),
    "sensor_type": ("temperature", "humidity"),
}


def _id(world: World, kind: str, name: str) -> int:
    return {"sensor": world.sensors, "device": world.devices, "sensor_type": world.sensor_types}[kind][name].pk


def _results(response) -> list:
    return response.json()["results"]


def _series(response) -> list:
    return response.json()["series"]


def _file(response) -> bytes:
    return b"".join(response.streaming_content)


@dataclass(frozen=True)
class Case:
    path: str
    parameter: str
    kind: str = ""  # what the parameter names, when not its own name
    extra: dict = field(default_factory=dict)
    answer: Callable = _results
    # Whether the endpoint answers without the parameter (then the filter must leave rows out).
    optional: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", self.kind or self.parameter)

    def __str__(self) -> str:
        return f"{self.path}?{self.parameter}"


CASES = [
    Case("realtime/", "sensor"),
    Case("realtime/", "device"),
    Case("realtime/", "sensor_type"),
    Case("readings/", "sensor", extra={"order": "oldest"}, optional=False),
    *(
        Case(path, parameter, extra=WINDOW, answer=answer, optional=False)
        for path, answer in (("aggregates/", _series), ("exports/readings", _file), ("exports/aggregates", _file))
        for parameter in ("sensor", "sensor_type")
    ),
    Case("alerts/", "sensor"),
    Case("alerts/", "device"),
    Case("alerts/", "sensor_type"),
    Case("sensors/", "device"),
    Case("sensors/", "sensor_type"),
    Case("devices/", "has_sensor_type", kind="sensor_type"),
    Case("thresholds/", "sensor_type"),
    Case("threshold-mappings/", "sensor"),
    Case("anomaly-rules/", "sensor"),
    Case("anomaly-rules/", "sensor_type"),
    Case("commands/", "device"),
    Case("maintenance-windows/", "device"),
    Case("subscriptions/", "sensor_type"),
]


@pytest.fixture
def plant(world, operator_api) -> World:
    """The world with rows of every filtered kind for the named sensors, devices and types, and for others."""
    Threshold.objects.filter(pk=world.thresholds["temperature"].pk).update(min_duration_s=0)
    make_threshold(world.sensor_types["humidity"], warning_high=70, min_duration_s=0)
    evaluate(
        readings("env-001/temperature", (0, 45), (60, 20))
        + readings("env-002/temperature", (0, 47))
        + readings("dc-meter-001/voltage_dc", (0, 900))
        + readings("env-001/humidity", (0, 80))
    )
    make_mapping(world.sensors["env-001/temperature"], world.thresholds["temperature"], warning_high=32)
    make_mapping(world.sensors["dc-meter-001/voltage_dc"], world.thresholds["voltage_dc"], critical_high=860)
    for device_id in ("env-001", "env-002", "dc-meter-001"):
        command_create(device=world.devices[device_id], cmd="ping")
        window = {"name": device_id, "device": world.devices[device_id].pk}
        window |= {"starts_at": "2026-02-12T00:00:00Z", "ends_at": "2026-02-13T00:00:00Z"}
        assert operator_api.post(f"{API}/maintenance-windows/", window, format="json").status_code == 201
    for code in ("temperature", "voltage_dc", "humidity"):
        sensor_type = world.sensor_types[code].pk
        rule = operator_api.post(f"{API}/anomaly-rules/", {"sensor_type": sensor_type}, format="json")
        channels = [{"type": "email", "target": "ops@example.com"}]
        subscription = {"name": code, "sensor_type": sensor_type, "channels": channels}
        created = operator_api.post(f"{API}/subscriptions/", subscription, format="json")
        assert (rule.status_code, created.status_code) == (201, 201), (rule.content, created.content)
    for key in ("env-001/temperature", "env-002/temperature", "env-001/humidity"):
        override = operator_api.post(f"{API}/anomaly-rules/", {"sensor": world.sensors[key].pk}, format="json")
        assert override.status_code == 201, override.content
    return world


def _forms(world: World, kind: str) -> dict[str, str]:
    (first, second) = NAMED[kind]
    first_id, second_id = (_id(world, kind, name) for name in (first, second))
    return {
        "keys": f"{first},{second}",
        "ids": f"{first_id},{second_id}",
        "key and id": f"{first},{second_id}",
        "id and key": f"{first_id}, {second}",
    }


@pytest.mark.parametrize("case", CASES, ids=str)
def test_keys_ids_and_both_mixed_give_the_same_answer(plant, viewer_api, case):
    answers = {}
    for form, value in _forms(plant, case.kind).items():
        response = viewer_api.get(f"{API}/{case.path}", {**case.extra, case.parameter: value})
        assert response.status_code == 200, (form, response.content)
        answers[form] = case.answer(response)

    assert all(answer == answers["keys"] for answer in answers.values()), answers
    assert answers["keys"], "the named rows exist"
    if case.optional:
        unfiltered = case.answer(viewer_api.get(f"{API}/{case.path}", case.extra))
        assert len(unfiltered) > len(answers["keys"]), "the filter leaves rows out"


def test_readings_take_sensor_id_as_an_alias_of_ids_in_sensor(plant, viewer_api):
    first, second = (plant.sensors[key].pk for key in NAMED["sensor"])
    by_sensor = viewer_api.get(f"{API}/readings/", {"sensor": f"{first},{second}"}).json()
    by_alias = viewer_api.get(f"{API}/readings/", {"sensor_id": f"{first},{second}"}).json()
    both = viewer_api.get(f"{API}/readings/", {"sensor": NAMED["sensor"][0], "sensor_id": second}).json()

    assert by_sensor["results"] and by_alias == by_sensor == both


def test_subscriptions_filter_by_location_subtree_as_every_list_does(world, operator_api):
    channels = [{"type": "email", "target": "ops@example.com"}]
    for name, location in (("a", world.building_a), ("a1-south", world.area_a1_south), ("b", world.building_b)):
        body = {"name": name, "location": location.pk, "channels": channels}
        assert operator_api.post(f"{API}/subscriptions/", body, format="json").status_code == 201

    def names(location) -> set[str]:
        response = operator_api.get(f"{API}/subscriptions/", {"location": location.pk})
        return {row["name"] for row in response.json()["results"]}

    assert names(world.building_a) == {"a", "a1-south"}
    assert names(world.factory) == {"a", "a1-south", "b"}
    assert names(world.area_a1_north) == set()
