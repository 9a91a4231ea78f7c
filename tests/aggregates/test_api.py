"""GET /api/v1/aggregates/: rollups and raw readings together, held against the plain raw computation."""

from __future__ import annotations

import zoneinfo
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from apps.aggregates.services import rollups_refresh
from tests.aggregates.helpers import AGGREGATES, at, insert_raw, raw_buckets, series, store
from tests.factories import assert_error_shape

pytestmark = pytest.mark.django_db

MINUTE = timedelta(minutes=1)
FUNCTIONS = ("min", "max", "avg", "sum", "count")


def get(client, **params):
    return client.get(AGGREGATES, params)


def by_bucket(series_item: dict) -> dict:
    return {at(bucket["bucket"]): bucket for bucket in series_item["buckets"]}


def assert_matches_raw(body: dict, sensor_id: int, expected: dict) -> None:
    """One series of an answer equals the raw computation for that sensor, bucket by bucket."""
    item = next(item for item in body["series"] if item["sensor_id"] == sensor_id)
    answer = by_bucket(item)
    raw = {bucket: values for (sensor, bucket), values in expected.items() if sensor == sensor_id}
    assert answer.keys() == raw.keys()
    for bucket, (low, high, mean, total, count) in raw.items():
        got = answer[bucket]
        assert got["count"] == count
        assert got["min"] == low and got["max"] == high
        assert got["sum"] == pytest.approx(total, rel=1e-12)
        assert got["avg"] == pytest.approx(mean, rel=1e-12)


@pytest.fixture
def plant_history(world):
    """Ten days of readings of two sensors, rolled up, then more stored since the last refresh (late ones
    into rolled-up hours, and new ones): the answer has to combine rollups and raw readings."""
    now = timezone.now().replace(second=0, microsecond=0)
    voltage, temperature = world.sensors["dc-meter-001/voltage_dc"], world.sensors["env-001/temperature"]
    rollups_refresh()
    store(series(voltage.key, now - timedelta(days=10), count=10 * 24 * 4, step=15 * MINUTE, base=740))
    store(series(temperature.key, now - timedelta(days=10), count=10 * 24 * 2, step=30 * MINUTE))
    rollups_refresh()
    store(series(voltage.key, now - timedelta(days=4, minutes=7), count=20, step=3 * MINUTE, base=600))
    store(series(temperature.key, now - timedelta(hours=2), count=100, step=MINUTE, base=30))
    return {"now": now, "sensors": [voltage.pk, temperature.pk]}


@pytest.mark.parametrize("interval", ["minute", "hour", "day", "week", "month"])
@pytest.mark.parametrize("tz", ["UTC", "Europe/Berlin", "America/New_York", "Asia/Kolkata"])
def test_aggregates_equal_the_raw_computation(plant_history, viewer_api, interval, tz):
    now = plant_history["now"]
    # An unaligned range: partial buckets at both ends come from raw readings.
    start, end = now - timedelta(days=9, minutes=23), now - timedelta(minutes=17)
    if interval == "minute":
        start = now - timedelta(hours=30, minutes=3)
    ids = plant_history["sensors"]

    response = get(
        viewer_api,
        sensor=",".join(map(str, ids)),
        interval=interval,
        tz=tz,
        start=start.isoformat(),
        end=end.isoformat(),
    )

    assert response.status_code == 200, response.content
    body = response.json()
    assert [item["sensor_id"] for item in body["series"]] == sorted(
        ids, key=lambda pk: body["series"][0]["sensor_id"] != pk
    )
    expected = raw_buckets(ids, interval=interval, tz=tz, start=start, end=end)
    for sensor_id in ids:
        assert_matches_raw(body, sensor_id, expected)


