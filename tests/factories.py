"""Builders for test data, through the same services the API and the admin use.

`build_world()` makes the small plant most tests need:

    Plant 1 (factory)
    ├── Building A (building)
    │   └── Floor A1 (floor)
    │       ├── A1 North (area)   dc-meter-001: voltage_dc, current_dc
    │       └── A1 South (area)   env-001: temperature, humidity
    └── Building B (building)
        └── Floor B1 (floor)
            └── B1 Hall (area)    env-002: temperature, humidity

with a default threshold for temperature and for voltage_dc, and a mapping that raises the temperature
warning of env-002/temperature.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.contrib.auth.models import AbstractUser, Group
from rest_framework.test import APIClient

from apps.accounts.roles import ROLE_NAMES, Role
from apps.accounts.services import user_set_role
from apps.devices.models import Device, Sensor, SensorType
from apps.devices.services import device_create, sensor_create
from apps.locations.models import Location
from apps.locations.services import location_save
from apps.thresholds.models import SensorThresholdMapping, Threshold
from apps.thresholds.services import mapping_create, threshold_create

API = "/api/v1"

# (code, name, unit, plausible_min, plausible_max)
SENSOR_TYPES = [
    ("temperature", "Temperature", "°C", -50.0, 150.0),
    ("humidity", "Relative humidity", "%", 0.0, 100.0),
    ("voltage_dc", "DC voltage", "V", 0.0, 1500.0),
    ("current_dc", "DC current", "A", -500.0, 500.0),
]


def make_location(name: str, *, kind: str = Location.Kind.AREA, parent: Location | None = None) -> Location:
    return location_save(Location(name=name, kind=kind, parent=parent))


def make_sensor_type(
    code: str,
    *,
    name: str = "",
    unit: str = "",
    plausible_min: float | None = None,
    plausible_max: float | None = None,
) -> SensorType:
    return SensorType.objects.create(
        code=code, name=name or code, unit=unit, plausible_min=plausible_min, plausible_max=plausible_max
    )


def make_device(device_id: str, *, location: Location | None = None, **fields: Any) -> tuple[Device, str]:
    """A device and its ingest key (the only moment the key is known)."""
    return device_create(device_id=device_id, name=fields.pop("name", device_id), location=location, **fields)


def make_sensor(device: Device, sensor_type: SensorType, *, channel: str = "", **fields: Any) -> Sensor:
    return sensor_create(device=device, sensor_type=sensor_type, channel=channel, **fields)


def make_threshold(sensor_type: SensorType, *, name: str = "default", **fields: Any) -> Threshold:
    return threshold_create(sensor_type=sensor_type, name=name, **fields)


def make_mapping(sensor: Sensor, threshold: Threshold, **fields: Any) -> SensorThresholdMapping:
    return mapping_create(sensor=sensor, threshold=threshold, **fields)


def make_user(username: str, role: Role, *, password: str | None = None) -> tuple[AbstractUser, str]:
    """A user holding `role` and their API token.

    The role groups come from a data migration; a transactional test's flush empties every table, so they
    are recreated here rather than assumed.
    """
    for group_name in ROLE_NAMES:
        Group.objects.get_or_create(name=group_name)
    return user_set_role(username=username, role=role, password=password)


def token_client(token: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    return client


def device_client(ingest_key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Device {ingest_key}")
    return client


@dataclass
class World:
    factory: Location
    building_a: Location
    building_b: Location
    floor_a1: Location
    floor_b1: Location
    area_a1_north: Location
    area_a1_south: Location
    area_b1_hall: Location
    sensor_types: dict[str, SensorType]
    devices: dict[str, Device]
    device_keys: dict[str, str]
    sensors: dict[str, Sensor]
    thresholds: dict[str, Threshold]
    mapping: SensorThresholdMapping
    locations: list[Location] = field(default_factory=list)

    def sensors_below(self, location: Location) -> set[str]:
        """Keys of the sensors at `location` or anywhere below it, from the Python side of the world."""
        return {
            key
            for key, sensor in self.sensors.items()
            if sensor.location is not None and sensor.location.tree_path.startswith(location.tree_path)
        }


def build_world() -> World:
    factory = make_location("Plant 1", kind=Location.Kind.FACTORY)
    building_a = make_location("Building A", kind=Location.Kind.BUILDING, parent=factory)
    building_b = make_location("Building B", kind=Location.Kind.BUILDING, parent=factory)
    floor_a1 = make_location("Floor A1", kind=Location.Kind.FLOOR, parent=building_a)
    floor_b1 = make_location("Floor B1", kind=Location.Kind.FLOOR, parent=building_b)
    area_a1_north = make_location("A1 North", parent=floor_a1)
    area_a1_south = make_location("A1 South", parent=floor_a1)
    area_b1_hall = make_location("B1 Hall", parent=floor_b1)

    sensor_types = {
        code: make_sensor_type(code, name=name, unit=unit, plausible_min=low, plausible_max=high)
        for code, name, unit, low, high in SENSOR_TYPES
    }

    devices: dict[str, Device] = {}
    device_keys: dict[str, str] = {}
    sensors: dict[str, Sensor] = {}
    for device_id, location, type_codes, extra in [
        ("dc-meter-001", area_a1_north, ("voltage_dc", "current_dc"), {"manufacturer": "Acme", "model": "DCM-1"}),
        ("env-001", area_a1_south, ("temperature", "humidity"), {"manufacturer": "Sensirion", "model": "SHT4x"}),
        ("env-002", area_b1_hall, ("temperature", "humidity"), {"manufacturer": "Sensirion", "model": "SHT4x"}),
    ]:
        device, key = make_device(device_id, location=location, **extra)
        devices[device_id] = device
        device_keys[device_id] = key
        for code in type_codes:
            sensor = make_sensor(device, sensor_types[code])
            sensors[sensor.key] = sensor

    thresholds = {
        "temperature": make_threshold(
            sensor_types["temperature"],
            warning_low=5,
            warning_high=30,
            critical_low=0,
            critical_high=40,
            hysteresis=0.5,
            min_duration_s=60,
        ),
        "voltage_dc": make_threshold(
            sensor_types["voltage_dc"], warning_low=700, warning_high=800, critical_low=650, critical_high=850
        ),
    }
    mapping = make_mapping(sensors["env-002/temperature"], thresholds["temperature"], warning_high=35)

    locations = [factory, building_a, building_b, floor_a1, floor_b1, area_a1_north, area_a1_south, area_b1_hall]
    return World(
        factory=factory,
        building_a=building_a,
        building_b=building_b,
        floor_a1=floor_a1,
        floor_b1=floor_b1,
        area_a1_north=area_a1_north,
        area_a1_south=area_a1_south,
        area_b1_hall=area_b1_hall,
        sensor_types=sensor_types,
        devices=devices,
        device_keys=device_keys,
        sensors=sensors,
        thresholds=thresholds,
        mapping=mapping,
        locations=locations,
    )


def assert_error_shape(response, *fields: str) -> dict:
    """The one 4xx shape, {"detail": str, "errors": dict}, naming `fields` among the errors."""
    body = response.json()
    assert set(body) >= {"detail", "errors"}, body
    assert isinstance(body["detail"], str) and body["detail"], body
    assert isinstance(body["errors"], dict), body
    for name in fields:
        assert name in body["errors"], f"{name!r} not named in {body}"
    return body
