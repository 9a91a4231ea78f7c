"""The incremental rollup refresh (apps.aggregates.services.rollups_refresh), called directly."""

from __future__ import annotations

from datetime import timedelta

import psycopg
import pytest
from django.db import connection
from django.utils import timezone

from apps.aggregates.models import RolledUpBatch, RollupDay, RollupHour, RollupState
from apps.aggregates.services import REFRESH_LOCK, rollups_rebuild, rollups_refresh
from tests.aggregates.helpers import (
    assert_same_rows,
    at,
    insert_raw,
    raw_rollups,
    rollup_rows,
    series,
    store,
)
from tests.worker import database_url

pytestmark = pytest.mark.django_db

MINUTE = timedelta(minutes=1)


def assert_rollups_equal_raw() -> None:
    assert_same_rows(rollup_rows("aggregates_rolluphour"), raw_rollups("hour"))
    assert_same_rows(rollup_rows("aggregates_rollupday"), raw_rollups("day"))


def test_rollups_equal_raw_after_normal_late_and_duplicate_data(world):
    now = timezone.now()
    voltage, temperature = "dc-meter-001/voltage_dc", "env-001/temperature"
    rollups_refresh()  # first run: nothing stored yet
    store(series(voltage, now - timedelta(hours=30), count=400, step=5 * MINUTE, base=740))
    store(series(temperature, now - timedelta(hours=5), count=250, step=MINUTE))

    outcome = rollups_refresh()

    assert outcome.batches == 2
    assert_rollups_equal_raw()
    assert RollupHour.objects.count() > 30 and RollupDay.objects.count() >= 2

    # Late data: a day and a half back, into hours and days that are already rolled up, and a backfill a
    # week back that rolls up on its own.
    store(series(voltage, now - timedelta(hours=36), count=90, step=7 * MINUTE, base=700))
    store(series(temperature, now - timedelta(days=7), count=30, step=11 * MINUTE, base=5))
    rollups_refresh()
    assert_rollups_equal_raw()

    # Duplicates: stored again, counted as duplicates, nothing changes.
    batch = store(series(temperature, now - timedelta(hours=5), count=250, step=MINUTE))
    assert (batch.stored, batch.duplicates) == (0, 250)
    before = rollup_rows("aggregates_rolluphour")
    rollups_refresh()
    assert rollup_rows("aggregates_rolluphour") == before
    assert_rollups_equal_raw()


def test_refresh_running_twice_changes_nothing(world):
    now = timezone.now()
    rollups_refresh()
    store(series("env-002/humidity", now - timedelta(hours=50), count=300, step=10 * MINUTE, base=40))
    first = rollups_refresh()
    assert first.hour_rows > 0 and first.day_rows > 0
    with connection.cursor() as cursor:
        cursor.execute("SELECT sensor_id, bucket, xmin::text FROM aggregates_rolluphour ORDER BY 1, 2")
        versions = cursor.fetchall()
    rows = rollup_rows("aggregates_rolluphour"), rollup_rows("aggregates_rollupday")

    second = rollups_refresh()

    assert (second.batches, second.hour_rows, second.day_rows) == (0, 0, 0)
    assert (rollup_rows("aggregates_rolluphour"), rollup_rows("aggregates_rollupday")) == rows
    with connection.cursor() as cursor:
        cursor.execute("SELECT sensor_id, bucket, xmin::text FROM aggregates_rolluphour ORDER BY 1, 2")
        assert cursor.fetchall() == versions  # not even rewritten with the same values


def test_a_batch_rolled_up_again_rewrites_nothing(world):
    """Forgetting the ledger (as if the refresh's commit had been lost) and running again is harmless."""
    rollups_refresh()
    store(series("env-001/humidity", timezone.now() - timedelta(hours=3), count=100, step=MINUTE))
    rollups_refresh()
    rows = rollup_rows("aggregates_rolluphour")
    RolledUpBatch.objects.all().delete()
    RollupState.objects.update(watermark=timezone.now() - timedelta(days=1))

    again = rollups_refresh()

    assert again.batches == 1 and again.hour_rows == 0
    assert rollup_rows("aggregates_rolluphour") == rows


def test_a_refresh_while_another_runs_is_skipped(world):
    with psycopg.connect(database_url(connection.settings_dict), autocommit=True) as other:
        other.execute("SELECT pg_advisory_lock(%s)", [REFRESH_LOCK])
        try:
            assert rollups_refresh().skipped
        finally:
            other.execute("SELECT pg_advisory_unlock(%s)", [REFRESH_LOCK])
    assert not rollups_refresh().skipped


def test_readings_from_before_the_first_run_are_backfilled(world, settings):
    sensor = world.sensors["dc-meter-001/current_dc"]
    now = timezone.now()
    insert_raw(sensor.pk, now - timedelta(days=5), count=5 * 24 * 12, step=5 * MINUTE)
    settings.AGGREGATES_BACKFILL_CHUNK_HOURS = 24

    outcome = rollups_refresh()

    assert outcome.backfill_chunks >= 5 and outcome.backfilled
    assert_rollups_equal_raw()
    state = RollupState.objects.get()
    assert state.backfilled


def test_backfill_stops_at_its_budget_and_goes_on_next_run(world, settings):
    sensor = world.sensors["dc-meter-001/current_dc"]
    insert_raw(sensor.pk, timezone.now() - timedelta(days=3), count=3 * 24, step=timedelta(hours=1))
    settings.AGGREGATES_BACKFILL_CHUNK_HOURS = 12

    first = rollups_refresh(budget_s=0)
    assert first.backfill_chunks == 0 and not first.backfilled
    rounds = 0
    while not rollups_refresh(budget_s=0.000001).backfilled:
        rounds += 1
        assert rounds < 20
    assert rounds >= 6  # one 12-hour chunk per run over three days and more
    assert_rollups_equal_raw()