def test_buckets_are_rendered_in_the_time_zone(plant_history, viewer_api):
    now = plant_history["now"]
    body = get(
        viewer_api, sensor=plant_history["sensors"][0], interval="day", tz="Europe/Berlin",
        start=(now - timedelta(days=3)).isoformat(), end=now.isoformat(),
    ).json()  # fmt: skip

    labels = [bucket["bucket"] for bucket in body["series"][0]["buckets"]]
    zone = zoneinfo.ZoneInfo("Europe/Berlin")
    for label in labels:
        local = at(label).astimezone(zone)
        assert (local.hour, local.minute) == (0, 0)
        assert label.endswith(("+01:00", "+02:00"))


def test_a_reading_is_visible_right_after_it_is_stored(world, viewer_api):
    sensor = world.sensors["env-002/temperature"]
    now = timezone.now().replace(microsecond=0)
    rollups_refresh()
    store(series(sensor.key, now - timedelta(hours=5), count=5 * 60, step=MINUTE))
    rollups_refresh()
    params = {"sensor": sensor.key, "interval": "day", "start": (now - timedelta(days=1)).isoformat()}
    before = get(viewer_api, **params, end=(now + timedelta(minutes=1)).isoformat()).json()

    store([(sensor.key, now - timedelta(hours=3, seconds=1), 99.5), (sensor.key, now, -3.0)])
    after = get(viewer_api, **params, end=(now + timedelta(minutes=1)).isoformat()).json()

    total_before = sum(bucket["count"] for bucket in before["series"][0]["buckets"])
    total_after = sum(bucket["count"] for bucket in after["series"][0]["buckets"])
    assert total_after == total_before + 2
    assert max(bucket["max"] for bucket in after["series"][0]["buckets"]) == 99.5
    assert min(bucket["min"] for bucket in after["series"][0]["buckets"]) == -3.0


def test_location_subtree_aggregation(world, viewer_api):
    """Temperature of everything under Building A is env-001 only; over the plant it is both env devices."""
    start = at("2026-03-02T00:00:00Z")
    rollups_refresh()
    store(series("env-001/temperature", start, count=6 * 60, step=MINUTE, base=20))
    store(series("env-002/temperature", start, count=6 * 60, step=MINUTE, base=25))
    store(series("env-001/humidity", start, count=6 * 60, step=MINUTE, base=50))
    rollups_refresh()
    window = {"start": "20260302", "end": "20260303", "tz": "UTC", "sensor_type": "temperature"}
    env1, env2 = world.sensors["env-001/temperature"], world.sensors["env-002/temperature"]

    building_a = get(viewer_api, **window, location=world.building_a.pk, interval="hour").json()
    plant = get(viewer_api, **window, location=world.factory.pk, interval="hour", group_by="location").json()
    overall = get(viewer_api, **window, location=world.factory.pk, interval="day", group_by="all").json()
    by_type_only = get(viewer_api, **window, interval="hour").json()

    assert [item["sensor"] for item in building_a["series"]] == ["env-001/temperature"]
    assert len(building_a["series"][0]["buckets"]) == 6
    assert [(item["location"], item["sensors"]) for item in plant["series"]] == [
        (world.area_a1_south.pk, 1),
        (world.area_b1_hall.pk, 1),
    ]
    assert plant["series"][0]["location_path"] == world.area_a1_south.full_path
    expected = raw_buckets([env1.pk, env2.pk], interval="day", tz="UTC", start=start, end=start + timedelta(days=1))
    (day,) = overall["series"][0]["buckets"]
    assert overall["series"][0]["sensors"] == 2
    assert overall["series"][0]["sensor_type"] == world.sensor_types["temperature"].pk
    assert overall["series"][0]["sensor_type_code"] == "temperature"
    assert day["count"] == sum(values[4] for values in expected.values()) == 720
    assert day["max"] == max(values[1] for values in expected.values())
    assert day["avg"] == pytest.approx(sum(values[3] for values in expected.values()) / 720, rel=1e-12)
    assert {item["sensor"] for item in by_type_only["series"]} == {env1.key, env2.key}


