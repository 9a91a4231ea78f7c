"""Retention: readings partitions older than the cutoff are dropped whole, rows are deleted only in a partition
that straddles it, readings the rollups have not taken in stay, rollups past their own retention go in
windows; `manage.py apply_retention` runs it now and says what went."""

from __future__ import annotations

import logging
from datetime import timedelta
from io import StringIO

import psycopg
import pytest
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from apps.aggregates.buckets import DAY, HOUR, floor_to
from apps.aggregates.models import RolledUpBatch, RollupDay, RollupHour, RollupState
from apps.aggregates.retention import retention_plan, retention_purge
from apps.aggregates.services import rollups_refresh
from apps.ingest import partitions
from apps.ingest.models import Reading
from apps.ingest.partitions import partitions_list
from tests.aggregates.helpers import insert_raw, store
from tests.worker import database_url
from workers.tasks.aggregates import purge_retention

pytestmark = pytest.mark.django_db


def _rolled_up() -> None:
    """The rollups as the beat keeps them: the first refresh backfills everything."""
    while not rollups_refresh(budget_s=60).backfilled:
        pass


@pytest.fixture
def history(world, settings, fresh_partitions):
    """Forty days of hourly readings of one sensor in day partitions (stored while raw retention was 90 days),
    rolled up; now readings are kept 10 days and rollups 30."""
    sensor = world.sensors["env-001/temperature"]
    now = timezone.now()
    start = floor_to(now - timedelta(days=40), HOUR)
    insert_raw(sensor.pk, start, count=40 * 24, step=HOUR)
    _rolled_up()
    settings.READINGS_RETENTION_DAYS = 10
    settings.ROLLUPS_RETENTION_DAYS = 30
    return {"now": now, "sensor": sensor, "cutoff": floor_to(now - timedelta(days=10), DAY)}


def _statements():
    """A wrapper recording every SQL statement run, and the list it fills."""
    statements: list[str] = []

    def record(execute, sql, params, many, context):
        statements.append(sql)
        return execute(sql, params, many, context)

    return record, statements


def test_whole_days_older_than_the_cutoff_are_dropped_and_the_rest_kept(history, caplog):
    cutoff = history["cutoff"]
    rollups_limit = floor_to(history["now"] - timedelta(days=30), DAY)
    doomed = [p.name for p in partitions_list() if p.end <= cutoff]
    old_readings = Reading.objects.filter(ts__lt=cutoff).count()
    hours_before = RollupHour.objects.filter(bucket__lt=rollups_limit).count()
    days_before = RollupDay.objects.filter(bucket__lt=rollups_limit).count()
    kept = (
        Reading.objects.filter(ts__gte=cutoff).count(),
        RollupHour.objects.filter(bucket__gte=rollups_limit).count(),
        RollupDay.objects.filter(bucket__gte=rollups_limit).count(),
    )

    with caplog.at_level(logging.INFO, logger="apps.aggregates.retention"):
        outcome = purge_retention()

    assert len(doomed) == 30 and old_readings >= 29 * 24
    assert outcome["partitions_dropped"] == doomed
    assert all(p.end > cutoff for p in partitions_list())
    assert not Reading.objects.filter(ts__lt=cutoff).exists()
    assert not RollupHour.objects.filter(bucket__lt=rollups_limit).exists()
    assert not RollupDay.objects.filter(bucket__lt=rollups_limit).exists()
    assert (Reading.objects.count(), RollupHour.objects.count(), RollupDay.objects.count()) == kept
    assert (outcome["readings"], outcome["readings_deleted"]) == (old_readings, 0)  # never analysed: counted
    assert (outcome["hour_rollups"], outcome["day_rollups"]) == (hours_before, days_before)
    assert (outcome["more"], outcome["held_back"], outcome["readings_before"]) == (False, "", cutoff.isoformat())
    assert "retention purge" in caplog.text and doomed[0] in caplog.text
    state = RollupState.objects.get()
    assert (state.last_purge_readings, state.last_purge_rollups) == (old_readings, hours_before + days_before)


