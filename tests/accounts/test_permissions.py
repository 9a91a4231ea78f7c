"""Who may call what: one row per endpoint and method, checked for every principal.

A principal outside a row's `allowed` gets 401 when anonymous and 403 otherwise, in the one error shape, and
the configuration tables are left exactly as they were. Adding an endpoint is adding a row.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from django.urls import NoReverseMatch, URLPattern, URLResolver, get_resolver, reverse

from apps.accounts.roles import Role
from apps.devices.models import Device, Sensor, SensorType
from apps.locations.models import Location
from apps.thresholds.models import SensorThresholdMapping, Threshold
from tests.conftest import PRINCIPALS
from tests.factories import World, assert_error_shape, make_device, make_location, make_sensor_type, make_user

READERS = frozenset({"viewer", "operator", "admin"})
OPERATORS = frozenset({"operator", "admin"})
ADMINS = frozenset({"admin"})
EVERYONE = frozenset(PRINCIPALS)


@dataclass(frozen=True)
class Endpoint:
    url_name: str
    method: str
    allowed: frozenset[str]
    success: int = 200
    args: Callable[[World], list] = field(default=lambda world: [])
    body: Callable[[World], dict[str, Any]] | None = None
    accept: str = "application/json"  # an HTML page answers (and refuses) in HTML

    @property
    def id(self) -> str:
        return f"{self.method.upper()} {self.url_name}"


def pk(get: Callable[[World], Any]) -> Callable[[World], list]:
    return lambda world: [get(world).pk]


def spare_location(world: World) -> Location:
    return make_location("Spare room", kind="room", parent=world.floor_b1)


def token_credentials(world: World) -> dict:
    make_user("script", Role.VIEWER, password="s3cret-pass")
    return {"username": "script", "password": "s3cret-pass"}


humidity_type = pk(lambda world: world.sensor_types["humidity"])
env_002 = pk(lambda world: world.devices["env-002"])
env_001 = pk(lambda world: world.devices["env-001"])
humidity_sensor = pk(lambda world: world.sensors["env-001/humidity"])
voltage_threshold = pk(lambda world: world.thresholds["voltage_dc"])
mapping = pk(lambda world: world.mapping)

ENDPOINTS = [
    Endpoint("auth-token", "post", EVERYONE, body=token_credentials),
    # locations
    Endpoint("location-list", "get", READERS),
    Endpoint("location-list", "post", ADMINS, 201, body=lambda w: {"name": "New area", "parent": w.floor_b1.pk}),
    Endpoint("location-detail", "get", READERS, args=pk(lambda w: w.floor_b1)),
    Endpoint(
        "location-detail",
        "put",
        ADMINS,
        args=pk(lambda w: w.area_b1_hall),
        body=lambda w: {"name": "B1 Hall", "kind": "room", "parent": w.floor_b1.pk},
    ),
    Endpoint("location-detail", "patch", ADMINS, args=pk(lambda w: w.floor_b1), body=lambda w: {"description": "x"}),
    Endpoint("location-detail", "delete", ADMINS, 204, args=pk(spare_location)),
    # sensor types
    Endpoint("sensor-type-list", "get", READERS),
    Endpoint("sensor-type-list", "post", ADMINS, 201, body=lambda w: {"code": "pressure", "name": "Pressure"}),
    Endpoint("sensor-type-detail", "get", READERS, args=humidity_type),
    Endpoint(
        "sensor-type-detail", "put", ADMINS, args=humidity_type, body=lambda w: {"code": "humidity", "name": "RH"}
    ),
    Endpoint("sensor-type-detail", "patch", ADMINS, args=humidity_type, body=lambda w: {"unit": "%RH"}),
    Endpoint("sensor-type-detail", "delete", ADMINS, 204, args=pk(lambda w: make_sensor_type("spare"))),
    # devices
    Endpoint("device-list", "get", READERS),
    Endpoint("device-list", "post", ADMINS, 201, body=lambda w: {"device_id": "new-1"}),
    Endpoint("device-detail", "get", READERS, args=env_002),
    Endpoint("device-detail", "put", ADMINS, args=env_002, body=lambda w: {"device_id": "env-002", "name": "Hall"}),
    Endpoint("device-detail", "patch", ADMINS, args=env_002, body=lambda w: {"fw_version": "9.9"}),
    Endpoint("device-detail", "delete", ADMINS, 204, args=pk(lambda w: make_device("spare-1")[0])),
    Endpoint("device-rotate-key", "post", ADMINS, args=env_002),
    # The device principal is env-001: it may beat its own heart only; a gateway (ingest) beats any device's.
    Endpoint("device-heartbeat", "post", OPERATORS | {"device", "ingest"}, args=env_001, body=lambda w: {}),
    Endpoint("device-heartbeat", "post", OPERATORS | {"ingest"}, args=env_002, body=lambda w: {}),
    # sensors
    Endpoint("sensor-list", "get", READERS),
    Endpoint(
        "sensor-list",
        "post",
        ADMINS,
        201,
        body=lambda w: {"device": w.devices["env-002"].pk, "sensor_type": w.sensor_types["voltage_dc"].pk},
    ),
    Endpoint("sensor-detail", "get", READERS, args=humidity_sensor),
    Endpoint(
        "sensor-detail",
        "put",
        ADMINS,
        args=humidity_sensor,
        body=lambda w: {
            "key": "env-001/humidity",
            "device": w.devices["env-001"].pk,
            "sensor_type": w.sensor_types["humidity"].pk,
            "name": "RH",
        },
    ),
    Endpoint("sensor-detail", "patch", ADMINS, args=humidity_sensor, body=lambda w: {"name": "RH south"}),
    Endpoint("sensor-detail", "delete", ADMINS, 204, args=humidity_sensor),
    # thresholds: operators manage them
    Endpoint("threshold-list", "get", READERS),
    Endpoint(
        "threshold-list",
        "post",
        OPERATORS,
        201,
        body=lambda w: {"sensor_type": w.sensor_types["humidity"].pk, "warning_high": 80},
    ),
    Endpoint("threshold-detail", "get", READERS, args=voltage_threshold),
    Endpoint(
        "threshold-detail",
        "put",
        OPERATORS,
        args=voltage_threshold,
        body=lambda w: {"sensor_type": w.sensor_types["voltage_dc"].pk, "warning_high": 790},
    ),
    Endpoint("threshold-detail", "patch", OPERATORS, args=voltage_threshold, body=lambda w: {"enabled": False}),
    Endpoint("threshold-detail", "delete", OPERATORS, 204, args=voltage_threshold),
    # threshold mappings: operators manage them
    Endpoint("threshold-mapping-list", "get", READERS),
    Endpoint(
        "threshold-mapping-list",
        "post",
        OPERATORS,
        201,
        body=lambda w: {"sensor": w.sensors["env-001/temperature"].pk, "threshold": w.thresholds["temperature"].pk},
    ),
    Endpoint("threshold-mapping-detail", "get", READERS, args=mapping),
    Endpoint(
        "threshold-mapping-detail",
        "put",
        OPERATORS,
        args=mapping,
        body=lambda w: {"sensor": w.mapping.sensor_id, "threshold": w.mapping.threshold_id, "warning_high": 34},
    ),
    Endpoint("threshold-mapping-detail", "patch", OPERATORS, args=mapping, body=lambda w: {"enabled": False}),
    Endpoint("threshold-mapping-detail", "delete", OPERATORS, 204, args=mapping),
    # documentation: for every authenticated caller
    Endpoint("schema", "get", READERS | {"device", "ingest"}),
    Endpoint("swagger-ui", "get", READERS | {"device", "ingest"}, accept="text/html"),
    # health: open to everyone (readiness needs a worker; see tests/core/test_health.py)
    Endpoint("health", "get", EVERYONE),
]

CONFIGURATION_MODELS = [Location, SensorType, Device, Sensor, Threshold, SensorThresholdMapping]
# Apps whose every API route must have a row above.
APPS_IN_TABLE = {"accounts", "locations", "devices", "thresholds"}


def configuration_snapshot() -> dict[str, list[dict]]:
    return {model.__name__: list(model.objects.order_by("pk").values()) for model in CONFIGURATION_MODELS}


@pytest.mark.django_db
@pytest.mark.parametrize("principal", PRINCIPALS)
@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=lambda endpoint: endpoint.id)
def test_permission_matrix(world, api_as, endpoint: Endpoint, principal: str):
    client = api_as(principal)
    url = reverse(endpoint.url_name, args=endpoint.args(world))
    body = endpoint.body(world) if endpoint.body else None
    before = configuration_snapshot()

    send = getattr(client, endpoint.method)
    if body is None:
        response = send(url, HTTP_ACCEPT=endpoint.accept)
    else:
        response = send(url, body, format="json", HTTP_ACCEPT=endpoint.accept)

    if principal in endpoint.allowed:
        assert response.status_code == endpoint.success, response.content
    else:
        assert response.status_code == (401 if principal == "anonymous" else 403), response.content
        if endpoint.accept == "application/json":
            assert_error_shape(response)
        assert configuration_snapshot() == before


def _api_routes(patterns, prefix: str = "") -> list[tuple[str, str, type]]:
    """(url name, method, view class) of every route, walking includes."""
    routes = []
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            routes += _api_routes(pattern.url_patterns, prefix + str(pattern.pattern))
        elif isinstance(pattern, URLPattern) and pattern.name:
            view_class = getattr(pattern.callback, "cls", None) or getattr(pattern.callback, "view_class", None)
            if view_class is None:
                continue
            actions = getattr(pattern.callback, "actions", None)
            methods = (
                actions.keys()
                if actions
                else [m for m in ("get", "post", "put", "patch", "delete") if hasattr(view_class, m)]
            )
            # HEAD mirrors GET (DRF maps it to the same action), so GET's row covers it.
            routes += [(pattern.name, method, view_class) for method in methods if method != "head"]
    return routes


def test_every_configuration_route_is_in_the_table():
    in_table = {(endpoint.url_name, endpoint.method) for endpoint in ENDPOINTS}
    routes = {
        (name, method)
        for name, method, view_class in _api_routes(get_resolver().url_patterns)
        if view_class.__module__.split(".")[:2] in [["apps", app] for app in APPS_IN_TABLE]
    }

    assert routes, "no routes found: has the URL configuration moved?"
    assert routes - in_table == set(), "add these endpoints to ENDPOINTS"


# What the ingest role of gateways may call; every other API route answers it 403.
INGEST_ROUTES = {("ingest", "post"), ("ingest-batch", "get"), ("device-heartbeat", "post"), ("influx-write", "post")}
# Routes that check no role: the token exchange, and export downloads (a signed link or the job's owner).
OPEN_TO_ALL = {("auth-token", "post"), ("export-job-download", "get")}


def _sample_url(url_name: str) -> str:
    """The route with values for its URL parameters that pass its converters (permissions are checked first)."""
    possibilities = [params for entry in get_resolver().reverse_dict.getlist(url_name) for _, params in entry[0]]
    params = next(params for params in possibilities if "format" not in params)  # not DRF's .json suffix routes
    try:
        return reverse(url_name, kwargs=dict.fromkeys(params, "1"))
    except NoReverseMatch:
        return reverse(url_name, kwargs=dict.fromkeys(params, "00000000-0000-0000-0000-000000000001"))


@pytest.mark.django_db
def test_the_ingest_role_reaches_nothing_but_sending_readings_heartbeats_and_its_batches(world, ingest_api):
    routes = sorted(
        {
            (name, method)
            for name, method, view_class in _api_routes(get_resolver().url_patterns)
            if view_class.__module__.split(".")[0::2][:2] == ["apps", "api"]  # apps.<app>.api[.<module>]
        }
    )
    answers = {}
    for name, method in routes:
        url = _sample_url(name)
        answers[(name, method)] = getattr(ingest_api, method)(url, {}, format="json").status_code

    refused = {route for route, status in answers.items() if status == 403}
    assert INGEST_ROUTES <= set(answers), "has an ingest route moved?"
    assert set(answers) - refused - OPEN_TO_ALL == INGEST_ROUTES
    assert answers[("ingest-batch", "get")] == 404  # the sample batch is nobody's; past the permission check