def test_a_capped_run_leaves_the_rest_for_the_next(world, settings):
    settings.AGGREGATES_REFRESH_MAX_BATCHES = 2
    rollups_refresh()
    now = timezone.now()
    for hours_back in (9, 7, 5, 3, 1):
        store(series("env-002/temperature", now - timedelta(hours=hours_back), count=30, step=MINUTE))

    assert rollups_refresh().batches == 2
    assert rollups_refresh().batches == 2
    assert rollups_refresh().batches == 1
    assert rollups_refresh().batches == 0
    assert_rollups_equal_raw()


def test_the_watermark_advances_and_the_ledger_forgets_what_it_passed(world, settings):
    rollups_refresh()
    store(series("env-002/temperature", timezone.now() - timedelta(hours=2), count=10, step=MINUTE))
    rollups_refresh()
    assert RolledUpBatch.objects.count() == 1

    later = timezone.now() + timedelta(seconds=settings.AGGREGATES_REFRESH_SETTLE_S + 5)
    rollups_refresh(now=later)

    assert RolledUpBatch.objects.count() == 0
    assert RollupState.objects.get().watermark > timezone.now()


def test_rollups_of_a_deleted_sensor_go_with_it(world):
    sensor = world.sensors["env-002/humidity"]
    rollups_refresh()
    store(series(sensor.key, timezone.now() - timedelta(hours=4), count=60, step=MINUTE))
    rollups_refresh()
    assert RollupHour.objects.filter(sensor=sensor).exists()

    sensor.delete()

    assert not RollupHour.objects.filter(sensor_id=sensor.pk).exists()
    assert not RollupDay.objects.filter(sensor_id=sensor.pk).exists()
    assert rollups_refresh().skipped is False  # nothing of it left to trip over


def test_a_batch_of_a_sensor_deleted_before_the_refresh_is_skipped(world):
    rollups_refresh()
    store(series("env-002/humidity", timezone.now() - timedelta(hours=4), count=60, step=MINUTE))
    store(series("env-001/humidity", timezone.now() - timedelta(hours=4), count=60, step=MINUTE))
    world.sensors["env-002/humidity"].delete()

    outcome = rollups_refresh()

    assert outcome.batches == 2
    assert_rollups_equal_raw()


def test_hours_older_than_raw_retention_keep_their_rollups(world, settings):
    """Their raw readings may be partly purged; re-aggregating what is left would lose the rest."""
    sensor = world.sensors["env-001/temperature"]
    now = timezone.now()
    old = now - timedelta(days=settings.READINGS_RETENTION_DAYS + 3)
    rollups_refresh()
    store(series(sensor.key, old, count=30, step=MINUTE))
    rollups_refresh()
    hour = RollupHour.objects.get(sensor=sensor, bucket=old.replace(minute=0, second=0, microsecond=0))
    with connection.cursor() as cursor:  # the purge took some of that hour's readings
        cursor.execute("DELETE FROM ingest_reading WHERE sensor_id = %s AND ts < %s", [sensor.pk, old + 10 * MINUTE])

    store([(sensor.key, old + 40 * MINUTE, 99.0)])  # a late reading into it
    rollups_rebuild(start=old - timedelta(hours=1), end=old + timedelta(hours=2))
    rollups_refresh()

    kept = RollupHour.objects.get(sensor=sensor, bucket=hour.bucket)
    assert (kept.count, kept.sum) == (hour.count, hour.sum)


def test_rebuild_rolls_up_readings_written_outside_the_pipeline(world):
    sensor = world.sensors["dc-meter-001/voltage_dc"]
    start = at("2026-01-10T00:00:00Z")
    insert_raw(sensor.pk, start, count=48 * 4, step=timedelta(minutes=15), base=700)

    hours, days = rollups_rebuild(start=start, end=start + timedelta(days=2))

    assert (hours, days) == (48, 2)
    assert_rollups_equal_raw()


def test_a_batch_spanning_days_re_aggregates_only_the_hours_it_changed(world):
    """A batch records one time span for all its sensors: fresh readings of one sensor and a late one of
    another make both look touched over days. Only the hours whose counts changed are rewritten."""
    now = timezone.now()
    rollups_refresh()
    store(series("env-001/temperature", now - timedelta(days=4), count=4 * 24 * 6, step=10 * MINUTE))
    store(series("env-002/temperature", now - timedelta(days=4), count=4 * 24 * 6, step=10 * MINUTE))
    rollups_refresh()

    store(
        [
            ("env-001/temperature", now - timedelta(minutes=3), 31.0),
            ("env-002/temperature", now - timedelta(days=3, minutes=1, seconds=30), -4.0),
        ]
    )
    outcome = rollups_refresh()

    assert outcome.hour_rows == 2  # one hour of each sensor, not four days of hours
    assert outcome.day_rows == 2
    assert_rollups_equal_raw()


def test_the_rebuild_command_rolls_up_a_range(world):
    from io import StringIO

    from django.core.management import call_command

    sensor = world.sensors["env-001/humidity"]
    insert_raw(sensor.pk, at("2026-01-20T06:00:00Z"), count=3 * 24, step=timedelta(hours=1))
    output = StringIO()

    call_command("rebuild_rollups", "--start", "20260120", "--end", "20260124", stdout=output)

    assert "rebuilt 72 hourly and 4 daily rollup rows" in output.getvalue()
    assert_rollups_equal_raw()
