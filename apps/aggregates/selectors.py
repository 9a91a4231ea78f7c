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
the answer equals the same aggregate computed over the raw readings alone. A sum beyond float8 (readings stored
before INGEST_MAX_ABS_VALUE bounded them) comes out as ±Infinity, which the API renders as null, rather than
failing the query of every sensor in it (apps/aggregates/sums.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import psycopg
from django.conf import settings
from django.db import DataError, connection, transaction
from django.utils import timezone

from apps.aggregates import timescale
from apps.aggregates.buckets import DAY, Segments, floor_to, hour_rollups_fit, minute_offsets, plan_segments
from apps.aggregates.models import RollupState
from apps.aggregates.sums import is_overflow, sum_sql

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
rolled (sensor_id, bucket, min, max, sum, count) AS (
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
),
raw (sensor_id, ts, value) AS (
    SELECT r.sensor_id, r.ts, r.value
      FROM ingest_reading r
     WHERE r.sensor_id = ANY(%(sensor_ids)s) AND r.ts >= %(start)s AND r.ts < %(hour_lo)s
    UNION ALL
    SELECT r.sensor_id, r.ts, r.value
      FROM ingest_reading r
     WHERE r.sensor_id = ANY(%(sensor_ids)s) AND r.ts >= %(hour_hi)s AND r.ts < %(end)s
    UNION ALL
    SELECT r.sensor_id, r.ts, r.value
      FROM pending p
      JOIN ingest_reading r ON r.sensor_id = p.sensor_id AND r.ts >= p.bucket AND r.ts < p.bucket + interval '1 hour'
     -- Pending hours lie in this range; saying so lets the planner leave out the partitions outside it.
     WHERE r.ts >= %(hour_lo)s AND r.ts < %(hour_hi)s
),
parts (sensor_id, bucket, min, max, sum, count) AS (
    SELECT sensor_id, bucket, min, max, sum, count FROM rolled
    UNION ALL
    SELECT raw.sensor_id, {bucket_r}, min(raw.value), max(raw.value), {sum_raw}, count(*)
      FROM raw
     GROUP BY 1, 2
)
{combine}
"""
# Buckets leave as epoch seconds: parsing timestamps costs the client more than the whole query.
_REGROUP = """
SELECT {series} AS series, date_part('epoch', parts.bucket)::bigint AS bucket,
       min(parts.min), max(parts.max), {sum_parts}, sum(parts.count)::bigint
  FROM parts {join}
 GROUP BY 1, 2
"""
_AS_IS = """
SELECT parts.sensor_id AS series, date_part('epoch', parts.bucket)::bigint AS bucket,
       parts.min, parts.max, parts.sum, parts.count::bigint
  FROM parts
"""

_SERIES = {
    "sensor": ("parts.sensor_id", ""),
    "location": ("s.location_id", "JOIN devices_sensor s ON s.id = parts.sensor_id"),
    "all": ("0", ""),
}


def _bucket(query: AggregateQuery, column: str) -> str:
    """The query bucket of a timestamp. Minutes, and hours in zones whose offsets are whole hours, are fixed
    steps from the epoch: date_bin gives them several times cheaper per row than date_trunc in a zone."""
    if query.interval == "minute" and minute_offsets(tz=query.tz, start=query.start, end=query.end):
        return f"date_bin('1 minute', {column}, timestamptz 'epoch')"
    if query.interval == "hour" and hour_rollups_fit(interval="hour", tz=query.tz, start=query.start, end=query.end):
        return f"date_bin('1 hour', {column}, timestamptz 'epoch')"
    return f"date_trunc(%(interval)s, {column}, %(tz)s)"


def _rollup_bucket(query: AggregateQuery, column: str) -> str:
    # An hourly rollup row is its own query bucket when the buckets are hours (rollups are only read for
    # zones whose offsets are whole hours).
    return column if query.interval == "hour" else _bucket(query, column)


def _needs_regroup(query: AggregateQuery) -> bool:
    """Whether parts can share a (series, bucket). Per sensor in minutes or hours they cannot: a query bucket
    is then one hourly rollup row, or raw readings only (the raw part is grouped on its own)."""
    return not (query.interval in ("minute", "hour") and query.group_by == "sensor")


def aggregate_statement(
    query: AggregateQuery, *, raw_only: bool = False, ordered: bool = False, exact: bool = False
) -> tuple[str, dict]:
    """The SQL and parameters that compute `query`; `raw_only` ignores rollups (the plain computation), `exact`
    sums without float8 overflow (slower; for when the plain statement overflowed)."""
    source = rollup_source()
    segments: Segments = plan_segments(
        interval=query.interval,
        tz=query.tz,
        start=query.start,
        end=query.end,
        covered_from=None if raw_only else source.covered_from,
    )
    series, join = _SERIES[query.group_by]
    combine = (
        _REGROUP.format(series=series, join=join, sum_parts=sum_sql("parts.sum", exact=exact))
        if _needs_regroup(query)
        else _AS_IS
    )
    if ordered:
        combine += " ORDER BY 1, 2"
    sql = _AGGREGATE_SQL.format(
        # Pending hours matter only where rollups answer; without them the batch scan is skipped altogether.
        pending=_PENDING_HOURS if source.tracks_batches and segments.hour_lo < segments.hour_hi else _NO_PENDING_HOURS,
        hour=source.hour_relation,
        day=source.day_relation,
        bucket_h=_rollup_bucket(query, "h.bucket"),
        bucket_d=_bucket(query, "d.bucket"),
        bucket_r=_bucket(query, "raw.ts"),
        sum_raw=sum_sql("raw.value", exact=exact),
        combine=combine,
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


# (series key, bucket start in epoch seconds, min, max, sum, count).
AggregateRow = tuple[int | None, int, float, float, float, int]

# Planner settings for the aggregate statement, for its transaction only:
# - bitmap rather than plain index scans: readings arrive in time order, so one sensor's rows lie one or two
#   to a page, and a plain index scan visits each page once per sensor (twenty times slower over a month of
#   raw readings of a hundred sensors); a bitmap scan visits each page once;
# - no JIT: compiling costs more than these queries take;
# - enough memory to group a large answer without spilling to disk.
_PLANNER_SETTINGS = "SET LOCAL enable_indexscan = off; SET LOCAL jit = off; SET LOCAL work_mem = '64MB'"
# Back to the session's values, should the statement run inside a longer transaction of the caller's.
_PLANNER_RESET = "RESET enable_indexscan; RESET jit; RESET work_mem"


def aggregate_rows(query: AggregateQuery, *, raw_only: bool = False, ordered: bool = False) -> list[AggregateRow]:
    """The rows of `query`; ordered by series and bucket if asked.

    Read in binary through a psycopg cursor of its own (Django's cursors bind parameters client-side, which
    rules out binary results): a month of hourly buckets of a hundred sensors is 72,000 rows, and parsing them
    from text would cost more than computing them. A sum overflowing float8 runs the query again with exact
    sums (in a transaction of its own, so the common case pays for no savepoint)."""
    if not query.sensor_ids:
        return []
    try:
        return _fetch_rows(query, raw_only=raw_only, ordered=ordered, exact=False)
    except DataError as exc:
        if not is_overflow(exc):
            raise
    return _fetch_rows(query, raw_only=raw_only, ordered=ordered, exact=True)


def _fetch_rows(query: AggregateQuery, *, raw_only: bool, ordered: bool, exact: bool) -> list[AggregateRow]:
    sql, params = aggregate_statement(query, raw_only=raw_only, ordered=ordered, exact=exact)
    with transaction.atomic(), connection.wrap_database_errors:
        connection.ensure_connection()
        with psycopg.Cursor(connection.connection) as cursor:
            cursor.execute(_PLANNER_SETTINGS)
            cursor.execute(sql, params, binary=True)
            rows = cursor.fetchall()
            cursor.execute(_PLANNER_RESET)
            return rows


def iter_aggregate_rows(query: AggregateQuery, *, chunk_size: int = 5000) -> Iterator[AggregateRow]:
    """Like aggregate_rows, ordered, through a server-side cursor, for exports of any size. After an overflow
    the exact query resumes past the rows already given (the order is total: series, then bucket)."""
    if not query.sensor_ids:
        return
    given = 0
    try:
        for row in _stream_rows(query, chunk_size=chunk_size, exact=False):
            yield row
            given += 1
        return
    except DataError as exc:
        if not is_overflow(exc):
            raise
    for position, row in enumerate(_stream_rows(query, chunk_size=chunk_size, exact=True)):
        if position >= given:
            yield row


def _stream_rows(query: AggregateQuery, *, chunk_size: int, exact: bool) -> Iterator[AggregateRow]:
    sql, params = aggregate_statement(query, ordered=True, exact=exact)
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(_PLANNER_SETTINGS)
        with connection.chunked_cursor() as cursor:
            cursor.execute(sql, params)
            while rows := cursor.fetchmany(chunk_size):
                yield from rows
        with connection.cursor() as cursor:
            cursor.execute(_PLANNER_RESET)


def bucket_start(epoch: int) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


@dataclass
class Series:
    key: int | None
    buckets: list[dict] = field(default_factory=list)


def bucket_values(row: AggregateRow, functions: tuple[str, ...]) -> dict:
    _, _, low, high, total, count = row
    values = {"min": low, "max": high, "avg": total / count if count else None, "sum": total, "count": count}
    return {name: values[name] for name in functions}


def aggregate_series(query: AggregateQuery, *, render_bucket) -> list[Series]:
    """The rows of `query` grouped into series (in order of their key), each bucket as
    {"bucket": render_bucket(start), <functions>}, oldest first. This loop runs once per bucket of the
    answer (72,000 for a month of hours of a hundred sensors), hence its plainness."""
    rows_by_key: dict[int | None, list[AggregateRow]] = {}
    for row in aggregate_rows(query):
        rows_by_key.setdefault(row[0], []).append(row)
    rendered: dict[int, str] = {}
    every_function = query.functions == FUNCTIONS
    series = []
    for key in sorted(rows_by_key, key=lambda key: (key is None, key)):
        rows = rows_by_key[key]
        rows.sort()  # one key per list, so by bucket; the rows come nearly sorted, which makes this cheap
        buckets = []
        for row in rows:
            _, epoch, low, high, total, count = row
            label = rendered.get(epoch)
            if label is None:
                label = rendered[epoch] = render_bucket(bucket_start(epoch))
            if every_function:
                buckets.append(
                    {"bucket": label, "min": low, "max": high, "avg": total / count, "sum": total, "count": count}
                )
            else:
                buckets.append({"bucket": label, **bucket_values(row, query.functions)})
        series.append(Series(key=key, buckets=buckets))
    return series
