"""POST /api/v2/write through Django's test client: what is stored, who may write, and every answer's shape."""

from __future__ import annotations

import pytest
from django.test import override_settings

from apps.ingest.models import IngestBatch, LatestReading, Reading
from tests.factories import API, make_sensor
from tests.influx.helpers import WRITE, batch_of, recent_s, reset_rate_limits, stored_batch, write
from tests.ingest.helpers import post_readings, stored_values

pytestmark = pytest.mark.django_db

THROTTLES_OFF = {"token": None, "device": None, "ingest_readings": None}


@pytest.fixture(autouse=True)
def fresh_rate_limits():
    reset_rate_limits()
    yield
    reset_rate_limits()


def influx_error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content
    body = response.json()
    assert body["code"] == code and isinstance(body["message"], str) and body["message"], body
    return body


def test_a_write_is_answered_204_and_its_points_become_one_batch_of_readings(world, operator_api):
    t = recent_s()
    response = write(
        operator_api,
        f"env,device=env-001 temperature=21.5,humidity=40i {t}\n"
        f"env,device=env-002 temperature_c=22.5 {t}\n"  # through the device's field map
        f"meter,device=dc-meter-001 voltage_dc=751.5,current_dc=12.25 {t}\n",
        precision="s",
    )

    assert response.status_code == 204, response.content
    assert response.content == b""
    batch = stored_batch(response)
    assert (batch.status, batch.received, batch.stored, batch.rejected) == ("done", 5, 5, 0)
    assert IngestBatch.objects.count() == 1
    assert batch.user is not None and batch.device is None
    assert [value for _, value in stored_values(world.sensors["env-002/temperature"])] == [22.5]
    assert LatestReading.objects.get(sensor=world.sensors["dc-meter-001/voltage_dc"]).value == 751.5
    assert operator_api.get(response["Location"]).json()["stored"] == 5


def test_the_channel_tag_writes_the_sensor_of_that_channel(world, operator_api):
    channel_2 = make_sensor(world.devices["dc-meter-001"], world.sensor_types["voltage_dc"], channel="2")
    t = recent_s()
    response = write(
        operator_api,
        f"m,device=dc-meter-001,channel=2 voltage_dc=700 {t}\nm,device=dc-meter-001 voltage_dc=710 {t}",
        precision="s",
    )

    assert stored_batch(response).stored == 2
    assert [value for _, value in stored_values(channel_2)] == [700.0]
    assert [value for _, value in stored_values(world.sensors["dc-meter-001/voltage_dc"])] == [710.0]


def test_good_lines_are_written_and_the_answer_is_400_naming_the_bad_ones(world, operator_api):
    t = recent_s()
    response = write(
        operator_api,
        f"env,device=env-001 temperature=20 {t}\n"
        f"env,device=env-001 temperature=oops {t}\n"
        f"# a comment\n"
        f"env,device=env-002 temperature=21 {t}\n"
        f"env temperature=22 {t}\n",
        precision="s",
    )

    body = influx_error(response, 400, "invalid")
    assert body["line"] == 2
    assert "line 2:" in body["message"] and "line 5:" in body["message"] and "no 'device' tag" in body["message"]
    assert "2 line(s) refused, 2 point(s) written" in body["message"]
    assert stored_batch(response).stored == 2
    assert Reading.objects.count() == 2


def test_the_400_names_the_first_twenty_bad_lines_and_counts_them_all(world, operator_api):
    response = write(operator_api, "\n".join(["env,device=env-001 temperature=1"] + ["bad"] * 30))

    message = influx_error(response, 400, "invalid")["message"]
    assert message.startswith("30 line(s) refused, 1 point(s) written.")
    assert "line 21:" in message and "line 22:" not in message and message.endswith("; and 10 more")