@pytest.mark.parametrize(
    ("tz", "short_day", "long_day"),
    [("Europe/Berlin", "2026-03-29", "2026-10-25"), ("America/New_York", "2026-03-08", "2026-11-01")],
)
@pytest.mark.parametrize("rolled_up", [False, True], ids=["raw", "rollups"])
def test_dst_days_have_23_and_25_hours(world, viewer_api, tz, short_day, long_day, rolled_up):
    """One reading an hour: a local day counts its hours, so the DST change days show 23 and 25."""
    sensor = world.sensors["env-001/humidity"]
    rollups_refresh()
    for day in (short_day, long_day):
        store(series(sensor.key, at(f"{day}T00:00:00Z") - timedelta(days=2), count=5 * 24, step=timedelta(hours=1)))
    if rolled_up:
        rollups_refresh()
    for day in (short_day, long_day):
        day_before = (at(f"{day}T12:00:00Z") - timedelta(days=1)).strftime("%Y%m%d")
        day_after = (at(f"{day}T12:00:00Z") + timedelta(days=2)).strftime("%Y%m%d")
        body = get(
            viewer_api, sensor=sensor.key, interval="day", functions="count", tz=tz, start=day_before, end=day_after
        ).json()
        counts = {bucket["bucket"][:10]: bucket["count"] for bucket in body["series"][0]["buckets"]}
        assert set(body["series"][0]["buckets"][0]) == {"bucket", "count"}
        following = (at(f"{day}T12:00:00Z") + timedelta(days=1)).strftime("%Y-%m-%d")
        assert counts[day] == (23 if day == short_day else 25)
        assert counts[following] == 24


def test_week_and_month_buckets_start_at_local_midnight(world, viewer_api):
    sensor = world.sensors["env-001/humidity"]
    store(series(sensor.key, at("2026-03-25T00:00:00Z"), count=14 * 24, step=timedelta(hours=1)))
    rollups_refresh()
    params = {"sensor": sensor.key, "tz": "Europe/Berlin", "start": "20260323", "end": "20260406", "functions": "count"}

    weeks = get(viewer_api, **params, interval="week").json()["series"][0]["buckets"]
    months = get(viewer_api, **params, interval="month").json()["series"][0]["buckets"]

    assert [bucket["bucket"] for bucket in weeks] == ["2026-03-23T00:00:00+01:00", "2026-03-30T00:00:00+02:00"]
    assert [bucket["bucket"] for bucket in months] == ["2026-03-01T00:00:00+01:00", "2026-04-01T00:00:00+02:00"]
    # Stored from 01:00 Berlin on the 25th; the first week loses the hour the clocks skipped.
    assert [bucket["count"] for bucket in weeks] == [5 * 24 - 1 - 1, 7 * 24]


def test_series_without_readings_are_listed_empty(world, viewer_api):
    body = get(viewer_api, sensor_type="humidity", start="20260101", end="20260102").json()

    assert [(item["sensor"], item["buckets"]) for item in body["series"]] == [
        ("env-001/humidity", []),
        ("env-002/humidity", []),
    ]


