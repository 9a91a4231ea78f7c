"""Readings partitions on plain PostgreSQL: made ahead by the beat, on demand by the store step for late data and
backfills, safely when two processes race, and without a query on the hot path once they are known."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from celery.schedules import crontab
from django.conf import settings
from django.db import IntegrityError, connection, connections, transaction
from django.utils import timezone

from apps.ingest import partitions, pipeline
from apps.ingest.adapters import to_epoch_us
from apps.ingest.models import Reading
from apps.ingest.partitions import (
    Coverage,
    partition_name,
    partitions_compact,
    partitions_ensure_ahead,
    partitions_ensure_for,
    partitions_ensure_range,
    partitions_list,
    ranges_to_create,
)
from tests.factories import make_device, make_sensor
from tests.ingest.helpers import ingest, partition_covering, stored_values
from workers.celery import app
from workers.tasks.ingest import create_reading_partitions

pytestmark = pytest.mark.django_db


def _day(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def test_partitions_are_utc_days_made_ahead(fresh_partitions):
    now = datetime(2031, 5, 1, 13, 30, tzinfo=UTC)

    created = partitions_ensure_ahead(days=2, now=now)

    assert created == ["ingest_reading_p20310501", "ingest_reading_p20310502", "ingest_reading_p20310503"]
    assert [(p.name, p.start, p.end) for p in partitions_list()] == [
        (name, datetime(2031, 5, day, tzinfo=UTC), datetime(2031, 5, day + 1, tzinfo=UTC))
        for name, day in zip(created, (1, 2, 3), strict=True)
    ]
    assert partitions_ensure_ahead(days=2, now=now) == []


def test_each_partition_has_the_key_and_the_brin_index_and_no_foreign_key(fresh_partitions):
    partitions_ensure_ahead(days=0, now=datetime(2031, 5, 1, tzinfo=UTC))

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT indexdef FROM pg_indexes WHERE tablename = 'ingest_reading_p20310501' ORDER BY indexname"
        )
        indexes = [row[0] for row in cursor.fetchall()]
        cursor.execute(
            "SELECT pg_get_constraintdef(oid) FROM pg_constraint"
            " WHERE conrelid = 'ingest_reading_p20310501'::regclass AND contype = 'f'"
        )
        foreign_keys = [row[0] for row in cursor.fetchall()]
        cursor.execute("SELECT reloptions FROM pg_class WHERE relname = 'ingest_reading_p20310501_pkey'")
        key_options = cursor.fetchone()[0]

    assert any("UNIQUE INDEX" in index and "btree (sensor_id, ts)" in index for index in indexes), indexes
    assert any("USING brin (ts)" in index and "pages_per_range='32'" in index for index in indexes), indexes
    assert foreign_keys == []  # sensors' deletion deletes their readings by trigger (migration 0008)
    assert key_options == ["fillfactor=100"]


def test_the_beat_task_makes_today_and_the_days_ahead(fresh_partitions, settings):
    settings.READINGS_PARTITIONS_AHEAD_DAYS = 1
    today = _day(timezone.now())

    created = create_reading_partitions()

    first = partitions.day_of_datetime(today)
    assert created == [partition_name(first, first + 1), partition_name(first + 1, first + 2)]
    assert create_reading_partitions() == []


def test_the_beat_entry_runs_hourly_on_the_ingest_queue():
    entry = settings.CELERY_BEAT_SCHEDULE["ingest-create-reading-partitions"]
    assert (entry["task"], entry["schedule"]) == ("ingest.create_reading_partitions", 3600.0)
    app.loader.import_default_modules()
    assert app.amqp.router.route({}, entry["task"])["queue"].name == "ingest"


def test_a_late_reading_gets_its_partition_from_the_store_step(world, admin_api, fresh_partitions):
    sensor = world.sensors["env-001/temperature"]
    late = timezone.now().replace(microsecond=0) - timedelta(days=3, hours=2)
    assert partition_covering(late) is None

    batch = ingest(admin_api, {"sensor": sensor.key, "ts": _iso(late), "value": 21.5})

    assert (batch.stored, batch.rejected) == (1, 0)
    assert stored_values(sensor) == [(_iso(late), 21.5)]
    partition = partition_covering(late)
    assert (partition.start, partition.end) == (_day(late), _day(late) + timedelta(days=1))


def test_a_backfill_makes_day_partitions_within_retention_and_few_beyond_it(world, admin_api, fresh_partitions):
    """A year of daily readings in one request: the days within raw retention get a partition each; the
    older ones, which the next purge takes anyway, share one (not a table per day in one transaction)."""
    sensor = world.sensors["env-001/temperature"]
    today = _day(timezone.now())
    days = [today - timedelta(days=n, hours=-12) for n in range(1, 366)]

    batch = ingest(
        admin_api, [{"sensor": sensor.key, "ts": _iso(ts), "value": float(n % 40)} for n, ts in enumerate(days)]
    )

    assert batch.stored == 365
    assert Reading.objects.filter(sensor=sensor).count() == 365
    retained_from = today - timedelta(days=settings.READINGS_RETENTION_DAYS)
    made = partitions_list()
    old = [p for p in made if p.end <= retained_from]
    assert [(p.start, p.end) for p in old] == [(_day(days[-1]), retained_from)]
    recent = [p for p in made if p.start >= retained_from]
    assert len(recent) == len([ts for ts in days if ts >= retained_from])
    assert all(p.end - p.start == timedelta(days=1) for p in recent)


def test_timestamps_before_the_accepted_window_are_rejected_and_the_rest_stored(world, admin_api, fresh_partitions):
    sensor = world.sensors["env-001/humidity"]
    moments = ["0001-01-01T00:00:00Z", "1990-06-01T12:00:00Z", _iso(timezone.now().replace(microsecond=0))]

    batch = ingest(admin_api, [{"sensor": sensor.key, "ts": ts, "value": 50.0} for ts in moments])

    assert (batch.status, batch.stored, batch.rejected_by_reason) == ("done", 1, {"timestamp_out_of_range": 2})
    assert [ts for ts, _ in stored_values(sensor)] == [moments[2]]


def test_the_store_step_finds_a_partition_for_any_timestamp_postgresql_can_hold(world, fresh_partitions):
    """The door refuses readings before 2000, but the store step does not depend on it: readings of year 1 or
    1990 (an older producer's batch, a direct caller) still find a partition."""
    sensor = world.sensors["env-001/humidity"]
    moments = [
        datetime(1, 1, 1, tzinfo=UTC),
        datetime(1990, 6, 1, 12, tzinfo=UTC),
        timezone.now().replace(microsecond=0),
    ]
    timestamps = [to_epoch_us(moment) for moment in moments]

    with transaction.atomic():
        stored = pipeline._write([sensor.pk] * 3, timestamps, [50.0] * 3, [sensor.pk])

    assert stored == 3
    assert [ts for ts, _ in stored_values(sensor)] == [_iso(moment) for moment in moments]


def test_once_its_days_are_known_the_store_step_asks_nothing(
    fresh_partitions, django_capture_on_commit_callbacks, django_assert_num_queries
):
    day = datetime(2031, 5, 1, tzinfo=UTC)
    with django_capture_on_commit_callbacks(execute=True):
        partitions_ensure_range(day, day + timedelta(days=1))
    batch_us = [partitions.DAY_US * partitions.day_of_datetime(day) + n * 1_000_000 for n in range(1000)]

    with django_assert_num_queries(0):
        assert partitions_ensure_for(batch_us) == []


def test_a_partition_is_only_remembered_once_its_transaction_commits(fresh_partitions):
    day = datetime(2031, 5, 1, tzinfo=UTC)
    try:
        with transaction.atomic():
            partitions_ensure_range(day, day + timedelta(days=1))
            raise RuntimeError("roll back")
    except RuntimeError:
        pass

    assert partition_covering(day) is None
    assert partitions_ensure_range(day, day + timedelta(days=1)) == ["ingest_reading_p20310501"]


def test_a_partition_dropped_behind_the_process_back_is_made_again(
    world, admin_api, fresh_partitions, django_capture_on_commit_callbacks
):
    sensor = world.sensors["env-001/temperature"]
    moment = timezone.now().replace(microsecond=0) - timedelta(days=5)
    with django_capture_on_commit_callbacks(execute=True):
        partitions_ensure_range(_day(moment), _day(moment) + timedelta(days=1))
    assert partitions._known.covers(partitions.day_of_datetime(moment))
    with connection.cursor() as cursor:  # as retention in another process would
        cursor.execute(f"DROP TABLE {partition_covering(moment).name}")

    batch = ingest(admin_api, {"sensor": sensor.key, "ts": _iso(moment), "value": 19.0})

    assert batch.stored == 1
    assert stored_values(sensor) == [(_iso(moment), 19.0)]
    assert partition_covering(moment) is not None


@pytest.mark.django_db(transaction=True)
def test_two_processes_needing_the_same_partition_create_it_once(fresh_partitions):
    """The second waits on the advisory lock while the first holds its transaction open, then finds the
    partition in the catalogue instead of failing on a duplicate table."""
    day = datetime(2031, 6, 1, tzinfo=UTC)
    first_created, results, errors = threading.Event(), {}, []

    def first():
        try:
            with transaction.atomic():
                results["first"] = partitions_ensure_range(day, day + timedelta(days=1))
                first_created.set()
                waiting_second.wait(timeout=10)
        except Exception as exc:  # reported by the main thread
            errors.append(exc)
        finally:
            connections.close_all()

    def second():
        try:
            first_created.wait(timeout=10)
            partitions.partitions_forget()  # what another process knows: nothing
            results["second"] = partitions_ensure_range(day, day + timedelta(days=1))
        except Exception as exc:
            errors.append(exc)
        finally:
            connections.close_all()

    waiting_second = threading.Event()
    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    try:
        for thread in threads:
            thread.start()
        first_created.wait(timeout=10)

        def second_waits_for_the_lock():
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = %s AND NOT granted",
                    [partitions.CREATE_LOCK],
                )
                return cursor.fetchone()[0]

        deadline = time.monotonic() + 10
        while not second_waits_for_the_lock() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert second_waits_for_the_lock() == 1
        waiting_second.set()
        for thread in threads:
            thread.join(timeout=20)

        assert errors == []
        assert results == {"first": ["ingest_reading_p20310601"], "second": []}
        assert [p.name for p in partitions_list()] == ["ingest_reading_p20310601"]
    finally:
        waiting_second.set()
        with connection.cursor() as cursor:
            cursor.execute("DROP TABLE IF EXISTS ingest_reading_p20310601")


