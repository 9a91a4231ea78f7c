"""Thresholds and mappings in the admin: their own pages and the inlines on the sensor type and sensor pages
save through the services and refuse what the services refuse (each rule: tests/thresholds/test_rules.py)."""

from __future__ import annotations

import pytest
from django.contrib.admin.models import ADDITION, LogEntry

from apps.devices.models import Sensor, SensorType
from apps.thresholds.models import SensorThresholdMapping, Threshold
from tests.thresholds.helpers import admin_errors, admin_url, submit

pytestmark = pytest.mark.django_db


def test_a_threshold_added_on_its_page_is_saved_and_logged(world, admin_client):
    humidity = world.sensor_types["humidity"]

    response = submit(
        admin_client, admin_url("threshold"), {"sensor_type": humidity.pk, "warning_high": 70, "critical_high": 85}
    )

    assert response.status_code == 302, admin_errors(response)
    threshold = Threshold.objects.get(sensor_type=humidity)
    assert (threshold.name, threshold.warning_high, threshold.critical_high) == ("default", 70, 85)
    entry = LogEntry.objects.get(action_flag=ADDITION)
    assert entry.object_id == str(threshold.pk)


def test_a_threshold_changed_on_its_page_is_saved(world, admin_client):
    threshold = world.thresholds["temperature"]

    response = submit(admin_client, admin_url("threshold", threshold.pk), {"warning_high": 33, "enabled": False})

    assert response.status_code == 302, admin_errors(response)
    threshold.refresh_from_db()
    assert (threshold.warning_high, threshold.enabled, threshold.critical_high) == (33, False, 40)


def test_the_sensor_type_page_refuses_a_threshold_change_that_crosses_an_override(world, admin_client):
    temperature = world.sensor_types["temperature"]

    response = submit(
        admin_client, admin_url("sensortype", temperature.pk, app="devices"), {"thresholds-0-critical_high": 32}
    )

    assert admin_errors(response) == {
        "thresholds-0-critical_high": [
            "With the override for sensor env-002/temperature: Must be at least warning_high (35.0)."
        ]
    }
    assert Threshold.objects.get(pk=world.thresholds["temperature"].pk).critical_high == 40


def test_the_sensor_type_page_adds_changes_and_deletes_thresholds(world, admin_client):
    voltage = world.sensor_types["voltage_dc"]
    url = admin_url("sensortype", voltage.pk, app="devices")

    response = submit(
        admin_client,
        url,
        {"thresholds-0-warning_high": 790, "thresholds-1-name": "night", "thresholds-1-warning_high": 780},
        add_inline="thresholds",
    )

    assert response.status_code == 302, admin_errors(response)
    assert dict(Threshold.objects.filter(sensor_type=voltage).values_list("name", "warning_high")) == {
        "default": 790,
        "night": 780,
    }
    response = submit(admin_client, url, {"thresholds-1-DELETE": True})
    assert response.status_code == 302, admin_errors(response)
    assert list(Threshold.objects.filter(sensor_type=voltage).values_list("name", flat=True)) == ["default"]


def test_a_new_sensor_type_is_added_with_its_threshold(world, admin_client):
    def add_pressure(critical_high: float):
        return submit(
            admin_client,
            admin_url("sensortype", app="devices"),
            {
                "code": "pressure",
                "name": "Pressure",
                "unit": "bar",
                "thresholds-0-warning_high": 6,
                "thresholds-0-critical_high": critical_high,
            },
            add_inline="thresholds",
        )

    refused = add_pressure(5)
    assert admin_errors(refused) == {"thresholds-0-critical_high": ["Must be at least warning_high (6.0)."]}
    assert not SensorType.objects.filter(code="pressure").exists()

    response = add_pressure(8)

    assert response.status_code == 302, admin_errors(response)
    threshold = Threshold.objects.get(sensor_type__code="pressure")
    assert (threshold.name, threshold.warning_high, threshold.critical_high) == ("default", 6, 8)


def test_the_sensor_page_refuses_an_override_crossing_its_threshold(world, admin_client):
    sensor = world.sensors["env-002/temperature"]

    response = submit(
        admin_client, admin_url("sensor", sensor.pk, app="devices"), {"threshold_mappings-0-warning_high": 45}
    )

    assert admin_errors(response) == {"threshold_mappings-0-critical_high": ["Must be at least warning_high (45.0)."]}
    assert SensorThresholdMapping.objects.get(pk=world.mapping.pk).warning_high == 35


def test_the_sensor_page_adds_a_mapping(world, admin_client):
    sensor = world.sensors["env-001/temperature"]

    response = submit(
        admin_client,
        admin_url("sensor", sensor.pk, app="devices"),
        {
            "threshold_mappings-0-threshold": world.thresholds["temperature"].pk,
            "threshold_mappings-0-critical_high": 45,
        },
        add_inline="threshold_mappings",
    )

    assert response.status_code == 302, admin_errors(response)
    mapping = SensorThresholdMapping.objects.get(sensor=sensor)
    assert (mapping.threshold_id, mapping.critical_high, mapping.warning_high) == (
        world.thresholds["temperature"].pk,
        45,
        None,
    )


def test_a_new_sensor_is_added_with_its_override(world, admin_client):
    temperature = world.sensor_types["temperature"]
    fields = {
        "device": world.devices["env-001"].pk,
        "sensor_type": temperature.pk,
        "channel": "probe",
        "threshold_mappings-0-threshold": world.thresholds["temperature"].pk,
    }

    refused = submit(
        admin_client,
        admin_url("sensor", app="devices"),
        {**fields, "threshold_mappings-0-warning_low": 50},
        add_inline="threshold_mappings",
    )
    assert set(admin_errors(refused)) == {"threshold_mappings-0-warning_high", "threshold_mappings-0-critical_high"}
    assert not Sensor.objects.filter(key="env-001/temperature/probe").exists()

    response = submit(
        admin_client,
        admin_url("sensor", app="devices"),
        {**fields, "threshold_mappings-0-warning_low": 2},
        add_inline="threshold_mappings",
    )

    assert response.status_code == 302, admin_errors(response)
    mapping = SensorThresholdMapping.objects.get(sensor__key="env-001/temperature/probe")
    assert (mapping.threshold_id, mapping.warning_low) == (world.thresholds["temperature"].pk, 2)
