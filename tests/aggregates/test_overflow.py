"""Readings whose sum exceeds float8 (possible only for data stored before INGEST_MAX_ABS_VALUE bounded values) no
longer stop the rollup refresh for everyone, the batch purge behind it, or /api/v1/aggregates/."""

from __future__ import annotations

import math
from datetime import timedelta

import pytest
from django.test import override_settings
from django.utils import timezone
from prometheus_client import REGISTRY

from apps.aggregates.models import RollupDay, RollupHour, RollupOverflow, RollupState
from apps.aggregates.selectors import AggregateQuery, aggregate_rows, iter_aggregate_rows
from apps.aggregates.services import rollups_rebuild, rollups_refresh
from tests.aggregates.helpers import AGGREGATES, series, store
from tests.factories import make_sensor, make_sensor_type

pytestmark = pytest.mark.django_db

HUGE = 1.5e308
MINUTE = timedelta(minutes=1)


@pytest.fixture
def energy(world):
    """A sensor whose type has no plausible range."""
    return make_sensor(world.devices["env-001"], make_sensor_type("energy_wh", unit="Wh"))


def store_unbounded(readings):
    """Store as a release before the magnitude bound did."""
    with override_settings(INGEST_MAX_ABS_VALUE=math.inf):
        return store(readings)


def overflow_count(granularity: str) -> float:
    value = REGISTRY.get_sample_value("telemetry_rollup_overflow_buckets_total", {"granularity": granularity})
    return value or 0.0


@pytest.fixture
def huge_hour(world, energy):
    """Two readings of 1.5e308 in one hour of the energy sensor, and ordinary readings of another sensor in
    the same batch and hour; rolled up."""
    hour = (timezone.now() - timedelta(hours=3)).replace(minute=0, second=0, microsecond=0)
    rollups_refresh()
    batch = store_unbounded(
        [(energy.key, hour + MINUTE, HUGE), (energy.key, hour + 2 * MINUTE, HUGE)]
        + series("env-001/temperature", hour, count=30, step=MINUTE)
    )
    assert batch.stored == 32
    return {"hour": hour, "energy": energy, "temperature": world.sensors["env-001/temperature"]}


def test_a_sum_beyond_float8_is_kept_infinite_and_reported_and_the_refresh_goes_on(huge_hour, settings):
    hours_before, days_before = overflow_count("hour"), overflow_count("day")
    settings.AGGREGATES_REFRESH_SETTLE_S = 0

    outcome = rollups_refresh()

    assert outcome.batches == 1
    energy = RollupHour.objects.get(sensor=huge_hour["energy"], bucket=huge_hour["hour"])
    assert (energy.count, energy.min, energy.max, energy.sum, energy.avg) == (2, HUGE, HUGE, math.inf, math.inf)
    ordinary = RollupHour.objects.get(sensor=huge_hour["temperature"], bucket=huge_hour["hour"])
    assert ordinary.count == 30 and math.isfinite(ordinary.sum)
    assert RollupDay.objects.get(sensor=huge_hour["energy"]).sum == math.inf  # the hour's infinity, carried on
    # Staff see the bucket in the admin, operators in the metrics.
    assert list(RollupOverflow.objects.values_list("sensor_id", "granularity", "bucket")) == [
        (huge_hour["energy"].pk, "hour", huge_hour["hour"])
    ]
    assert (overflow_count("hour") - hours_before, overflow_count("day") - days_before) == (1, 0)
    # The watermark moved on (so the batch purge does too), and the next batch is rolled up as usual.
    assert RollupState.objects.get().watermark > huge_hour["hour"]
    store(series("env-001/humidity", huge_hour["hour"], count=5, step=MINUTE, base=50))
    assert rollups_refresh().batches == 1
    assert RollupHour.objects.filter(sensor__key="env-001/humidity").count() == 1


def test_hours_that_fit_but_add_up_beyond_float8_make_an_infinite_day(world, energy):
    day = (timezone.now() - timedelta(days=2)).replace(hour=0, minute=0, second=0, microsecond=0)
    rollups_refresh()
    store_unbounded([(energy.key, day + timedelta(hours=1), HUGE), (energy.key, day + timedelta(hours=2), HUGE)])

    rollups_refresh()

    assert sorted(RollupHour.objects.filter(sensor=energy).values_list("sum", flat=True)) == [HUGE, HUGE]
    assert RollupDay.objects.get(sensor=energy).sum == math.inf
    assert list(RollupOverflow.objects.values_list("granularity", flat=True)) == ["day"]


def test_a_rebuild_over_such_readings_completes(huge_hour):
    hours, days = rollups_rebuild(start=huge_hour["hour"], end=huge_hour["hour"] + timedelta(hours=1))

    assert (hours, days) == (2, 2)
    assert RollupHour.objects.get(sensor=huge_hour["energy"]).sum == math.inf


@pytest.mark.parametrize("rolled_up", [False, True])
def test_aggregates_answer_with_a_null_sum_where_it_exceeds_float8(huge_hour, viewer_api, rolled_up):
    if rolled_up:
        rollups_refresh()
    hour, energy, temperature = huge_hour["hour"], huge_hour["energy"], huge_hour["temperature"]

    response = viewer_api.get(
        AGGREGATES,
        {
            "sensor": f"{energy.pk},{temperature.pk}",
            "interval": "hour",
            "start": (hour - timedelta(hours=1)).isoformat(),
            "end": (hour + timedelta(hours=2)).isoformat(),
        },
    )

    assert response.status_code == 200, response.content
    by_sensor = {item["sensor_id"]: item["buckets"] for item in response.json()["series"]}
    (bucket,) = by_sensor[energy.pk]
    assert (bucket["count"], bucket["min"], bucket["max"], bucket["sum"], bucket["avg"]) == (2, HUGE, HUGE, None, None)
    (ordinary,) = by_sensor[temperature.pk]
    assert ordinary["count"] == 30 and ordinary["sum"] > 0


def test_summing_across_sensors_and_exporting_meet_the_same_overflow(world, huge_hour):
    energy = huge_hour["energy"]
    query = AggregateQuery(
        sensor_ids=(energy.pk, huge_hour["temperature"].pk),
        interval="day",
        tz="UTC",
        start=huge_hour["hour"] - timedelta(days=1),
        end=huge_hour["hour"] + timedelta(days=1),
        group_by="all",
    )

    (row,) = aggregate_rows(query)
    assert (row[4], row[5]) == (math.inf, 32)
    assert [(exported[4], exported[5]) for exported in iter_aggregate_rows(query)] == [(math.inf, 32)]
