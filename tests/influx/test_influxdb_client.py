"""The write API against the official InfluxDB client (influxdb-client), over HTTP to a live server.

The client writes synchronously, so each write is one request and every error comes back as an ApiException
with the status, headers and body the server sent. The live server commits each batch and queues it, so the
real worker stores it, and the tests wait for that.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from django.test import override_settings
from influxdb_client import InfluxDBClient, Point, WritePrecision
from influxdb_client.client.write_api import SYNCHRONOUS
from influxdb_client.rest import ApiException

from apps.accounts.roles import Role
from apps.ingest.models import IngestBatch, Reading
from tests.factories import make_user
from tests.influx.helpers import reset_rate_limits
from tests.worker import wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]

ORG, BUCKET = "plant", "telemetry"
THROTTLES_OFF = {"token": None, "device": None, "ingest_readings": None}


@pytest.fixture(autouse=True)
def fresh_rate_limits(celery_worker):
    reset_rate_limits()
    yield
    reset_rate_limits()


@pytest.fixture
def operator_token(world) -> str:
    return make_user("telegraf", Role.OPERATOR)[1]


@pytest.fixture
def influx(live_server):
    """`influx(token, gzip=False)`: a write API of the official client, pointed at the live server."""
    clients: list[InfluxDBClient] = []

    def write_api(token: str, *, gzip: bool = False):
        client = InfluxDBClient(url=live_server.url, token=token, org=ORG, enable_gzip=gzip, timeout=10_000)
        clients.append(client)
        return client.write_api(write_options=SYNCHRONOUS)

    yield write_api
    for client in clients:
        client.close()


def stored_batches(expected: int = 1) -> list[IngestBatch]:
    """The request's batches once the worker has stored them all."""

    def done():
        batches = list(IngestBatch.objects.order_by("received_at"))
        return batches if len(batches) == expected and all(batch.status == "done" for batch in batches) else None

    return wait_for(done, timeout=30)


def error_of(excinfo) -> dict:
    return json.loads(excinfo.value.body)


def values(sensor) -> list[tuple[datetime, float]]:
    return list(Reading.objects.filter(sensor=sensor).order_by("ts").values_list("ts", "value"))


# A minute ago, with sub-second digits, so each precision's truncation shows.
WHEN = (datetime.now(UTC) - timedelta(minutes=1)).replace(microsecond=123456)
TRUNCATED = {
    WritePrecision.S: WHEN.replace(microsecond=0),
    WritePrecision.MS: WHEN.replace(microsecond=123000),
    WritePrecision.US: WHEN,
    WritePrecision.NS: WHEN,
}


@pytest.mark.parametrize("gzip", [False, True], ids=["plain", "gzip"])
@pytest.mark.parametrize("precision", list(TRUNCATED))
def test_points_of_every_precision_are_stored_at_their_time(world, influx, operator_token, precision, gzip):
    points = [
        Point("env").tag("device", "env-001").field("temperature", 21.5).field("humidity", 40).time(WHEN, precision),
        Point("meter").tag("device", "dc-meter-001").field("voltage_dc", 751.25).time(WHEN, precision),
    ]

    influx(operator_token, gzip=gzip).write(bucket=BUCKET, record=points, write_precision=precision)

    (batch,) = stored_batches()
    assert (batch.status, batch.stored, batch.rejected) == ("done", 3, 0)
    at = TRUNCATED[precision]
    assert values(world.sensors["env-001/temperature"]) == [(at, 21.5)]
    assert values(world.sensors["env-001/humidity"]) == [(at, 40.0)]
    assert values(world.sensors["dc-meter-001/voltage_dc"]) == [(at, 751.25)]


def test_escaped_measurements_and_tags_are_read(world, influx, operator_token):
    point = (
        Point("plant hall,line=3")
        .tag("device", "env-001")
        .tag("location", "Hall A, bay=2")
        .tag("note text", "a b=c,d")
        .field("temperature", 19.0)
        .time(WHEN, WritePrecision.S)
    )
    assert "\\," in point.to_line_protocol() and "\\ " in point.to_line_protocol()

    influx(operator_token).write(bucket=BUCKET, record=point, write_precision=WritePrecision.S)

    assert stored_batches()[0].stored == 1
    assert values(world.sensors["env-001/temperature"]) == [(WHEN.replace(microsecond=0), 19.0)]


