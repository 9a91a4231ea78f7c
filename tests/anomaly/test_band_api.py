"""The expected band API: a sensor's learned state projected over a time range, the same band detect() scores
readings against."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from django.urls import reverse

from apps.anomaly import detectors as d
from apps.anomaly.models import AnomalyRule
from apps.anomaly.selectors import sensor_band
from tests.accounts.test_permissions import READERS
from tests.anomaly import learned
from tests.anomaly.learned import HOUR, daily_cycle
from tests.conftest import PRINCIPALS
from tests.factories import API, assert_error_shape

pytestmark = pytest.mark.django_db

BAND = f"{API}/anomaly-band/"
SENSOR = "env-001/temperature"
# The learned history ends on a whole hour, two hours before this moment, so every test range is after it.
NOW = datetime(2026, 3, 2, 12, tzinfo=UTC)


def learn(sensor_id: int, **kwargs) -> np.ndarray:
    return learned.learn(sensor_id, until=NOW - timedelta(hours=2), **kwargs)


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


@pytest.fixture
def sensor(world):
    return world.sensors[SENSOR]


@pytest.fixture
def rule(world) -> AnomalyRule:
    return AnomalyRule.objects.create(sensor_type=world.sensor_types["temperature"])


def get_band(client, sensor, start: datetime, end: datetime, **params) -> dict:
    response = client.get(BAND, {"sensor": sensor.key, "start": iso(start), "end": iso(end), **params})
    assert response.status_code == 200, response.content
    return response.json()


def test_a_seasonal_state_gives_an_hour_of_day_band_that_detect_agrees_with(viewer_api, sensor, rule):
    state = learn(sensor.pk, days=4)

    body = get_band(viewer_api, sensor, NOW, NOW + timedelta(days=1))

    assert (body["status"], body["sensor_id"], body["step_s"]) == ("ready", sensor.pk, 3600)
    assert body["learned_readings"] == int(state[d.N]) == 4 * 288
    points = body["points"]
    assert [p["ts"] for p in points] == [iso(NOW + timedelta(hours=h)) for h in range(25)]
    assert all(p["seasonal"] and p["low"] < p["expected"] < p["high"] for p in points)
    # The band follows the learned daily cycle: highest around 06:00 UTC, lowest around 18:00 UTC.
    expected = {datetime.fromisoformat(p["ts"]).hour: p["expected"] for p in points}
    for hour, value in expected.items():
        assert value == pytest.approx(daily_cycle(np.array([hour + 0.5]))[0], abs=0.6), hour
    assert max(expected, key=expected.get) in (5, 6, 7) and min(expected, key=expected.get) in (17, 18, 19)
    # A reading at one of these times is scored by detect() against exactly this band.
    at = NOW + timedelta(hours=7, minutes=20)
    scored = d.detect(
        state[np.newaxis].copy(),
        d.params_matrix([d.Settings()]),
        np.zeros(1, dtype=np.intp),
        np.array([at.timestamp()]),
        np.array([25.0]),
    )
    point = next(p for p in points if p["ts"] == iso(at.replace(minute=0)))
    assert (point["low"], point["high"], point["expected"]) == (scored.low[0], scored.high[0], scored.expected[0])
    assert body["band_z"] == 6.0


def test_without_seasonality_the_band_is_flat(viewer_api, world, sensor):
    AnomalyRule.objects.create(sensor_type=world.sensor_types["temperature"], seasonality="off", sensitivity="low")
    learn(sensor.pk, days=4)

    body = get_band(viewer_api, sensor, NOW, NOW + timedelta(hours=6), step=1800)

    points = body["points"]
    assert body["status"] == "ready" and len(points) == 13
    assert {(p["low"], p["expected"], p["high"], p["seasonal"]) for p in points} == {
        (points[0]["low"], points[0]["expected"], points[0]["high"], False)
    }
    assert body["band_z"] == pytest.approx(6.0 * 1.4)


def test_no_enabled_rule_says_so_with_no_points(viewer_api, world, sensor):
    learn(sensor.pk, days=2, cycle=False)
    assert get_band(viewer_api, sensor, NOW, NOW + timedelta(hours=2))["status"] == "no_rule"

    AnomalyRule.objects.create(sensor_type=world.sensor_types["temperature"])
    AnomalyRule.objects.create(sensor=sensor, enabled=False)  # switched off for this sensor
    body = get_band(viewer_api, sensor, NOW, NOW + timedelta(hours=2))

    assert (body["status"], body["points"], body["band_z"], body["warmup_readings"]) == ("no_rule", [], None, None)
    assert body["learned_readings"] == 2 * 288  # the state is there, but nothing uses it


def test_a_state_in_warm_up_gives_no_band(viewer_api, sensor, rule):
    no_state = get_band(viewer_api, sensor, NOW, NOW + timedelta(hours=2))
    assert (no_state["status"], no_state["learned_readings"], no_state["learned_until"]) == ("warming_up", 0, None)

    learn(sensor.pk, days=0.5)  # 144 readings, half a day: short of 200 readings and a day
    body = get_band(viewer_api, sensor, NOW, NOW + timedelta(hours=2))

    assert (body["status"], body["points"], body["learned_readings"]) == ("warming_up", [], 144)
    assert (body["warmup_readings"], body["warmup_s"]) == (200, 86400.0)
    assert body["learned_until"] == iso(NOW - timedelta(hours=2))


def test_the_sensor_may_be_named_by_id_and_the_range_defaults_to_the_last_day(viewer_api, sensor, rule):
    learn(sensor.pk, days=2, cycle=False)

    body = viewer_api.get(BAND, {"sensor": sensor.pk}).json()

    assert (body["status"], body["sensor"]) == ("ready", SENSOR)
    start, end = datetime.fromisoformat(body["start"]), datetime.fromisoformat(body["end"])
    assert end - start == timedelta(days=1) and len(body["points"]) in (25, 26)


def test_a_long_range_takes_a_longer_default_step(viewer_api, sensor, rule):
    learn(sensor.pk, days=2, cycle=False)

    body = get_band(viewer_api, sensor, NOW - timedelta(days=200), NOW)

    assert body["step_s"] == 3 * 3600 and len(body["points"]) <= 2000


def test_one_query_whatever_the_number_of_points(sensor, rule, django_assert_num_queries):
    learn(sensor.pk, days=4)
    times = np.arange(NOW.timestamp(), NOW.timestamp() + 30 * 86400, HOUR)

    with django_assert_num_queries(1):
        band = sensor_band(sensor_key=SENSOR, ts=times)

    assert band.status == "ready" and len(band.low) == len(times)


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({}, "sensor"),
        ({"sensor": "env-001/temperature,env-002/temperature"}, "sensor"),
        ({"sensor": "no-such/sensor"}, "sensor"),
        ({"sensor": str(2**63)}, "sensor"),
        ({"sensor": SENSOR, "start": "yesterday"}, "start"),
        ({"sensor": SENSOR, "start": "18000101"}, "start"),
        ({"sensor": SENSOR, "start": "2026-03-02T12:00:00Z", "end": "2026-03-01T12:00:00Z"}, "end"),
        ({"sensor": SENSOR, "step": "10"}, "step"),
        ({"sensor": SENSOR, "step": "hourly"}, "step"),
        ({"sensor": SENSOR, "start": "20260101", "end": "20260301", "step": "60"}, "step"),
    ],
)
def test_bad_input_is_a_400_naming_the_field(viewer_api, sensor, rule, params, field):
    response = viewer_api.get(BAND, params)

    assert response.status_code == 400, response.content
    assert_error_shape(response, field)


@pytest.mark.parametrize("principal", PRINCIPALS)
def test_readers_may_read_the_band(world, api_as, principal):
    response = api_as(principal).get(reverse("anomaly-band"), {"sensor": SENSOR})

    if principal in READERS:
        assert response.status_code == 200, response.content
        assert response.json()["status"] == "no_rule"
    else:
        assert response.status_code == (401 if principal == "anonymous" else 403), response.content
        assert_error_shape(response)


def test_the_band_is_what_detect_reports_for_a_reading():
    # Pure: the detectors' band of a state at a reading's time is the band detect() reports for that reading.
    ts = 1.7e9 + 300.0 * np.arange(1500)
    values = daily_cycle((ts / HOUR) % 24) + np.random.default_rng(2).normal(0, 0.2, len(ts))
    states, params = d.new_states(2), d.params_matrix([d.Settings(), d.Settings(seasonality="off")])
    rows = np.repeat([0, 1], len(ts))
    d.detect(states, params, rows, np.tile(ts, 2), np.tile(values, 2))
    later = ts[-1] + np.array([600.0, 4 * HOUR])

    band = d.expected_band(states, params, later)
    scored = d.detect(states.copy(), params, np.array([0, 1]), later, np.array([1.0, 1.0]))

    assert np.array_equal(band.low, scored.low) and np.array_equal(band.high, scored.high)
    assert band.seasonal.tolist() == [True, False]
    assert not math.isclose(band.expected[0], band.expected[1])