def test_a_request_of_bad_lines_only_is_400_and_keeps_no_batch(world, operator_api):
    response = write(operator_api, "no fields here\nenv,device=env-001 temperature=")

    assert influx_error(response, 400, "invalid")["line"] == 1
    assert "Location" not in response
    assert IngestBatch.objects.count() == 0


def test_string_and_boolean_fields_are_rejected_in_the_batch_with_their_reason(world, operator_api):
    t = recent_s()
    response = write(operator_api, f'env,device=env-001 temperature=20,humidity="high",running=true {t}', precision="s")

    assert response.status_code == 204
    batch = stored_batch(response)
    assert (batch.stored, batch.rejected) == (1, 2)
    # humidity is a sensor of env-001, so the text is rejected as what it is; running is no sensor at all.
    assert batch.rejected_by_reason == {"not_a_number": 1, "unknown_sensor": 1}
    rejects = {reject["sensor"]: reject for reject in batch.errors}
    assert rejects["env-001.humidity"]["detail"] == "string field: 'high'"
    assert rejects["env-001.humidity"]["index"] == 1  # the line number


def test_a_device_key_writes_its_own_points_and_may_omit_the_device_tag(world, device_api):
    t = recent_s()
    response = write(device_api, f"env temperature=20 {t}\nenv,device=env-001 humidity=50 {t}", precision="s")

    assert response.status_code == 204, response.content
    batch = stored_batch(response)
    assert batch.stored == 2 and batch.device == world.devices["env-001"]


def test_a_device_key_naming_another_device_has_that_line_refused(world, device_api):
    t = recent_s()
    response = write(device_api, f"env temperature=20 {t}\nenv,device=env-002 temperature=30 {t}", precision="s")

    body = influx_error(response, 400, "invalid")
    assert body["line"] == 2 and "env-002" in body["message"]
    assert stored_batch(response).stored == 1
    assert not Reading.objects.filter(sensor=world.sensors["env-002/temperature"]).exists()


def test_device_keys_are_accepted_with_the_token_and_the_device_keyword(world):
    from rest_framework.test import APIClient

    for keyword in ("Token", "Device"):
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"{keyword} {world.device_keys['env-001']}")
        assert write(client, "env temperature=20").status_code == 204


@pytest.mark.parametrize("authorization", [None, "Token not-a-key", "Bearer abc", "Token"])
def test_a_missing_or_bad_token_is_401_in_influxdbs_shape(world, anonymous_api, authorization):
    if authorization:
        anonymous_api.credentials(HTTP_AUTHORIZATION=authorization)
    response = write(anonymous_api, "env,device=env-001 temperature=20")

    influx_error(response, 401, "unauthorized")
    assert IngestBatch.objects.count() == 0


def test_an_inactive_devices_key_is_401(world):
    from rest_framework.test import APIClient

    world.devices["env-001"].status = "inactive"
    world.devices["env-001"].save()
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {world.device_keys['env-001']}")

    influx_error(write(client, "env temperature=20"), 401, "unauthorized")


def test_who_may_write(world, api_as):
    expected = {"anonymous": 401, "viewer": 403, "operator": 204, "admin": 204, "device": 204}
    answers = {
        principal: write(api_as(principal), "env,device=env-001 temperature=20").status_code for principal in expected
    }
    assert answers == expected
    assert influx_error(write(api_as("viewer"), "env,device=env-001 temperature=20"), 403, "forbidden")


@override_settings(INFLUX_MAX_BODY_BYTES=2048)
@pytest.mark.parametrize("compress", [False, True])
def test_a_body_above_the_limit_is_413_with_the_limit(world, operator_api, compress):
    body = "\n".join(f"env,device=env-001 temperature={n % 50}" for n in range(200))  # about 6 kB
    response = write(operator_api, body, compress=compress)

    assert influx_error(response, 413, "invalid")["maxLength"] == 2048
    assert IngestBatch.objects.count() == 0
    assert write(operator_api, "env,device=env-001 temperature=1", compress=compress).status_code == 204


