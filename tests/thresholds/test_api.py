import pytest

from apps.thresholds.models import SensorThresholdMapping, Threshold
from tests.factories import API, assert_error_shape, make_threshold

pytestmark = pytest.mark.django_db

THRESHOLDS = f"{API}/thresholds/"
MAPPINGS = f"{API}/threshold-mappings/"
BANDS = ("warning_low", "warning_high", "critical_low", "critical_high")


# --- thresholds -------------------------------------------------------------------------------------------------


def test_operator_creates_a_threshold(world, operator_api):
    payload = {
        "sensor_type": world.sensor_types["humidity"].pk,
        "warning_low": 20,
        "warning_high": 70,
        "critical_low": None,
        "critical_high": 85,
        "hysteresis": 2,
        "min_duration_s": 300,
        "enabled": True,
    }

    response = operator_api.post(THRESHOLDS, payload, format="json")

    assert response.status_code == 201, response.content
    body = response.json()
    assert {key: body[key] for key in payload} == payload
    threshold = Threshold.objects.get(pk=body["id"])
    assert (threshold.name, threshold.critical_low, threshold.critical_high) == ("default", None, 85)


def test_list_and_retrieve_use_the_spec_field_names(world, viewer_api):
    listing = viewer_api.get(THRESHOLDS)
    assert listing.status_code == 200
    assert listing.json()["count"] == 2

    threshold = world.thresholds["temperature"]
    body = viewer_api.get(f"{THRESHOLDS}{threshold.pk}/").json()
    assert {"id", "sensor_type", *BANDS, "hysteresis", "min_duration_s", "enabled"} <= set(body)
    assert [body[band] for band in BANDS] == [5, 30, 0, 40]
    assert (body["sensor_type"], body["hysteresis"], body["min_duration_s"]) == (
        world.sensor_types["temperature"].pk,
        0.5,
        60,
    )


def test_update_and_partial_update(world, operator_api):
    threshold = world.thresholds["voltage_dc"]

    response = operator_api.put(
        f"{THRESHOLDS}{threshold.pk}/",
        {"sensor_type": threshold.sensor_type_id, "warning_low": 710, "warning_high": 790, "critical_high": 900},
        format="json",
    )
    assert response.status_code == 200, response.content
    response = operator_api.patch(f"{THRESHOLDS}{threshold.pk}/", {"enabled": False}, format="json")
    assert response.status_code == 200, response.content

    threshold.refresh_from_db()
    assert (threshold.warning_low, threshold.warning_high, threshold.critical_high, threshold.enabled) == (
        710,
        790,
        900,
        False,
    )
    # Optional fields a PUT leaves out keep their stored value.
    assert threshold.critical_low == 650


def test_delete_threshold_removes_its_mappings(world, operator_api):
    threshold = world.thresholds["temperature"]

    assert operator_api.delete(f"{THRESHOLDS}{threshold.pk}/").status_code == 204
    assert not Threshold.objects.filter(pk=threshold.pk).exists()
    assert not SensorThresholdMapping.objects.filter(pk=world.mapping.pk).exists()


@pytest.mark.parametrize(
    ("bands", "named"),
    [
        ({"warning_high": 50, "critical_high": 40}, "critical_high"),
        ({"warning_low": 10, "warning_high": 10}, "warning_high"),
        ({"warning_low": 30, "warning_high": 20}, "warning_high"),
        ({"critical_low": 10, "warning_low": 5}, "warning_low"),
        ({"critical_low": 50, "critical_high": 40}, "critical_high"),
    ],
)
def test_bands_out_of_order_are_rejected_naming_the_upper_field(world, operator_api, bands, named):
    payload = {"sensor_type": world.sensor_types["humidity"].pk, **bands}

    response = operator_api.post(THRESHOLDS, payload, format="json")

    assert response.status_code == 400
    assert_error_shape(response, named)
    assert not Threshold.objects.filter(sensor_type=world.sensor_types["humidity"]).exists()


def test_partial_update_is_checked_against_the_stored_bands(world, operator_api):
    threshold = world.thresholds["temperature"]

    response = operator_api.patch(f"{THRESHOLDS}{threshold.pk}/", {"warning_high": 45}, format="json")

    assert response.status_code == 400
    assert_error_shape(response, "critical_high")
    threshold.refresh_from_db()
    assert threshold.warning_high == 30


def test_threshold_bands_may_not_cross_a_mapped_sensors_override(world, operator_api):
    """env-002/temperature overrides warning_high to 35; a critical_high of 32 would sit below it."""
    threshold = world.thresholds["temperature"]

    response = operator_api.patch(f"{THRESHOLDS}{threshold.pk}/", {"critical_high": 32}, format="json")

    assert response.status_code == 400
    body = assert_error_shape(response, "critical_high")
    assert "env-002/temperature" in body["errors"]["critical_high"][0]
    threshold.refresh_from_db()
    assert threshold.critical_high == 40


def test_a_mapped_threshold_cannot_move_to_another_sensor_type(world, operator_api):
    threshold = world.thresholds["temperature"]

    response = operator_api.patch(
        f"{THRESHOLDS}{threshold.pk}/", {"sensor_type": world.sensor_types["humidity"].pk}, format="json"
    )

    assert response.status_code == 400
    assert_error_shape(response, "sensor_type")


def test_an_unmapped_threshold_may_move_to_another_sensor_type(world, operator_api):
    threshold = world.thresholds["voltage_dc"]

    response = operator_api.patch(
        f"{THRESHOLDS}{threshold.pk}/", {"sensor_type": world.sensor_types["current_dc"].pk}, format="json"
    )

    assert response.status_code == 200, response.content
    assert response.json()["sensor_type_code"] == "current_dc"


