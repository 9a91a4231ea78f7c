from datetime import UTC, datetime

import pytest

from apps.core.errors import ApplicationError
from apps.devices.connectivity import device_record_heartbeat
from apps.devices.keys import KEY_PREFIX_LENGTH, hash_ingest_key
from apps.devices.models import Device
from apps.devices.services import device_create, device_rotate_key, sensor_create

pytestmark = pytest.mark.django_db


def test_device_create_stores_only_the_hash_of_the_key(world):
    device, key = device_create(device_id="meter-9", location=world.area_b1_hall)

    stored = Device.objects.get(pk=device.pk)
    assert stored.ingest_key_hash == hash_ingest_key(key)
    assert stored.ingest_key_prefix == key[:KEY_PREFIX_LENGTH]
    assert stored.ingest_key_rotated_at is not None
    assert Device.objects.for_ingest_key(key) == device


def test_rotating_a_key_retires_the_old_one(world):
    device = world.devices["env-001"]
    old_key = world.device_keys["env-001"]

    new_key = device_rotate_key(device=device)

    assert new_key != old_key
    assert Device.objects.for_ingest_key(old_key) is None
    assert Device.objects.for_ingest_key(new_key) == device


def test_keys_are_unique_per_device(world):
    assert len(set(world.device_keys.values())) == len(world.devices)
    assert Device.objects.for_ingest_key("not-a-key") is None


def test_heartbeat_keeps_the_firmware_when_none_is_reported(world):
    device = world.devices["env-002"]
    device.fw_version = "1.0"
    device.save()
    seen_at = datetime(2026, 2, 12, 16, 0, tzinfo=UTC)

    device_record_heartbeat(device=device, seen_at=seen_at)

    device.refresh_from_db()
    assert (device.fw_version, device.last_seen, device.connection_status) == ("1.0", seen_at, "online")


def test_sensor_create_defaults_key_and_location_from_the_device(world):
    sensor = sensor_create(device=world.devices["env-002"], sensor_type=world.sensor_types["current_dc"], channel="b")

    assert sensor.key == "env-002/current_dc/b"
    assert sensor.location == world.area_b1_hall


def test_sensor_create_keeps_an_explicit_location(world):
    sensor = sensor_create(
        device=world.devices["env-002"], sensor_type=world.sensor_types["current_dc"], location=world.floor_b1
    )

    assert sensor.location == world.floor_b1


def test_sensor_create_refuses_a_taken_key_naming_key(world):
    with pytest.raises(ApplicationError) as raised:
        sensor_create(
            device=world.devices["env-002"], sensor_type=world.sensor_types["current_dc"], key="env-001/temperature"
        )

    assert "key" in raised.value.errors
