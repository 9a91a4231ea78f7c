import pytest
from django.urls import reverse

from apps.anomaly.models import AnomalyRule
from apps.anomaly.selectors import merge_parameters
from tests.accounts.test_permissions import OPERATORS, READERS, Endpoint
from tests.conftest import PRINCIPALS
from tests.factories import API, assert_error_shape

pytestmark = pytest.mark.django_db

RULES = f"{API}/anomaly-rules/"
DEFAULTS = merge_parameters(None, None)


@pytest.fixture
def temperature_rule(world) -> AnomalyRule:
    return AnomalyRule.objects.create(sensor_type=world.sensor_types["temperature"], sensitivity="high")


@pytest.fixture
def override(world, temperature_rule) -> AnomalyRule:
    return AnomalyRule.objects.create(sensor=world.sensors["env-002/temperature"], deviation_z=8, seasonality="off")


def test_a_rule_with_only_a_sensor_type_gets_every_default(world, operator_api):
    response = operator_api.post(RULES, {"sensor_type": world.sensor_types["humidity"].pk}, format="json")

    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["scope"], body["enabled"], body["sensitivity"], body["sensor"]) == ("sensor_type", True, None, None)
    assert body["sensor_type_code"] == "humidity"
    assert body["effective"] == DEFAULTS
    assert body["effective"]["sensitivity"] == "medium"
    assert AnomalyRule.objects.get(pk=body["id"]).sensor_type == world.sensor_types["humidity"]


def test_an_override_shows_what_it_inherits(world, operator_api, temperature_rule):
    sensor = world.sensors["env-001/temperature"]

    response = operator_api.post(RULES, {"sensor": sensor.pk, "min_duration_s": 600}, format="json")

    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["scope"], body["sensor_key"], body["sensitivity"]) == ("sensor", "env-001/temperature", None)
    assert body["effective"] == {**DEFAULTS, "sensitivity": "high", "min_duration_s": 600}


def test_list_filter_and_retrieve(world, viewer_api, override):
    listing = viewer_api.get(RULES).json()
    assert listing["count"] == 2
    overrides = viewer_api.get(RULES, {"scope": "sensor"}).json()["results"]
    assert [rule["id"] for rule in overrides] == [override.pk]
    assert overrides[0]["effective"] == {**DEFAULTS, "sensitivity": "high", "deviation_z": 8, "seasonality": "off"}
    by_code = viewer_api.get(RULES, {"sensor_type_code": "temperature"}).json()["results"]
    assert [rule["scope"] for rule in by_code] == ["sensor_type"]
    in_hall = viewer_api.get(RULES, {"location": world.area_b1_hall.pk}).json()["results"]
    assert [rule["id"] for rule in in_hall] == [override.pk]
    assert viewer_api.get(RULES, {"location": world.area_a1_south.pk}).json()["count"] == 0
    assert viewer_api.get(f"{RULES}{override.pk}/").json()["deviation_z"] == 8


def test_update_partial_update_and_delete(operator_api, temperature_rule):
    url = f"{RULES}{temperature_rule.pk}/"

    response = operator_api.patch(url, {"enabled": False, "stuck_after_s": 7200}, format="json")
    assert response.status_code == 200, response.content
    response = operator_api.put(
        url, {"sensor_type": temperature_rule.sensor_type_id, "sensitivity": "low"}, format="json"
    )
    assert response.status_code == 200, response.content

    temperature_rule.refresh_from_db()
    assert (temperature_rule.sensitivity, temperature_rule.enabled, temperature_rule.stuck_after_s) == (
        "low",
        False,  # optional fields a PUT leaves out keep their stored value
        7200,
    )
    assert operator_api.delete(url).status_code == 204
    assert not AnomalyRule.objects.filter(pk=temperature_rule.pk).exists()


