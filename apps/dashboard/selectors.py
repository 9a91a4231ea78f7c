"""Reads for the dashboard pages: what the server renders once per page load. Everything that changes while a
page is open (latest values, alerts, commands) the page's script polls from the REST API."""

from __future__ import annotations

from dataclasses import dataclass, field

from django.shortcuts import get_object_or_404

from apps.devices.models import Device, Sensor, SensorType
from apps.locations.models import Location
from apps.thresholds.selectors import EffectiveThreshold, effective_thresholds


@dataclass
class LocationNode:
    id: int
    name: str
    kind: str
    tree_path: str
    children: list[LocationNode] = field(default_factory=list)


def location_tree() -> list[LocationNode]:
    """The whole location tree, roots first, siblings by name, in one query."""
    nodes: dict[int, LocationNode] = {}
    parents: dict[int, int | None] = {}
    for pk, name, kind, tree_path, parent_id in Location.objects.order_by("depth", "name").values_list(
        "id", "name", "kind", "tree_path", "parent_id"
    ):
        nodes[pk] = LocationNode(id=pk, name=name, kind=kind, tree_path=tree_path)
        parents[pk] = parent_id
    roots: list[LocationNode] = []
    for pk, node in nodes.items():
        parent = nodes.get(parents[pk])
        (parent.children if parent is not None else roots).append(node)
    return roots


def sensor_type_choices() -> list[dict]:
    return list(SensorType.objects.order_by("name").values("code", "name", "unit"))


def sensor_with_thresholds(pk: int) -> tuple[Sensor, list[EffectiveThreshold]]:
    """A sensor with its device, type and location, and its effective thresholds; 404 if unknown."""
    sensor = get_object_or_404(Sensor.objects.select_related("device", "sensor_type", "location"), pk=pk)
    thresholds = effective_thresholds([(sensor.pk, sensor.sensor_type_id)]).get(sensor.pk, [])
    return sensor, thresholds


def device_with_sensors(pk: int) -> tuple[Device, list[Sensor]]:
    device = get_object_or_404(Device.objects.select_related("location"), pk=pk)
    sensors = list(device.sensors.select_related("sensor_type").order_by("key"))
    return device, sensors
