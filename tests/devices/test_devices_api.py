import pytest

from apps.devices.keys import hash_ingest_key
from apps.devices.models import Device, Sensor
from tests.factories import API, assert_error_shape, device_client

pytestmark = pytest.mark.django_db

URL = f"{API}/devices/"
SPEC_FIELDS = {
    "id",
    "device_id",
    "name",
    "location",
    "status",
    "connection_status",
    "last_seen",
    "fw_version",
    "metadata",
}


def heartbeat_url(device: Device) -> str:
    return f"{URL}{device.pk}/heartbeat/"


def test_create_returns_the_ingest_key_once(world, admin_api):
    payload = {
        "device_id": "dc-meter-002",
        "name": "DC meter 2",
        "location": world.area_a1_north.pk,
        "manufacturer": "Acme",
        "fw_version": "1.2.0",
        "metadata": {"panel": "P-7", "phases": [1, 2]},
    }

    response = admin_api.post(URL, payload, format="json")

    assert response.status_code == 201, response.content
    body = response.json()
    assert SPEC_FIELDS | {"ingest_key"} <= set(body)
    assert body["metadata"] == {"panel": "P-7", "phases": [1, 2]}
    assert (body["status"], body["connection_status"], body["last_seen"]) == ("active", "unknown", None)
    device = Device.objects.get(device_id="dc-meter-002")
    key = body["ingest_key"]
    assert len(key) >= 32
    assert device.ingest_key_hash == hash_ingest_key(key)
    assert key not in str(Device.objects.filter(pk=device.pk).values().get())

    for response in (admin_api.get(f"{URL}{device.pk}/"), admin_api.get(URL)):
        assert response.status_code == 200
        assert "ingest_key" not in response.content.decode().replace("ingest_key_", "")
        assert key not in response.content.decode()


def test_list_and_retrieve_use_the_spec_field_names(world, viewer_api):
    listing = viewer_api.get(URL)
    assert listing.status_code == 200
    assert [row["device_id"] for row in listing.json()["results"]] == ["dc-meter-001", "env-001", "env-002"]

    device = world.devices["env-001"]
    body = viewer_api.get(f"{URL}{device.pk}/").json()
    assert SPEC_FIELDS <= set(body)
    assert "ingest_key" not in body
    assert (body["device_id"], body["location"]) == ("env-001", world.area_a1_south.pk)
    assert body["location_path"] == "Plant 1 / Building A / Floor A1 / A1 South"


def test_device_without_location_shows_null_location(admin_api):
    response = admin_api.post(URL, {"device_id": "loose-1"}, format="json")

    assert response.status_code == 201, response.content
    assert (response.json()["location"], response.json()["location_path"]) == (None, None)


def test_partial_update_of_a_device_without_location_keeps_location_path(world, admin_api):
    device = world.devices["env-002"]

    response = admin_api.patch(f"{URL}{device.pk}/", {"location": None}, format="json")

    assert response.status_code == 200, response.content
    assert (response.json()["location"], response.json()["location_path"]) == (None, None)
    assert SPEC_FIELDS <= set(response.json())


def test_update_and_partial_update(world, admin_api):
    device = world.devices["env-002"]

    response = admin_api.put(
        f"{URL}{device.pk}/",
        {"device_id": "env-002", "name": "Hall sensor", "location": world.area_b1_hall.pk, "status": "maintenance"},
        format="json",
    )
    assert response.status_code == 200, response.content
    response = admin_api.patch(f"{URL}{device.pk}/", {"metadata": {"rack": 4}}, format="json")
    assert response.status_code == 200, response.content

    device.refresh_from_db()
    assert (device.name, device.status, device.metadata) == ("Hall sensor", "maintenance", {"rack": 4})
    assert "ingest_key" not in response.json()


def test_connection_status_and_last_seen_are_read_only(world, admin_api):
    device = world.devices["env-002"]

    response = admin_api.patch(
        f"{URL}{device.pk}/", {"connection_status": "online", "last_seen": "2026-01-01T00:00:00Z"}, format="json"
    )

    assert response.status_code == 200
    device.refresh_from_db()
    assert (device.connection_status, device.last_seen) == ("unknown", None)


