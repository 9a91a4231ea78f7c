import pytest

from apps.devices.models import SensorType
from apps.thresholds.models import Threshold
from tests.factories import API, assert_error_shape, make_sensor_type

pytestmark = pytest.mark.django_db

URL = f"{API}/sensor-types/"


def test_create_sensor_type(admin_api):
    payload = {
        "code": "pcv_temperature",
        "name": "PCV temperature",
        "unit": "°C",
        "plausible_min": -40,
        "plausible_max": 200,
    }

    response = admin_api.post(URL, payload, format="json")

    assert response.status_code == 201, response.content
    body = response.json()
    assert {key: body[key] for key in payload} == payload | {"plausible_min": -40.0, "plausible_max": 200.0}
    assert SensorType.objects.get(code="pcv_temperature").unit == "°C"


def test_list_and_retrieve_use_the_spec_field_names(world, viewer_api):
    listing = viewer_api.get(URL)
    assert listing.status_code == 200
    assert [row["code"] for row in listing.json()["results"]] == sorted(world.sensor_types)

    temperature = world.sensor_types["temperature"]
    body = viewer_api.get(f"{URL}{temperature.pk}/").json()
    assert {"id", "code", "name", "unit", "plausible_min", "plausible_max"} <= set(body)
    assert (body["code"], body["unit"], body["plausible_min"], body["plausible_max"]) == ("temperature", "°C", -50, 150)


def test_update_and_partial_update(world, admin_api):
    humidity = world.sensor_types["humidity"]

    response = admin_api.put(
        f"{URL}{humidity.pk}/",
        {"code": "humidity", "name": "Humidity", "unit": "%RH", "plausible_min": 0, "plausible_max": 100},
        format="json",
    )
    assert response.status_code == 200, response.content
    response = admin_api.patch(f"{URL}{humidity.pk}/", {"plausible_max": 110}, format="json")
    assert response.status_code == 200, response.content

    humidity.refresh_from_db()
    assert (humidity.name, humidity.unit, humidity.plausible_max) == ("Humidity", "%RH", 110)


def test_delete_unused_sensor_type(admin_api):
    unused = make_sensor_type("pressure", unit="bar")

    assert admin_api.delete(f"{URL}{unused.pk}/").status_code == 204
    assert not SensorType.objects.filter(pk=unused.pk).exists()


def test_deleting_a_sensor_type_in_use_is_a_conflict(world, admin_api):
    temperature = world.sensor_types["temperature"]

    response = admin_api.delete(f"{URL}{temperature.pk}/")

    assert response.status_code == 409
    assert "sensors" in assert_error_shape(response)["detail"]
    assert Threshold.objects.filter(sensor_type=temperature).exists()


def test_duplicate_code_is_rejected_naming_code(world, admin_api):
    response = admin_api.post(URL, {"code": "temperature", "name": "Again"}, format="json")

    assert response.status_code == 400
    assert_error_shape(response, "code")


@pytest.mark.parametrize(("low", "high"), [(10, 10), (10, 5)])
def test_plausible_min_must_be_below_plausible_max(admin_api, low, high):
    response = admin_api.post(
        URL, {"code": "flow", "name": "Flow", "plausible_min": low, "plausible_max": high}, format="json"
    )

    assert response.status_code == 400
    assert_error_shape(response, "plausible_max")
    assert not SensorType.objects.filter(code="flow").exists()


def test_partial_update_is_checked_against_the_stored_range(world, admin_api):
    humidity = world.sensor_types["humidity"]

    response = admin_api.patch(f"{URL}{humidity.pk}/", {"plausible_min": 100}, format="json")

    assert response.status_code == 400
    assert_error_shape(response, "plausible_max")


def test_code_must_be_a_slug(admin_api):
    response = admin_api.post(URL, {"code": "has spaces", "name": "Bad"}, format="json")

    assert response.status_code == 400
    assert_error_shape(response, "code")
