"""Reads of aggregates: rollups where they are complete, raw readings for everything else, in one statement.

How a query over [start, end) is answered (buckets.plan_segments decides the split):
1. Whole UTC days inside the range come from daily rollups, whole UTC hours from hourly rollups, when the
   interval and time zone make every query bucket a union of such hours or days and the rollups are complete
   there (from `covered_from` on; see RollupState).
2. Hours touched by ingest batches that the refresh has not rolled up yet ("pending") are read raw instead
   of their rollup rows, and a day with a pending hour falls back to its hours. So a reading is visible in
   aggregates as soon as its batch is stored.
3. The partial hours at both ends of the range, and anything rollups cannot answer, are read raw.
Every part yields (min, max, sum, count) per sensor and query bucket; the outer query combines them, so
the answer equals the same aggregate computed over the raw readings alone.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db import connection
from django.utils import timezone

from apps.aggregates import timescale
from apps.aggregates.buckets import DAY, Segments, floor_to, plan_segments
from apps.aggregates.models import RollupState

FUNCTIONS = ("min", "max", "avg", "sum", "count")
GROUP_BY = ("sensor", "location", "all")

HOUR_TABLE = "aggregates_rolluphour"
DAY_TABLE = "aggregates_rollupday"


@dataclass(frozen=True)
class AggregateQuery:
    sensor_ids: tuple[int, ...]
    interval: str
    tz: str
    start: datetime
    end: datetime
    functions: tuple[str, ...] = FUNCTIONS
    group_by: str = "sensor"


@dataclass(frozen=True)
class RollupSource:
    """Where rollups are read from and from when on they are complete."""

    hour_relation: str
    day_relation: str
    covered_from: datetime | None
    watermark: datetime | None
    tracks_batches: bool


def rollup_source(*, now: datetime | None = None) -> RollupSource:
    """The rollup tables (or TimescaleDB's continuous aggregates) and how far they can be trusted, in one
    query. Read before the aggregate statement: a refresh committing in between only moves the watermark
    and `covered_from` in the direction that makes fewer rollup rows count as complete, never more."""
    now = now or timezone.now()
    # Rollups older than their retention may already be purged; a whole day of margin keeps the edge safe.
    retained_from = floor_to(now - timedelta(days=settings.ROLLUPS_RETENTION_DAYS), DAY) + DAY
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT to_regclass(%s) IS NOT NULL, s.watermark, s.covered_from, s.backfilled"
            " FROM (SELECT 1) AS one LEFT JOIN aggregates_rollupstate s ON s.id = %s",
            [timescale.HOUR_VIEW, RollupState.SINGLETON],
        )
        continuous, watermark, covered_from, backfilled = cursor.fetchone()
    if continuous:
        return RollupSource(timescale.HOUR_VIEW, timescale.DAY_VIEW, retained_from, None, tracks_batches=False)
    if backfilled:
        covered_from = retained_from
    elif covered_from is not None:
        covered_from = max(covered_from, retained_from)
    return RollupSource(HOUR_TABLE, DAY_TABLE, covered_from, watermark, tracks_batches=True)


_PENDING_HOURS = """
    SELECT DISTINCT s.sensor_id, h.bucket
      FROM ingest_ingestbatch b
     CROSS JOIN LATERAL unnest(b.stored_sensor_ids) AS s(sensor_id)
     CROSS JOIN LATERAL generate_series(
               date_trunc('hour', greatest(b.stored_ts_min, %(hour_lo)s), 'UTC'),
               least(b.stored_ts_max, %(hour_hi)s - interval '1 microsecond'),
               interval '1 hour') AS h(bucket)
     WHERE b.status = 'done' AND b.stored > 0 AND b.finished_at >= %(watermark)s
       AND b.stored_ts_max >= %(hour_lo)s AND b.stored_ts_min < %(hour_hi)s
       AND b.stored_sensor_ids && %(sensor_ids)s::bigint[]
       AND s.sensor_id = ANY(%(sensor_ids)s)
       AND NOT EXISTS (SELECT 1 FROM aggregates_rolledupbatch r WHERE r.batch_id = b.id)
"""
_NO_PENDING_HOURS = "SELECT NULL::bigint AS sensor_id, NULL::timestamptz AS bucket WHERE false"

# {hour}, {day}: rollup relations; {bucket_h}, {bucket_d}, {bucket_r}: the query bucket of a part's rows.
_AGGREGATE_SQL = """
WITH pending AS MATERIALIZED ({pending}),
pending_days AS MATERIALIZED (SELECT DISTINCT sensor_id, date_trunc('day', bucket, 'UTC') AS day FROM pending),
parts (sensor_id, bucket, min, max, sum, count) AS (
    SELECT d.sensor_id, {bucket_d}, d.min, d.max, d.sum, d.count
      FROM {day} d
     WHERE d.sensor_id = ANY(%(sensor_ids)s) AND d.bucket >= %(day_lo)s AND d.bucket < %(day_hi)s
       AND NOT EXISTS (SELECT 1 FROM pending_days p WHERE p.sensor_id = d.sensor_id AND p.day = d.bucket)
    UNION ALL
    SELECT h.sensor_id, {bucket_h}, h.min, h.max, h.sum, h.count
      FROM pending_days p
      JOIN {hour} h ON h.sensor_id = p.sensor_id AND h.bucket >= p.day AND h.bucket < p.day + interval '24 hours'
     WHERE p.day >= %(day_lo)s AND p.day < %(day_hi)s
       AND NOT EXISTS (SELECT 1 FROM pending q WHERE q.sensor_id = h.sensor_id AND q.bucket = h.bucket)
    UNION ALL
    SELECT h.sensor_id, {bucket_h}, h.min, h.max, h.sum, h.count
      FROM {hour} h
     WHERE h.sensor_id = ANY(%(sensor_ids)s) AND h.bucket >= %(hour_lo)s AND h.bucket < %(day_lo)s
       AND NOT EXISTS (SELECT 1 FROM pending q WHERE q.sensor_id = h.sensor_id AND q.bucket = h.bucket)
    UNION ALL
    SELECT h.sensor_id, {bucket_h}, h.min, h.max, h.sum, h.count
      FROM {hour} h
     WHERE h.sensor_id = ANY(%(sensor_ids)s) AND h.bucket >= %(day_hi)s AND h.bucket < %(hour_hi)s
       AND NOT EXISTS (SELECT 1 FROM pending q WHERE q.sensor_id = h.sensor_id AND q.bucket = h.bucket)
    UNION ALL
    SELECT r.sensor_id, {bucket_r}, r.value, r.value, r.value, 1
      FROM ingest_reading r
     WHERE r.sensor_id = ANY(%(sensor_ids)s) AND r.ts >= %(start)s AND r.ts < %(hour_lo)s
    UNION ALL
    SELECT r.sensor_id, {bucket_r}, r.value, r.value, r.value, 1
      FROM ingest_reading r
     WHERE r.sensor_id = ANY(%(sensor_ids)s) AND r.ts >= %(hour_hi)s AND r.ts < %(end)s
    UNION ALL
    SELECT r.sensor_id, {bucket_r}, r.value, r.value, r.value, 1
      FROM pending p
      JOIN ingest_reading r ON r.sensor_id = p.sensor_id AND r.ts >= p.bucket AND r.ts < p.bucket + interval '1 hour'
)
SELECT {series} AS series, parts.bucket, min(parts.min), max(parts.max), sum(parts.sum), sum(parts.count)::bigint
  FROM parts {join}
 GROUP BY 1, 2
 ORDER BY 1, 2
"""

_SERIES = {
    "sensor": ("parts.sensor_id", ""),
    "location": ("s.location_id", "JOIN devices_sensor s ON s.id = parts.sensor_id"),
    "all": ("0", ""),
}


def _bucket(column: str) -> str:
    return f"date_trunc(%(interval)s, {column}, %(tz)s)"


def aggregate_statement(query: AggregateQuery, *, raw_only: bool = False) -> tuple[str, dict]:
    """The SQL and parameters that compute `query`; `raw_only` ignores rollups (the plain computation)."""
    source = rollup_source()
    segments: Segments = plan_segments(
        interval=query.interval,
        tz=query.tz,
        start=query.start,
        end=query.end,
        covered_from=None if raw_only else source.covered_from,
    )
    series, join = _SERIES[query.group_by]
    sql = _AGGREGATE_SQL.format(
        # Pending hours matter only where rollups answer; without them the batch scan is skipped altogether.
        pending=_PENDING_HOURS if source.tracks_batches and segments.hour_lo < segments.hour_hi else _NO_PENDING_HOURS,
        hour=source.hour_relation,
        day=source.day_relation,
        bucket_h=_bucket("h.bucket"),
        bucket_d=_bucket("d.bucket"),
        bucket_r=_bucket("r.ts"),
        series=series,
        join=join,
    )
    params = {
        "sensor_ids": list(query.sensor_ids),
        "interval": query.interval,
        "tz": query.tz,
        "start": query.start,
        "end": query.end,
        "hour_lo": segments.hour_lo,
        "hour_hi": segments.hour_hi,
        "day_lo": segments.day_lo,
        "day_hi": segments.day_hi,
        "watermark": source.watermark or datetime(1970, 1, 1, tzinfo=UTC),
    }
    return sql, params


AggregateRow = tuple[int | None, datetime, float, float, float, int]


def aggregate_rows(query: AggregateQuery, *, raw_only: bool = False) -> list[AggregateRow]:
    """(series key, bucket start, min, max, sum, count) ordered by series and bucket."""
    if not query.sensor_ids:
        return []
    sql, params = aggregate_statement(query, raw_only=raw_only)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def iter_aggregate_rows(query: AggregateQuery, *, chunk_size: int = 5000) -> Iterator[AggregateRow]:
    """Like aggregate_rows, through a server-side cursor, for exports of any size."""
    if not query.sensor_ids:
        return
    sql, params = aggregate_statement(query)
    with connection.chunked_cursor() as cursor:
        cursor.execute(sql, params)
        while rows := cursor.fetchmany(chunk_size):
            yield from rows


@dataclass
class Series:
    key: int | None
    buckets: list[dict] = field(default_factory=list)


def bucket_values(row: AggregateRow, functions: tuple[str, ...]) -> dict:
    _, _, low, high, total, count = row
    values = {"min": low, "max": high, "avg": total / count if count else None, "sum": total, "count": count}
    return {name: values[name] for name in functions}


def aggregate_series(query: AggregateQuery, *, render_bucket) -> list[Series]:
    """The rows of `query` grouped into series, each bucket as {"bucket": render_bucket(start), <functions>}."""
    series: list[Series] = []
    rendered: dict[datetime, str] = {}
    current: Series | None = None
    for row in aggregate_rows(query):
        key, bucket = row[0], row[1]
        if current is None or current.key != key:
            current = Series(key=key)
            series.append(current)
        label = rendered.get(bucket)
        if label is None:
            label = rendered[bucket] = render_bucket(bucket)
        current.buckets.append({"bucket": label, **bucket_values(row, query.functions)})
    return series