@pytest.mark.parametrize(
    ("payload", "named"),
    [
        ({}, "sensor_type"),
        ({"both": True}, "sensor"),
        ({"deviation_z": 0}, "deviation_z"),
        ({"half_life_readings": -5}, "half_life_readings"),
        ({"rate_factor": "fast"}, "rate_factor"),
        ({"min_readings": 0}, "min_readings"),
        ({"clear_readings": 0}, "clear_readings"),
        ({"stuck_after_s": 0}, "stuck_after_s"),
        ({"sensitivity": "extreme"}, "sensitivity"),
        ({"seasonality": "weekly"}, "seasonality"),
        ({"warmup_readings": -1}, "warmup_readings"),
    ],
)
def test_bad_rules_are_rejected_naming_the_field(world, operator_api, payload, named):
    body = dict(payload)
    if not body.pop("both", False) and body != {}:
        body["sensor_type"] = world.sensor_types["humidity"].pk
    elif payload.get("both"):
        body = {"sensor_type": world.sensor_types["humidity"].pk, "sensor": world.sensors["env-001/humidity"].pk}

    response = operator_api.post(RULES, body, format="json")

    assert response.status_code == 400, response.content
    assert_error_shape(response, named)
    assert not AnomalyRule.objects.exists()


def test_one_rule_per_sensor_type_and_one_override_per_sensor(world, operator_api, override):
    response = operator_api.post(RULES, {"sensor_type": override.sensor.sensor_type_id}, format="json")
    assert response.status_code == 400
    assert_error_shape(response, "sensor_type")

    response = operator_api.post(RULES, {"sensor": override.sensor_id}, format="json")
    assert response.status_code == 400
    assert_error_shape(response, "sensor")
    assert AnomalyRule.objects.count() == 2


def test_moving_a_rule_onto_a_taken_sensor_type_is_rejected(world, operator_api, temperature_rule):
    humidity = AnomalyRule.objects.create(sensor_type=world.sensor_types["humidity"])

    response = operator_api.patch(
        f"{RULES}{humidity.pk}/", {"sensor_type": temperature_rule.sensor_type_id}, format="json"
    )

    assert response.status_code == 400
    assert_error_shape(response, "sensor_type")


def test_list_query_count_does_not_grow_with_rules(world, viewer_api, django_assert_max_num_queries):
    for sensor in world.sensors.values():
        AnomalyRule.objects.create(sensor=sensor, deviation_z=7)
        AnomalyRule.objects.get_or_create(sensor_type=sensor.sensor_type)
    viewer_api.get(RULES)

    with django_assert_max_num_queries(8):
        body = viewer_api.get(RULES).json()

    assert body["count"] == len(world.sensors) + 4


# --- permissions: viewers read, operators write ----------------------------------------------------------------

rule = lambda world: [AnomalyRule.objects.get_or_create(sensor_type=world.sensor_types["voltage_dc"])[0].pk]  # noqa: E731
ENDPOINTS = [
    Endpoint("anomaly-rule-list", "get", READERS),
    Endpoint(
        "anomaly-rule-list", "post", OPERATORS, 201, body=lambda w: {"sensor_type": w.sensor_types["humidity"].pk}
    ),
    Endpoint("anomaly-rule-detail", "get", READERS, args=rule),
    Endpoint(
        "anomaly-rule-detail",
        "put",
        OPERATORS,
        args=rule,
        body=lambda w: {"sensor_type": w.sensor_types["voltage_dc"].pk, "sensitivity": "low"},
    ),
    Endpoint("anomaly-rule-detail", "patch", OPERATORS, args=rule, body=lambda w: {"enabled": False}),
    Endpoint("anomaly-rule-detail", "delete", OPERATORS, 204, args=rule),
]


@pytest.mark.parametrize("principal", PRINCIPALS)
@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=lambda endpoint: endpoint.id)
def test_viewers_read_and_operators_write(world, api_as, endpoint: Endpoint, principal: str):
    client = api_as(principal)
    url = reverse(endpoint.url_name, args=endpoint.args(world))
    before = list(AnomalyRule.objects.order_by("pk").values())

    send = getattr(client, endpoint.method)
    response = send(url, endpoint.body(world), format="json") if endpoint.body else send(url)

    if principal in endpoint.allowed:
        assert response.status_code == endpoint.success, response.content
    else:
        assert response.status_code == (401 if principal == "anonymous" else 403), response.content
        assert_error_shape(response)
        assert list(AnomalyRule.objects.order_by("pk").values()) == before