def test_dropping_thirty_days_reads_and_deletes_no_rows(history):
    """What makes the purge cost the same whatever the days hold: no DELETE, no count, only the catalogue."""
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE ingest_reading")  # as autovacuum would have
    record, statements = _statements()

    with connection.execute_wrapper(record):
        outcome = retention_purge()

    assert len(outcome.partitions_dropped) == 30
    readings_work = [sql for sql in statements if "ingest_reading" in sql and ("DELETE" in sql or "count(" in sql)]
    assert readings_work == []
    assert outcome.readings == pytest.approx(30 * 24, abs=24)  # PostgreSQL's estimates


def test_only_the_partition_straddling_the_cutoff_has_rows_deleted(world, settings, fresh_partitions):
    sensor = world.sensors["env-001/temperature"]
    now = timezone.now()
    start = floor_to(now - timedelta(days=30), HOUR)
    settings.READINGS_RETENTION_DAYS = 5  # when these were stored: days older than five share a partition
    insert_raw(sensor.pk, start, count=30 * 24, step=HOUR)
    _rolled_up()
    [wide] = [p for p in partitions_list() if p.end - p.start > DAY]
    settings.READINGS_RETENTION_DAYS = 10
    cutoff = floor_to(now - timedelta(days=10), DAY)
    assert wide.start < cutoff < wide.end
    in_wide_after_cutoff = Reading.objects.filter(ts__gte=cutoff, ts__lt=wide.end).count()
    deleted = Reading.objects.filter(ts__lt=cutoff).count()
    record, statements = _statements()

    with connection.execute_wrapper(record):
        outcome = retention_purge()

    deletes = [sql for sql in statements if sql.startswith("DELETE FROM ingest_reading")]
    assert deletes and all(sql.startswith(f"DELETE FROM {wide.name} ") for sql in deletes)
    assert (outcome.readings_deleted, outcome.partitions_dropped) == (deleted, [])
    assert wide.name in [p.name for p in partitions_list()]
    assert Reading.objects.filter(ts__lt=cutoff).count() == 0
    assert Reading.objects.filter(ts__gte=cutoff, ts__lt=wide.end).count() == in_wide_after_cutoff


def test_the_straddling_partition_is_trimmed_in_windows_and_the_purge_queues_itself(
    world, settings, fresh_partitions, monkeypatch
):
    sensor = world.sensors["env-001/temperature"]
    now = timezone.now()
    settings.READINGS_RETENTION_DAYS = 2
    insert_raw(sensor.pk, floor_to(now - timedelta(days=12), HOUR), count=12 * 24, step=HOUR)
    _rolled_up()
    settings.READINGS_RETENTION_DAYS = 5
    settings.RETENTION_PURGE_CHUNK_MINUTES = 24 * 60
    settings.RETENTION_PURGE_BUDGET_S = 1
    requeued = []
    monkeypatch.setattr(purge_retention, "apply_async", lambda *args, **kwargs: requeued.append(True))
    clock = iter(range(0, 1000, 1))
    monkeypatch.setattr("apps.aggregates.retention.time.monotonic", lambda: next(clock) * 0.4)
    old = Reading.objects.filter(ts__lt=floor_to(now - timedelta(days=5), DAY)).count()
    windows = []

    def record_deletes(execute, sql, params, many, context):
        if sql.startswith("DELETE FROM ingest_reading_p"):
            windows.append(params)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(record_deletes):
        first = purge_retention()

    assert first["more"] is True and requeued == [True]
    assert 0 < first["readings_deleted"] < old
    assert all(high - low <= timedelta(days=1) for low, high in windows)
    monkeypatch.setattr("apps.aggregates.retention.time.monotonic", lambda: 0.0)
    second = purge_retention()
    assert second["more"] is False and requeued == [True]
    assert first["readings_deleted"] + second["readings_deleted"] == old