def test_coverage_and_the_ranges_to_create():
    coverage = Coverage([(10, 11), (11, 12), (20, 30)])
    assert [coverage.covers(day) for day in (9, 10, 11, 12, 19, 20, 29, 30)] == [
        False, True, True, False, False, True, True, False
    ]  # fmt: skip
    assert coverage.gaps(5, 35) == [(5, 10), (12, 20), (30, 35)]
    assert coverage.gaps(21, 25) == []

    # Day partitions from the retention cutoff (day 100) on; below it, the gaps from the oldest missing day.
    assert ranges_to_create([3, 15, 25, 100, 101, 101, 11], coverage, retained_from_day=100) == [
        (3, 10), (12, 20), (30, 100), (100, 101), (101, 102)
    ]  # fmt: skip
    assert partition_name(20454, 20455) == "ingest_reading_p20260101"
    assert partition_name(20454, 20485) == "ingest_reading_p20260101_20260201"


def _fill_days(sensor_ids: list[int], first_day: datetime, days: int) -> int:
    """A reading every five minutes of every sensor, in time order with the sensors interleaved, as devices
    send them; returns how many."""
    partitions_ensure_range(first_day, first_day + timedelta(days=days))
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO ingest_reading (sensor_id, ts, value)"
            " SELECT s, %s + m * interval '5 minutes', 20 FROM generate_series(0, %s * 288 - 1) AS m,"
            " unnest(%s::bigint[]) AS s ORDER BY m, s",
            [first_day, days, sensor_ids],
        )
        return cursor.rowcount


