"""Storing readings the way the ingest worker does, and the plain raw computations results are held against."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from django.db import connection
from django.utils import timezone

from apps.ingest.models import IngestBatch
from apps.ingest.partitions import partitions_ensure_range
from apps.ingest.pipeline import STAGE_TABLE, batch_process
from apps.ingest.services import batch_create, normalize_request
from tests.factories import API

AGGREGATES = f"{API}/aggregates/"


def at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def store(readings: Iterable[tuple[str, datetime, float]]) -> IngestBatch:
    """Store (sensor key, ts, value) readings through one ingest batch, as the worker would."""
    body = [{"sensor": key, "ts": iso(ts), "value": value} for key, ts, value in readings]
    received_at = timezone.now()
    normalized = normalize_request(body, received_at=received_at, device_id=None)
    batch = batch_create(normalized=normalized, received_at=received_at)
    batch_process(batch_id=str(batch.pk))
    # The pipeline's staging table empties on commit; a test runs in one transaction, so empty it here or
    # the next batch of the test would store these rows again.
    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {STAGE_TABLE}")
    return IngestBatch.objects.get(pk=batch.pk)


def series(key: str, start: datetime, *, count: int, step: timedelta, base: float = 20.0) -> list:
    """`count` readings of one sensor from `start`, `step` apart, with values that vary irregularly."""
    return [(key, start + step * n, round(base + ((n * 37) % 101) / 7.0, 3)) for n in range(count)]


def insert_raw(sensor_id: int, start: datetime, *, count: int, step: timedelta, base: float = 10.0) -> None:
    """Readings written straight into the table, outside any ingest batch (as a bulk load would)."""
    partitions_ensure_range(start, start + step * (count - 1) + timedelta(microseconds=1))
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO ingest_reading (sensor_id, ts, value)"
            " SELECT %s, %s + n * %s, %s + (n * 37 %% 101) / 7.0 FROM generate_series(0, %s - 1) AS n",
            [sensor_id, start, step, base, count],
        )


def raw_buckets(sensor_ids: list[int], *, interval: str, tz: str, start: datetime, end: datetime) -> dict:
    """The straightforward computation: {(sensor_id, bucket): (min, max, avg, sum, count)} over raw readings."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT sensor_id, date_trunc(%s, ts, %s), min(value), max(value), avg(value), sum(value), count(*)"
            " FROM ingest_reading WHERE sensor_id = ANY(%s) AND ts >= %s AND ts < %s GROUP BY 1, 2",
            [interval, tz, sensor_ids, start, end],
        )
        return {(row[0], row[1]): tuple(row[2:]) for row in cursor.fetchall()}


def rollup_rows(table: str) -> dict:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT sensor_id, bucket, min, max, avg, sum, count, first_ts, last_ts FROM {table}")
        return {(row[0], row[1]): tuple(row[2:]) for row in cursor.fetchall()}


def raw_rollups(unit: str) -> dict:
    """What the rollup table of `unit` (hour or day) must hold: every sensor's UTC buckets over all readings."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT sensor_id, date_trunc(%s, ts, 'UTC'), min(value), max(value), avg(value), sum(value), count(*),"
            " min(ts), max(ts) FROM ingest_reading GROUP BY 1, 2",
            [unit],
        )
        return {(row[0], row[1]): tuple(row[2:]) for row in cursor.fetchall()}


def assert_same_rows(actual: dict, expected: dict) -> None:
    """Equal keys, and equal values up to float summation order."""
    assert actual.keys() == expected.keys(), (
        sorted(set(actual) - set(expected))[:5],
        sorted(set(expected) - set(actual))[:5],
    )
    for key, values in expected.items():
        for got, want in zip(actual[key], values, strict=True):
            if isinstance(want, float):
                assert abs(got - want) <= 1e-9 * max(1.0, abs(want)), (key, actual[key], values)
            else:
                assert got == want, (key, actual[key], values)