def test_readings_the_rollups_have_not_taken_in_are_kept(world, settings, fresh_partitions):
    settings.READINGS_RETENTION_DAYS = 10
    settings.ROLLUPS_RETENTION_DAYS = 30
    sensor = world.sensors["env-001/temperature"]
    now = timezone.now()
    insert_raw(sensor.pk, floor_to(now - timedelta(days=40), HOUR), count=40 * 24, step=HOUR)
    never_rolled_up = floor_to(now - timedelta(days=30), DAY)

    # Before the first refresh only what will never be rolled up (past the rollups' retention) may go.
    first = retention_purge()
    assert (first.readings_before, first.held_back) == (never_rolled_up, "the rollups have not run yet")
    assert Reading.objects.filter(ts__lt=never_rolled_up).count() == 0
    assert Reading.objects.filter(ts__lt=now - timedelta(days=29)).exists()

    # Rolled up, but a batch of late readings is stored that the refresh has not taken yet.
    _rolled_up()
    late = floor_to(now - timedelta(days=20), HOUR)
    batch = store([(sensor.key, late + timedelta(minutes=30), 21.0)])
    held = retention_purge()
    assert (held.readings_before, held.held_back) == (
        floor_to(late, DAY),
        "a stored batch has not been rolled up yet",
    )
    assert Reading.objects.filter(ts=late + timedelta(minutes=30)).exists()

    rollups_refresh()  # takes the batch in (its hour is older than raw retention: frozen, not merged)
    assert RolledUpBatch.objects.filter(batch_id=batch.pk).exists()
    done = retention_purge()
    assert (done.readings_before, done.held_back) == (floor_to(now - timedelta(days=10), DAY), "")
    assert not Reading.objects.filter(ts__lt=done.readings_before).exists()


def test_a_second_purge_finds_nothing(history):
    purge_retention()
    again = purge_retention()

    assert (again["readings"], again["partitions_dropped"], again["hour_rollups"], again["day_rollups"]) == (
        0,
        [],
        0,
        0,
    )


def test_a_partition_left_detached_by_an_interrupted_drop_is_dropped(history):
    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE ingest_reading_p20200101 (LIKE ingest_reading)")

    outcome = retention_purge()

    assert outcome.partitions_dropped[0] == "ingest_reading_p20200101"
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass('ingest_reading_p20200101')")
        assert cursor.fetchone()[0] is None


def test_apply_retention_runs_the_purge_now_and_says_what_went(history):
    dry = StringIO()
    call_command("apply_retention", "--dry-run", stdout=dry)
    assert Reading.objects.filter(ts__lt=history["cutoff"]).exists()
    doomed = [p.name for p in partitions_list() if p.end <= history["cutoff"]]
    assert f"readings before {history['cutoff'].isoformat()} go" in dry.getvalue()
    assert all(f"would drop partition {name}" in dry.getvalue() for name in doomed)

    out = StringIO()
    call_command("apply_retention", stdout=out)

    assert not Reading.objects.filter(ts__lt=history["cutoff"]).exists()
    assert all(f"dropped partition {name}" in out.getvalue() for name in doomed)
    assert f"in {len(doomed)} dropped partitions" in out.getvalue()


@pytest.mark.django_db(transaction=True)
def test_partitions_are_detached_concurrently_and_a_detach_that_waited_too_long_is_finished_later(
    world, settings, fresh_partitions, monkeypatch
):
    """Outside a transaction the detach never blocks ingest; one that times out waiting for a query still
    reading the partition is left pending, invisible to new queries, and the next run finishes it."""
    sensor = world.sensors["env-001/temperature"]
    now = timezone.now()
    insert_raw(sensor.pk, floor_to(now - timedelta(days=8), HOUR), count=8 * 24, step=HOUR)
    settings.READINGS_RETENTION_DAYS = 5
    RollupState.objects.create(watermark=now, backfilled=True)
    monkeypatch.setattr(partitions, "DROP_LOCK_TIMEOUT", "200ms")
    doomed = retention_plan().drop[0]
    reader = psycopg.connect(database_url(connection.settings_dict))
    try:
        # A long query through the table, still open, on the partition about to go.
        reader.execute(
            "SELECT count(*) FROM ingest_reading WHERE ts >= %s AND ts < %s", [doomed.start, doomed.end]
        ).fetchall()
        record, statements = _statements()
        with connection.execute_wrapper(record):
            blocked = retention_purge()
        assert blocked.more is True
        assert any("DETACH PARTITION" in sql and sql.endswith("CONCURRENTLY") for sql in statements)
        with connection.cursor() as cursor:
            cursor.execute("SELECT inhdetachpending FROM pg_inherits WHERE inhrelid = %s::regclass", [doomed.name])
            assert cursor.fetchone() == (True,)
        reader.rollback()

        finished = retention_purge()
    finally:
        reader.close()

    assert doomed.name in finished.partitions_dropped and finished.more is False
    assert all(p.end > floor_to(now - timedelta(days=5), DAY) for p in partitions_list())
    assert not Reading.objects.filter(ts__lt=floor_to(now - timedelta(days=5), DAY)).exists()