def _key_bytes(partition: str) -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_relation_size(indexrelid) FROM pg_index WHERE indrelid = %s::regclass AND indisprimary",
            [partition],
        )
        return cursor.fetchone()[0]


@pytest.fixture
def many_sensors(world) -> list[int]:
    """More sensors than readings fit on a heap page (157), as in any plant: a sensor's consecutive readings
    then never share a page, which is what keeps PostgreSQL from packing the key as it goes."""
    devices = [make_device(f"fill-{n:02d}")[0] for n in range(20)]
    sensors = [make_sensor(d, world.sensor_types["temperature"], channel=f"c{c}") for d in devices for c in range(10)]
    return [sensor.pk for sensor in sensors]


def _midday() -> datetime:
    """Today at noon: a day is over only COMPACT_AFTER after midnight, so a test that took the wall clock
    would find yesterday not yet due in the first hour of a day."""
    return _day(timezone.now()) + timedelta(hours=12)


def test_the_keys_of_days_that_are_over_are_rebuilt_packed_once(many_sensors, fresh_partitions):
    now = _midday()
    today = _day(now)
    stored = _fill_days(many_sensors, today - timedelta(days=2), 2)
    _fill_days(many_sensors, today, 1)  # today's partition is still being written
    names = [partition_covering(today - timedelta(days=n)).name for n in (2, 1, 0)]
    before = {name: _key_bytes(name) for name in names}

    compacted = partitions_compact(now=now)

    assert compacted == names[1::-1]  # yesterday first, then the day before; not today
    for name in names[:2]:
        # Inserted in arrival order the key is about 70 % full; rebuilt at fillfactor 100, nearly all full.
        assert _key_bytes(name) < 0.8 * before[name], (name, before[name], _key_bytes(name))
    assert Reading.objects.filter(ts__gte=today - timedelta(days=2), ts__lt=today).count() == stored
    assert _key_bytes(names[2]) == before[names[2]]
    assert partitions_compact(now=now) == []


