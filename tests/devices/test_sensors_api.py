import pytest

from apps.devices.models import Sensor
from apps.thresholds.models import SensorThresholdMapping
from tests.factories import API, assert_error_shape

pytestmark = pytest.mark.django_db

URL = f"{API}/sensors/"


def test_create_sensor_defaults_its_key_and_location_from_the_device(world, admin_api):
    device = world.devices["env-002"]
    voltage = world.sensor_types["voltage_dc"]

    response = admin_api.post(URL, {"device": device.pk, "sensor_type": voltage.pk}, format="json")

    assert response.status_code == 201, response.content
    body = response.json()
    assert {"id", "key", "device", "sensor_type", "channel", "location"} <= set(body)
    assert (body["key"], body["device"], body["sensor_type"], body["channel"], body["location"]) == (
        "env-002/voltage_dc",
        device.pk,
        voltage.pk,
        "",
        world.area_b1_hall.pk,
    )
    assert Sensor.objects.get(key="env-002/voltage_dc").location_id == world.area_b1_hall.pk


def test_create_sensor_with_channel_explicit_key_and_location(world, admin_api):
    payload = {
        "device": world.devices["dc-meter-001"].pk,
        "sensor_type": world.sensor_types["voltage_dc"].pk,
        "channel": "string-2",
        "key": "meter-1/string-2",
        "location": world.area_a1_south.pk,
    }

    response = admin_api.post(URL, payload, format="json")

    assert response.status_code == 201, response.content
    sensor = Sensor.objects.get(key="meter-1/string-2")
    assert (sensor.channel, sensor.location_id) == ("string-2", world.area_a1_south.pk)


def test_default_key_includes_the_channel(world, admin_api):
    payload = {
        "device": world.devices["dc-meter-001"].pk,
        "sensor_type": world.sensor_types["voltage_dc"].pk,
        "channel": "2",
    }

    response = admin_api.post(URL, payload, format="json")

    assert response.status_code == 201, response.content
    assert response.json()["key"] == "dc-meter-001/voltage_dc/2"


def test_list_filters_and_retrieve(world, viewer_api):
    listing = viewer_api.get(URL, {"sensor_type_code": "temperature"})
    assert listing.status_code == 200
    assert {row["key"] for row in listing.json()["results"]} == {"env-001/temperature", "env-002/temperature"}

    sensor = world.sensors["dc-meter-001/voltage_dc"]
    body = viewer_api.get(f"{URL}{sensor.pk}/").json()
    assert (body["key"], body["device"], body["sensor_type"], body["location"]) == (
        "dc-meter-001/voltage_dc",
        world.devices["dc-meter-001"].pk,
        world.sensor_types["voltage_dc"].pk,
        world.area_a1_north.pk,
    )


def test_update_and_partial_update(world, admin_api):
    sensor = world.sensors["env-001/humidity"]

    response = admin_api.put(
        f"{URL}{sensor.pk}/",
        {
            "key": sensor.key,
            "device": sensor.device_id,
            "sensor_type": sensor.sensor_type_id,
            "name": "South humidity",
            "location": world.area_a1_north.pk,
        },
        format="json",
    )
    assert response.status_code == 200, response.content
    response = admin_api.patch(f"{URL}{sensor.pk}/", {"name": "Humidity S"}, format="json")
    assert response.status_code == 200, response.content

    sensor.refresh_from_db()
    assert (sensor.name, sensor.location_id) == ("Humidity S", world.area_a1_north.pk)


def test_delete_sensor_removes_its_mappings(world, admin_api):
    sensor = world.sensors["env-002/temperature"]

    assert admin_api.delete(f"{URL}{sensor.pk}/").status_code == 204
    assert not Sensor.objects.filter(pk=sensor.pk).exists()
    assert not SensorThresholdMapping.objects.filter(pk=world.mapping.pk).exists()


def test_duplicate_explicit_key_is_rejected_naming_key(world, admin_api):
    payload = {
        "device": world.devices["env-002"].pk,
        "sensor_type": world.sensor_types["voltage_dc"].pk,
        "key": "env-001/temperature",
    }

    response = admin_api.post(URL, payload, format="json")

    assert response.status_code == 400
    assert_error_shape(response, "key")


def test_duplicate_default_key_is_rejected_naming_key(world, admin_api):
    """A sensor whose default key is already taken by another device's explicitly keyed sensor."""
    Sensor.objects.filter(key="env-001/humidity").update(key="env-002/voltage_dc")
    payload = {"device": world.devices["env-002"].pk, "sensor_type": world.sensor_types["voltage_dc"].pk}

    response = admin_api.post(URL, payload, format="json")

    assert response.status_code == 400
    assert_error_shape(response, "key")


def test_second_sensor_of_the_same_type_and_channel_is_rejected(world, admin_api):
    payload = {
        "device": world.devices["env-001"].pk,
        "sensor_type": world.sensor_types["temperature"].pk,
        "key": "other",
    }

    response = admin_api.post(URL, payload, format="json")

    assert response.status_code == 400
    assert_error_shape(response, "channel")


def test_renaming_the_key_onto_another_sensor_is_rejected(world, admin_api):
    sensor = world.sensors["env-001/humidity"]

    response = admin_api.patch(f"{URL}{sensor.pk}/", {"key": "env-001/temperature"}, format="json")

    assert response.status_code == 400
    assert_error_shape(response, "key")


@pytest.mark.parametrize("field", ["device", "sensor_type", "location"])
def test_unknown_references_are_rejected_naming_the_field(world, admin_api, field):
    payload = {"device": world.devices["env-001"].pk, "sensor_type": world.sensor_types["voltage_dc"].pk}
    payload[field] = 987654321

    response = admin_api.post(URL, payload, format="json")

    assert response.status_code == 400
    assert_error_shape(response, field)


def test_a_sensors_identity_cannot_change_after_creation(world, admin_api):
    sensor = world.sensors["env-001/humidity"]
    other_device = world.devices["env-002"]

    for change in ({"key": "env-001/rh"}, {"device": other_device.pk}, {"channel": "2"}):
        response = admin_api.patch(f"{URL}{sensor.pk}/", change, format="json")
        assert response.status_code == 400, change
        assert_error_shape(response, *change)

    sensor.refresh_from_db()
    assert (sensor.key, sensor.device_id, sensor.channel) == ("env-001/humidity", world.devices["env-001"].pk, "")