def test_negative_hysteresis_is_rejected(world, operator_api):
    response = operator_api.post(
        THRESHOLDS, {"sensor_type": world.sensor_types["humidity"].pk, "hysteresis": -1}, format="json"
    )

    assert response.status_code == 400
    assert_error_shape(response, "hysteresis")


def test_duplicate_threshold_name_per_sensor_type_is_rejected_naming_name(world, operator_api):
    response = operator_api.post(THRESHOLDS, {"sensor_type": world.sensor_types["temperature"].pk}, format="json")

    assert response.status_code == 400
    assert_error_shape(response, "name")
    assert Threshold.objects.filter(sensor_type=world.sensor_types["temperature"]).count() == 1


def test_a_second_named_threshold_for_the_same_type_is_fine(world, operator_api):
    response = operator_api.post(
        THRESHOLDS,
        {"sensor_type": world.sensor_types["temperature"].pk, "name": "night", "warning_high": 25},
        format="json",
    )

    assert response.status_code == 201, response.content


# --- threshold mappings -----------------------------------------------------------------------------------------


def test_operator_creates_a_mapping_and_sees_the_effective_bands(world, operator_api):
    sensor = world.sensors["env-001/temperature"]
    threshold = world.thresholds["temperature"]

    response = operator_api.post(
        MAPPINGS, {"sensor": sensor.pk, "threshold": threshold.pk, "critical_high": 45}, format="json"
    )

    assert response.status_code == 201, response.content
    body = response.json()
    assert {"id", "sensor", "threshold", *BANDS, "hysteresis", "min_duration_s", "enabled"} <= set(body)
    assert (body["sensor"], body["threshold"], body["critical_high"], body["warning_high"]) == (
        sensor.pk,
        threshold.pk,
        45,
        None,
    )
    assert body["effective"] == {
        "warning_low": 5,
        "warning_high": 30,
        "critical_low": 0,
        "critical_high": 45,
        "hysteresis": 0.5,
        "min_duration_s": 60,
    }


def test_mapping_list_retrieve_update_delete(world, operator_api):
    mapping = world.mapping
    assert operator_api.get(MAPPINGS).json()["count"] == 1
    assert operator_api.get(f"{MAPPINGS}{mapping.pk}/").json()["warning_high"] == 35

    response = operator_api.put(
        f"{MAPPINGS}{mapping.pk}/",
        {"sensor": mapping.sensor_id, "threshold": mapping.threshold_id, "warning_high": 33, "enabled": True},
        format="json",
    )
    assert response.status_code == 200, response.content
    response = operator_api.patch(f"{MAPPINGS}{mapping.pk}/", {"enabled": False}, format="json")
    assert response.status_code == 200, response.content
    mapping.refresh_from_db()
    assert (mapping.warning_high, mapping.enabled) == (33, False)

    assert operator_api.delete(f"{MAPPINGS}{mapping.pk}/").status_code == 204
    assert not SensorThresholdMapping.objects.filter(pk=mapping.pk).exists()


def test_mapping_to_a_threshold_of_another_sensor_type_is_rejected(world, operator_api):
    response = operator_api.post(
        MAPPINGS,
        {"sensor": world.sensors["env-001/humidity"].pk, "threshold": world.thresholds["temperature"].pk},
        format="json",
    )

    assert response.status_code == 400
    assert_error_shape(response, "threshold")


def test_second_mapping_for_the_same_sensor_and_threshold_is_rejected(world, operator_api):
    response = operator_api.post(
        MAPPINGS,
        {"sensor": world.mapping.sensor_id, "threshold": world.mapping.threshold_id, "warning_high": 36},
        format="json",
    )

    assert response.status_code == 400
    assert_error_shape(response, "threshold")


def test_mapping_overrides_out_of_order_are_rejected(world, operator_api):
    response = operator_api.post(
        MAPPINGS,
        {
            "sensor": world.sensors["env-001/temperature"].pk,
            "threshold": world.thresholds["temperature"].pk,
            "warning_high": 50,
            "critical_high": 45,
        },
        format="json",
    )

    assert response.status_code == 400
    assert_error_shape(response, "critical_high")


def test_mapping_override_that_crosses_the_inherited_band_is_rejected(world, operator_api):
    """warning_high 50 alone is well-formed, but above the threshold's critical_high of 40 it inherits."""
    response = operator_api.post(
        MAPPINGS,
        {
            "sensor": world.sensors["env-001/temperature"].pk,
            "threshold": world.thresholds["temperature"].pk,
            "warning_high": 50,
        },
        format="json",
    )

    assert response.status_code == 400
    assert_error_shape(response, "critical_high")


@pytest.mark.parametrize("field", ["sensor", "threshold"])
def test_mapping_with_unknown_references_is_rejected(world, operator_api, field):
    payload = {"sensor": world.sensors["env-001/temperature"].pk, "threshold": world.thresholds["temperature"].pk}
    payload[field] = 987654321

    response = operator_api.post(MAPPINGS, payload, format="json")

    assert response.status_code == 400
    assert_error_shape(response, field)


def test_threshold_with_no_bands_is_allowed_and_mapping_may_disable_it(world, operator_api):
    threshold = make_threshold(world.sensor_types["humidity"], name="watch")

    response = operator_api.post(
        MAPPINGS,
        {"sensor": world.sensors["env-002/humidity"].pk, "threshold": threshold.pk, "enabled": False},
        format="json",
    )

    assert response.status_code == 201, response.content
    assert response.json()["enabled"] is False