def test_the_compaction_beat_runs_hourly_with_room_for_a_long_rebuild():
    entry = settings.CELERY_BEAT_SCHEDULE["ingest-compact-reading-partitions"]
    assert entry["task"] == "ingest.compact_reading_partitions"
    assert entry["schedule"] == crontab(minute=20)
    app.loader.import_default_modules()
    task = app.tasks["ingest.compact_reading_partitions"]
    assert task.soft_time_limit == settings.READINGS_COMPACT_TIME_LIMIT_S > settings.CELERY_TASK_SOFT_TIME_LIMIT
    assert app.amqp.router.route({}, entry["task"])["queue"].name == "ingest"


@pytest.mark.django_db(transaction=True)
def test_outside_a_transaction_keys_are_rebuilt_concurrently_and_leftovers_dropped(many_sensors, fresh_partitions):
    now = _midday()
    yesterday = _day(now) - timedelta(days=1)
    _fill_days(many_sensors, yesterday, 1)
    name = partition_covering(yesterday).name
    with connection.cursor() as cursor, pytest.raises(IntegrityError):
        # What an interrupted concurrent build leaves: an invalid index on the partition.
        cursor.execute(f"CREATE UNIQUE INDEX CONCURRENTLY leftover ON {name} (ts)")
    statements = []

    def record(execute, sql, params, many, context):
        statements.append(sql)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(record):
        assert partitions_compact(now=now) == [name]

    assert "DROP INDEX CONCURRENTLY leftover" in statements
    assert any(sql.startswith("REINDEX INDEX CONCURRENTLY") for sql in statements)
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass('leftover')")
        assert cursor.fetchone()[0] is None