def test_a_mixed_batch_stores_the_good_lines_and_is_400_naming_the_bad_ones(world, influx, operator_token):
    t = int(WHEN.timestamp())
    lines = [
        f"env,device=env-001 temperature=20 {t}",
        f"env,device=env-001 temperature=twenty {t}",
        f"env,device=env-002 temperature=21 {t}",
        f"env,device=env-002 humidity=50 {t} trailing",
    ]

    with pytest.raises(ApiException) as excinfo:
        influx(operator_token).write(bucket=BUCKET, record=lines, write_precision=WritePrecision.S)

    assert excinfo.value.status == 400
    error = error_of(excinfo)
    assert (error["code"], error["line"]) == ("invalid", 2)
    assert "line 2:" in error["message"] and "line 4:" in error["message"]
    assert stored_batches()[0].stored == 2
    assert [value for _, value in values(world.sensors["env-001/temperature"])] == [20.0]
    assert [value for _, value in values(world.sensors["env-002/temperature"])] == [21.0]


def test_a_device_key_writing_another_devices_point_has_it_rejected(world, influx):
    own = Point("env").field("temperature", 22.0).time(WHEN, WritePrecision.S)  # no device tag: the key's device
    foreign = Point("env").tag("device", "env-002").field("temperature", 99.0).time(WHEN, WritePrecision.S)

    with pytest.raises(ApiException) as excinfo:
        influx(world.device_keys["env-001"]).write(bucket=BUCKET, record=[own, foreign], write_precision="s")

    assert excinfo.value.status == 400
    error = error_of(excinfo)
    assert error["line"] == 2 and "env-002" in error["message"]
    stored_batches()
    assert [value for _, value in values(world.sensors["env-001/temperature"])] == [22.0]
    assert values(world.sensors["env-002/temperature"]) == []


@override_settings(INFLUX_MAX_BODY_BYTES=4096)
def test_a_write_above_the_size_limit_is_413_and_stores_nothing(world, influx, operator_token):
    points = [
        Point("env").tag("device", "env-001").field("temperature", float(n % 40)).time(WHEN - timedelta(seconds=n))
        for n in range(200)
    ]

    with pytest.raises(ApiException) as excinfo:
        influx(operator_token).write(bucket=BUCKET, record=points)

    assert excinfo.value.status == 413
    assert error_of(excinfo) == {"code": "invalid", "message": error_of(excinfo)["message"], "maxLength": 4096}
    assert IngestBatch.objects.count() == 0
    influx(operator_token).write(bucket=BUCKET, record=points[:20])  # a smaller batch goes through
    assert stored_batches()[0].stored == 20


@override_settings(THROTTLE_RATES={**THROTTLES_OFF, "ingest_readings": "5/minute"})
def test_readings_over_the_rate_limit_are_429_with_retry_after(world, influx, operator_token):
    write_api = influx(operator_token)
    three = [
        Point("env").tag("device", "env-001").field("temperature", float(n)).time(WHEN - timedelta(seconds=n))
        for n in range(3)
    ]
    write_api.write(bucket=BUCKET, record=three)

    with pytest.raises(ApiException) as excinfo:
        write_api.write(bucket=BUCKET, record=three)

    assert excinfo.value.status == 429
    assert error_of(excinfo)["code"] == "too many requests"
    assert 1 <= int(excinfo.value.headers["Retry-After"]) <= 60
    assert IngestBatch.objects.count() == 1


def test_an_unknown_token_is_401(world, influx):
    with pytest.raises(ApiException) as excinfo:
        influx("not-a-token").write(
            bucket=BUCKET, record=Point("env").tag("device", "env-001").field("temperature", 1.0)
        )

    assert excinfo.value.status == 401
    assert error_of(excinfo)["code"] == "unauthorized"
    assert IngestBatch.objects.count() == 0