def test_yyyymmdd_dates_are_local_midnight(world, viewer_api):
    body = get(viewer_api, sensor="env-001/humidity", tz="America/New_York", start="20260301", end="20260302").json()

    assert (body["start"], body["end"]) == ("2026-03-01T00:00:00-05:00", "2026-03-02T00:00:00-05:00")


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"interval": "fortnight"}, "interval"),
        ({"functions": "median"}, "functions"),
        ({"functions": "max,p99"}, "functions"),
        ({"tz": "Mars/Olympus"}, "tz"),
        ({"tz": "../etc/passwd"}, "tz"),
        ({"tz": "Europe"}, "tz"),
        ({"group_by": "device"}, "group_by"),
        ({"start": "2026-03-02", "end": "2026-03-01"}, "end"),
        ({"start": "20260302", "end": "20260302"}, "end"),
        ({"start": "yesterday"}, "start"),
        ({"end": "20261341"}, "end"),
        ({"start": "18000101"}, "start"),
        ({"start": "99991231"}, "start"),
        ({"start": "2020-01-01", "end": "2026-01-01", "interval": "minute"}, "interval"),
        ({"sensor": "nope/nothing"}, "sensor"),
        ({"sensor": "99999999999999999999999"}, "sensor"),
        ({"sensor": None, "sensor_type": "pressure"}, "sensor_type"),
        ({"sensor": None, "sensor_type": "temperature", "location": "999999"}, "location"),
        ({"sensor": None, "sensor_type": "temperature", "location": "x"}, "location"),
        ({"sensor": None}, "sensor"),
        ({"sensor": "env-001/humidity\x00"}, "sensor"),
    ],
)
def test_bad_queries_are_400_naming_the_parameter(world, viewer_api, params, field):
    query = {"sensor": "env-001/humidity", **params}
    response = get(viewer_api, **{name: value for name, value in query.items() if value is not None})

    assert response.status_code == 400, response.content
    assert_error_shape(response, field)


def test_too_many_points_over_all_series_is_400(world, viewer_api, settings):
    settings.AGGREGATES_MAX_POINTS = 60  # two sensors, two days of hours
    response = get(viewer_api, sensor_type="temperature", interval="hour", start="20260101", end="20260103")

    assert response.status_code == 400
    assert "Too many buckets" in assert_error_shape(response, "interval")["detail"]
    assert (
        get(viewer_api, sensor_type="temperature", interval="day", start="20260101", end="20260103").status_code == 200
    )


@pytest.mark.parametrize(("principal", "expected"), [("anonymous", 401), ("device", 403), ("viewer", 200)])
def test_who_may_read_aggregates(world, api_as, principal, expected):
    assert get(api_as(principal), sensor="env-001/humidity").status_code == expected


def test_query_count_does_not_grow_with_sensors_or_buckets(world, viewer_api, django_assert_max_num_queries):
    sensor_keys = ",".join(world.sensors)
    for key in world.sensors:
        insert_raw(world.sensors[key].pk, at("2026-02-01T00:00:00Z"), count=48, step=timedelta(hours=1))
    rollups_refresh()

    with django_assert_max_num_queries(8):
        response = get(viewer_api, sensor=sensor_keys, start="20260201", end="20260203")

    assert response.status_code == 200
    assert sum(len(item["buckets"]) for item in response.json()["series"]) == 48 * len(world.sensors)


def test_rolled_up_hours_are_read_from_rollups_and_the_rest_raw(world, viewer_api):
    """Raw readings of rolled-up hours removed behind the rollups' back still count (they are read from
    rollups); the partial hours at the ends and hours stored since the refresh are read raw."""
    sensor = world.sensors["env-002/humidity"]
    start = at("2026-04-01T00:00:00Z")
    rollups_refresh()
    store(series(sensor.key, start, count=24 * 60, step=MINUTE))
    rollups_refresh()
    store(series(sensor.key, start + timedelta(hours=24), count=60, step=MINUTE))  # pending, not rolled up
    with connection.cursor() as cursor:
        cursor.execute(
            "DELETE FROM ingest_reading WHERE sensor_id = %s AND ts >= %s AND ts < %s",
            [sensor.pk, start + timedelta(hours=2), start + timedelta(hours=22)],
        )

    body = get(
        viewer_api, sensor=sensor.key, interval="day", functions="count", tz="UTC",
        start=(start + timedelta(minutes=30)).isoformat(), end=(start + timedelta(hours=24, minutes=30)).isoformat(),
    ).json()  # fmt: skip

    counts = [bucket["count"] for bucket in body["series"][0]["buckets"]]
    assert counts == [24 * 60 - 30, 30]
