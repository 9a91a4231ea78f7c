"""`manage.py seed_demo`, as `make run` and `make seed` call it: the demo plant where it is missing, built through
the domain's services, and the file of ingest keys."""

from __future__ import annotations

import io
import json

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command

from apps.demo.plant import DEFAULT_THRESHOLDS, SENSOR_MAPPINGS
from apps.devices.keys import hash_ingest_key
from apps.devices.models import Device, Sensor, SensorType
from apps.locations.models import Location
from apps.thresholds.models import SensorThresholdMapping, Threshold
from apps.thresholds.services import mapping_errors, threshold_errors, threshold_update

pytestmark = pytest.mark.django_db

PLANT = {"sensor types": 5, "thresholds": 5, "locations": 17, "devices": 50, "sensors": 140, "threshold mappings": 3}


def counts() -> dict[str, int]:
    return {
        "sensor types": SensorType.objects.count(),
        "thresholds": Threshold.objects.count(),
        "locations": Location.objects.count(),
        "devices": Device.objects.count(),
        "sensors": Sensor.objects.count(),
        "threshold mappings": SensorThresholdMapping.objects.count(),
    }


def seed(*args: str) -> str:
    out = io.StringIO()
    call_command("seed_demo", *args, stdout=out)
    return out.getvalue()


def working_keys(path) -> dict[str, str]:
    keys = json.loads(path.read_text())
    hashes = dict(Device.objects.values_list("device_id", "ingest_key_hash"))
    return {device_id: key for device_id, key in keys.items() if hashes.get(device_id) == hash_ingest_key(key)}


def test_the_plant_is_built_once_and_a_second_run_creates_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("DEMO_ADMIN_PASSWORD", "demo-password-1")
    keys_file = tmp_path / "device-keys.json"

    first = seed("--device-keys", str(keys_file))

    assert counts() == PLANT
    assert "Demo plant: created 5 sensor types, 5 thresholds, 17 locations, 50 devices, 140 sensors" in first
    assert "Admin login: admin / demo-password-1  (from DEMO_ADMIN_PASSWORD)" in first
    assert len(working_keys(keys_file)) == 50
    admin = get_user_model().objects.get(username="admin")
    assert admin.is_superuser and admin.check_password("demo-password-1")

    second = seed("--device-keys", str(keys_file))

    assert counts() == PLANT
    assert "already complete, nothing created" in second
    assert len(working_keys(keys_file)) == 50  # the keys of the first run still open their devices


def test_rotating_keys_replaces_every_demo_devices_key(tmp_path):
    keys_file = tmp_path / "device-keys.json"
    seed("--device-keys", str(keys_file))
    before = json.loads(keys_file.read_text())

    output = seed("--device-keys", str(keys_file), "--rotate-keys")

    after = working_keys(keys_file)
    assert "50 issued now, 50 working keys" in output
    assert len(after) == 50 and not set(after.values()) & set(before.values())


def test_the_seeded_thresholds_and_overrides_keep_the_threshold_rules():
    seed()

    thresholds = Threshold.objects.select_related("sensor_type")
    assert {threshold.sensor_type.code for threshold in thresholds} == set(DEFAULT_THRESHOLDS)
    assert all(threshold_errors(threshold=threshold) == {} for threshold in thresholds)
    mappings = SensorThresholdMapping.objects.select_related("sensor", "threshold")
    assert {mapping.sensor.key for mapping in mappings} == {key for key, _ in SENSOR_MAPPINGS}
    assert all(mapping_errors(mapping=mapping) == {} for mapping in mappings)


def test_an_override_the_rules_now_refuse_is_skipped_and_named_not_forced_in():
    """Staff removed the demo overrides of temperature and raised its warning_low to 28: the override of
    warning_high 27 would cross it, so the next seed leaves the override out, says so, and builds the rest."""
    seed()
    temperature = Threshold.objects.get(sensor_type__code="temperature", name="default")
    SensorThresholdMapping.objects.filter(threshold=temperature).delete()
    threshold_update(threshold=temperature, data={"warning_low": 28})

    output = seed()

    assert "Skipped the threshold mapping of env-b1-f2-a2-01/temperature (warning_high: " in output
    assert "Skipped the threshold mapping of env-b2-f1-a1-01/temperature (warning_high: " in output
    assert not SensorThresholdMapping.objects.filter(threshold=temperature).exists()
    assert Threshold.objects.get(pk=temperature.pk).warning_low == 28
    assert SensorThresholdMapping.objects.filter(sensor__key="dc-meter-010/current_dc", enabled=False).exists()


def test_what_staff_changed_is_left_alone():
    seed()
    Threshold.objects.filter(sensor_type__code="humidity").update(warning_high=75)
    Device.objects.filter(device_id="env-b1-f1-a1-01").delete()

    output = seed()

    assert Threshold.objects.get(sensor_type__code="humidity").warning_high == 75
    # A deleted demo device is recreated with its sensors; nothing else is.
    assert "created 1 devices, 3 sensors" in output
    assert counts() == PLANT