def test_delete_device_removes_its_sensors(world, admin_api):
    device = world.devices["dc-meter-001"]

    assert admin_api.delete(f"{URL}{device.pk}/").status_code == 204
    assert not Device.objects.filter(pk=device.pk).exists()
    assert not Sensor.objects.filter(device_id=device.pk).exists()


def test_duplicate_device_id_is_rejected_naming_device_id(world, admin_api):
    response = admin_api.post(URL, {"device_id": "env-001"}, format="json")

    assert response.status_code == 400
    assert_error_shape(response, "device_id")


@pytest.mark.parametrize("device_id", ["has space", "a/b", "-leading-dash", ""])
def test_device_id_must_be_usable_in_keys_and_topics(admin_api, device_id):
    response = admin_api.post(URL, {"device_id": device_id}, format="json")

    assert response.status_code == 400
    assert_error_shape(response, "device_id")


@pytest.mark.parametrize("metadata", [[1, 2], "text", {"note": "nul\u0000byte"}, {"nul\u0000key": 1}])
def test_metadata_must_be_a_storable_json_object(admin_api, metadata):
    response = admin_api.post(URL, {"device_id": "meta-1", "metadata": metadata}, format="json")

    assert response.status_code == 400
    assert_error_shape(response, "metadata")
    assert not Device.objects.filter(device_id="meta-1").exists()


def test_unknown_location_is_rejected_naming_location(admin_api):
    response = admin_api.post(URL, {"device_id": "lost-1", "location": 987654321}, format="json")

    assert response.status_code == 400
    assert_error_shape(response, "location")


def test_rotate_key_issues_a_new_key_and_the_old_one_stops_working(world, admin_api):
    device = world.devices["env-001"]
    old_key = world.device_keys["env-001"]
    assert device_client(old_key).post(heartbeat_url(device), {}, format="json").status_code == 200

    response = admin_api.post(f"{URL}{device.pk}/rotate-key/")

    assert response.status_code == 200, response.content
    new_key = response.json()["ingest_key"]
    assert new_key != old_key
    refused = device_client(old_key).post(heartbeat_url(device), {}, format="json")
    assert refused.status_code == 401
    assert_error_shape(refused)
    assert device_client(new_key).post(heartbeat_url(device), {}, format="json").status_code == 200
    device.refresh_from_db()
    assert device.ingest_key_prefix == new_key[: len(device.ingest_key_prefix)]


def test_heartbeat_marks_the_device_online_and_records_firmware(world, device_api):
    device = world.devices["env-001"]

    response = device_api.post(heartbeat_url(device), {"fw_version": "2.0.1"}, format="json")

    assert response.status_code == 200, response.content
    assert response.json()["connection_status"] == "online"
    device.refresh_from_db()
    assert (device.connection_status, device.fw_version) == ("online", "2.0.1")
    assert device.last_seen is not None


def test_a_device_key_may_not_send_another_devices_heartbeat(world, device_api):
    other = world.devices["env-002"]

    response = device_api.post(heartbeat_url(other), {}, format="json")

    assert response.status_code == 403
    assert_error_shape(response)
    other.refresh_from_db()
    assert other.last_seen is None


def test_an_inactive_device_is_refused(world, device_api):
    Device.objects.filter(pk=world.devices["env-001"].pk).update(status=Device.Status.INACTIVE)

    response = device_api.post(heartbeat_url(world.devices["env-001"]), {}, format="json")

    assert response.status_code == 401
    assert_error_shape(response)


@pytest.mark.parametrize("header", ["Device", "Device not-a-key", "Device two parts"])
def test_malformed_or_unknown_device_keys_are_401(world, header):
    from rest_framework.test import APIClient

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=header)

    response = client.post(heartbeat_url(world.devices["env-001"]), {}, format="json")

    assert response.status_code == 401
    assert_error_shape(response)