@override_settings(INGEST_MAX_READINGS_PER_REQUEST=5)
def test_more_readings_than_a_request_may_carry_is_413(world, operator_api):
    three_lines = "\n".join(f"env,device=env-001 temperature={n},humidity={n}" for n in range(3))

    assert "5 readings" in influx_error(write(operator_api, three_lines), 413, "invalid")["message"]
    assert IngestBatch.objects.count() == 0


def test_an_unknown_content_encoding_is_415(world, operator_api):
    response = operator_api.generic(
        "POST", WRITE, b"env,device=env-001 temperature=1", content_type="text/plain", HTTP_CONTENT_ENCODING="br"
    )
    influx_error(response, 415, "unsupported media type")


def test_a_body_that_says_gzip_and_is_not_is_400(world, operator_api):
    response = operator_api.generic(
        "POST", WRITE, b"env,device=env-001 temperature=1", content_type="text/plain", HTTP_CONTENT_ENCODING="gzip"
    )
    assert "gzip" in influx_error(response, 400, "invalid")["message"]


def test_an_unknown_precision_is_400(world, operator_api):
    assert (
        "precision"
        in influx_error(write(operator_api, "m,device=env-001 f=1", precision="h"), 400, "invalid")["message"]
    )


def test_an_empty_body_writes_nothing(world, operator_api):
    response = write(operator_api, "# nothing but a comment\n")
    assert response.status_code == 204
    assert IngestBatch.objects.count() == 0


def test_other_methods_are_405_in_influxdbs_shape(operator_api):
    influx_error(operator_api.get(WRITE), 405, "method not allowed")


@override_settings(THROTTLE_RATES={**THROTTLES_OFF, "ingest_readings": "10/minute"})
def test_readings_over_the_budget_shared_with_the_json_ingest_are_429_with_retry_after(world, device_api):
    seven = "\n".join(f"env temperature={n} {recent_s(n)}" for n in range(7))
    assert write(device_api, seven, precision="s").status_code == 204

    refused = write(device_api, seven, precision="s")

    influx_error(refused, 429, "too many requests")
    assert 1 <= int(refused["Retry-After"]) <= 60
    assert IngestBatch.objects.count() == 1
    assert write(device_api, "env temperature=1\nenv humidity=2").status_code == 204  # the refused one spent nothing
    two = [{"sensor": "env-001/temperature", "value": 1}, {"sensor": "env-001/humidity", "value": 2}]
    assert post_readings(device_api, two).status_code == 429  # 9 spent: the JSON ingest draws on the same budget


@override_settings(THROTTLE_RATES={**THROTTLES_OFF, "device": "1/minute"})
def test_the_request_rate_of_a_device_key_applies_too(world, device_api):
    assert write(device_api, "env temperature=1").status_code == 204
    refused = write(device_api, "env temperature=1")
    influx_error(refused, 429, "too many requests")
    assert int(refused["Retry-After"]) >= 1


def test_the_query_count_does_not_grow_with_the_lines(world, operator_api, django_assert_max_num_queries):
    body = "\n".join(
        f"env,device=env-00{1 + n % 2} temperature={n % 50},humidity={n % 90} {recent_s(n)}" for n in range(1000)
    )
    with django_assert_max_num_queries(8):
        response = write(operator_api, body, precision="s")
    assert response.status_code == 204
    assert batch_of(response).received == 2000


def test_the_write_is_in_the_openapi_schema(admin_api):
    schema = admin_api.get("/api/schema/?format=json").json()
    assert set(schema["paths"][WRITE]["post"]["responses"]) >= {"204", "400", "401", "413", "429"}


def test_a_batch_from_a_write_is_visible_to_the_device_that_wrote_it(world, device_api):
    response = write(device_api, "env temperature=20")
    assert device_api.get(f"{API}/ingest/batches/{batch_of(response).pk}/").status_code == 200
