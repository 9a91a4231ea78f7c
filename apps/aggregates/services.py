"""Writes of the aggregation side: the incremental rollup refresh and its backfill (retention: retention.py)."""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db import DataError, IntegrityError, connection, transaction
from django.utils import timezone

from apps.aggregates import timescale
from apps.aggregates.buckets import DAY, HOUR, ceil_to, floor_to
from apps.aggregates.models import RollupOverflow, RollupState
from apps.aggregates.sums import is_overflow, sum_sql
from apps.core.locks import session_advisory_lock
from apps.operations import metrics

logger = logging.getLogger(__name__)

# pg_advisory_lock key: one refresh at a time across all workers (the purge's is in retention.py).
REFRESH_LOCK = 5_240_001

# The planner's estimates for ranges only known at run time are large, which turns on JIT compilation: it
# costs ten times what these statements take (130 ms against 12 for a batch of 10,000 readings). Counting and
# grouping a wide range's hours needs more than the default work_mem not to spill to disk.
_PLANNER_SETTINGS = "SET LOCAL jit = off; SET LOCAL work_mem = '64MB'"
# UTC hours are bucketed with date_bin, several times cheaper per row than date_trunc with a time zone.

# The batches the refresh takes in this run: done, stored something, finished since the watermark and not
# rolled up yet; oldest first, so a capped run leaves a clean watermark behind.
_PICK_BATCHES = """
CREATE TEMP TABLE aggregates_picked ON COMMIT DROP AS
SELECT b.id, b.finished_at, b.stored_sensor_ids, b.stored_ts_min, b.stored_ts_max
  FROM ingest_ingestbatch b
 WHERE b.status = 'done' AND b.stored > 0 AND b.finished_at >= %(watermark)s
   AND NOT EXISTS (SELECT 1 FROM aggregates_rolledupbatch r WHERE r.batch_id = b.id)
 ORDER BY b.finished_at
 LIMIT %(limit)s
"""

# Per sensor, the hours the picked batches touched, merged into disjoint ranges (gaps and islands), so
# each reading is aggregated once however many batches touched its hour. Sensors deleted since are skipped.
_TOUCHED_RANGES = """
CREATE TEMP TABLE aggregates_touched ON COMMIT DROP AS
WITH spans AS (
    SELECT DISTINCT s.sensor_id,
           date_trunc('hour', b.stored_ts_min, 'UTC') AS lo,
           date_trunc('hour', b.stored_ts_max, 'UTC') + interval '1 hour' AS hi
      FROM aggregates_picked b
     CROSS JOIN LATERAL unnest(b.stored_sensor_ids) AS s(sensor_id)
     WHERE EXISTS (SELECT 1 FROM devices_sensor d WHERE d.id = s.sensor_id)
),
marked AS (
    SELECT sensor_id, lo, hi,
           CASE WHEN lo <= max(hi) OVER (PARTITION BY sensor_id ORDER BY lo, hi
                                         ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)
                THEN 0 ELSE 1 END AS starts_island
      FROM spans
),
islands AS (
    SELECT sensor_id, lo, hi, sum(starts_island) OVER (PARTITION BY sensor_id ORDER BY lo, hi) AS island
      FROM marked
)
SELECT sensor_id, min(lo) AS lo, max(hi) AS hi FROM islands GROUP BY sensor_id, island
"""

# A wide range (a backfill, or a batch mixing fresh and late readings: a batch records one time span for all
# its sensors) would mean re-aggregating every hour in it. Readings are insert-only (stored with ON CONFLICT
# DO NOTHING, never updated), so an hour's aggregates changed exactly when its count did: counting from the
# primary key's index is cheap, and only the hours whose count differs from their rollup are re-aggregated.
# Narrow ranges (the usual case: the hour or two a live batch touched) are re-aggregated as they are.
WIDE_RANGE = timedelta(hours=6)
_DIRTY_RANGES = """
CREATE TEMP TABLE aggregates_dirty ON COMMIT DROP AS
SELECT sensor_id, lo, hi FROM aggregates_touched WHERE hi - lo <= %(wide)s
UNION ALL
SELECT counted.sensor_id, counted.bucket, counted.bucket + interval '1 hour'
  FROM (SELECT r.sensor_id, date_bin('1 hour', r.ts, timestamptz 'epoch') AS bucket, count(*) AS n
          FROM aggregates_touched g
          JOIN ingest_reading r ON r.sensor_id = g.sensor_id AND r.ts >= g.lo AND r.ts < g.hi
         WHERE g.hi - g.lo > %(wide)s
         GROUP BY 1, 2) counted
  LEFT JOIN aggregates_rolluphour h ON h.sensor_id = counted.sensor_id AND h.bucket = counted.bucket
 WHERE h.count IS DISTINCT FROM counted.n
"""

# Rows of a bucket older than the raw-reading horizon are never overwritten: their readings may be purged
# already, and re-aggregating what is left would lose the rest. Unchanged rows are not rewritten at all.
_UPSERT = """
INSERT INTO {table} AS t (sensor_id, bucket, min, max, sum, count, first_ts, last_ts)
{select}
ON CONFLICT (sensor_id, bucket) DO UPDATE
   SET min = EXCLUDED.min, max = EXCLUDED.max, sum = EXCLUDED.sum, count = EXCLUDED.count,
       first_ts = EXCLUDED.first_ts, last_ts = EXCLUDED.last_ts
 WHERE t.bucket >= %(horizon)s
   AND (t.min, t.max, t.sum, t.count, t.first_ts, t.last_ts)
       IS DISTINCT FROM (EXCLUDED.min, EXCLUDED.max, EXCLUDED.sum, EXCLUDED.count, EXCLUDED.first_ts, EXCLUDED.last_ts)
"""

# Days are re-added from their hours, which are themselves kept whole, so a day row is always safe to rewrite.
_DAYS_NEVER_FROZEN = {"horizon": datetime(1970, 1, 1, tzinfo=UTC)}

_HOURS_OF_TOUCHED = """
SELECT r.sensor_id, date_bin('1 hour', r.ts, timestamptz 'epoch'), min(r.value), max(r.value), {sum_values}, count(*),
       min(r.ts), max(r.ts)
  FROM aggregates_dirty g
  JOIN ingest_reading r ON r.sensor_id = g.sensor_id AND r.ts >= g.lo AND r.ts < g.hi
 GROUP BY 1, 2
 ORDER BY 1, 2
"""

_DAYS_OF_TOUCHED = """
SELECT h.sensor_id, t.day, min(h.min), max(h.max), {sum_sums}, sum(h.count), min(h.first_ts), max(h.last_ts)
  FROM (SELECT DISTINCT g.sensor_id, d.day
          FROM aggregates_dirty g
         CROSS JOIN LATERAL generate_series(date_trunc('day', g.lo, 'UTC'), g.hi - interval '1 microsecond',
                                            interval '24 hours') AS d(day)) t
  JOIN aggregates_rolluphour h ON h.sensor_id = t.sensor_id AND h.bucket >= t.day AND h.bucket < t.day + interval '24 hours'
 GROUP BY 1, 2
 ORDER BY 1, 2
"""

_HOURS_OF_RANGE = """
SELECT r.sensor_id, date_bin('1 hour', r.ts, timestamptz 'epoch'), min(r.value), max(r.value), {sum_values}, count(*),
       min(r.ts), max(r.ts)
  FROM ingest_reading r
 WHERE r.ts >= %(lo)s AND r.ts < %(hi)s
   AND EXISTS (SELECT 1 FROM devices_sensor d WHERE d.id = r.sensor_id)
 GROUP BY 1, 2
 ORDER BY 1, 2
"""

_DAYS_OF_RANGE = """
SELECT h.sensor_id, date_trunc('day', h.bucket, 'UTC'), min(h.min), max(h.max), {sum_sums}, sum(h.count),
       min(h.first_ts), max(h.last_ts)
  FROM aggregates_rolluphour h
 WHERE h.bucket >= %(day_lo)s AND h.bucket < %(day_hi)s
 GROUP BY 1, 2
 ORDER BY 1, 2
"""

# Oldest and newest reading over all sensors, by one primary-key probe per sensor rather than a table scan.
_READINGS_SPAN = """
SELECT min(first.ts), max(last.ts)
  FROM devices_sensor s
 CROSS JOIN LATERAL (SELECT ts FROM ingest_reading r WHERE r.sensor_id = s.id ORDER BY ts LIMIT 1) first
 CROSS JOIN LATERAL (SELECT ts FROM ingest_reading r WHERE r.sensor_id = s.id ORDER BY ts DESC LIMIT 1) last
"""


@dataclass
class RefreshOutcome:
    skipped: bool = False
    mode: str = "tables"
    batches: int = 0
    hour_rows: int = 0
    day_rows: int = 0
    backfill_chunks: int = 0
    backfilled: bool = False
    elapsed_ms: float = 0.0

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def raw_horizon(now: datetime) -> datetime:
    """Buckets from here on still have all their raw readings (the retention purge stays below it)."""
    return floor_to(now - timedelta(days=settings.READINGS_RETENTION_DAYS), DAY) + DAY


def rollups_refresh(*, now: datetime | None = None, budget_s: float | None = None) -> RefreshOutcome:
    """Bring the rollups up to date; safe to run any number of times, also concurrently (one run works, the
    others return at once with `skipped`).

    1. Take the refresh advisory lock, or skip.
    2. First run ever: start the state with a watermark of now minus the settle time and nothing covered.
    3. One transaction: pick the batches stored since the watermark and not rolled up, re-aggregate exactly
       the hours they touched from raw readings and the days of those hours from the hours, record the
       batches as rolled up, advance the watermark and forget ledger entries below it.
    4. Until the time budget is spent (at least one step unless it is zero): backfill, one chunk of hours at a time going back from the newest
       reading, the rollups of readings that predate the first run (or were never seen through a batch).
    """
    started = time.monotonic()
    budget_s = settings.AGGREGATES_REFRESH_BUDGET_S if budget_s is None else budget_s
    outcome = RefreshOutcome()
    if timescale.continuous_aggregates_exist(connection):
        outcome.mode = "timescaledb"  # refresh policies keep the continuous aggregates
        return outcome
    with session_advisory_lock(REFRESH_LOCK) as acquired:
        if not acquired:
            outcome.skipped = True
            return outcome
        now = now or timezone.now()
        state = _state(now)
        try:
            _refresh_batches(state, now, outcome)
        except IntegrityError:
            # A sensor was deleted between picking its ranges and writing its rollups; go again without it.
            _refresh_batches(state, now, outcome)
        if not state.backfilled and budget_s > 0:
            with connection.cursor() as cursor:
                cursor.execute(_READINGS_SPAN)
                oldest, newest = cursor.fetchone()
            # At least one chunk a run, so the backfill always progresses, then more while the budget lasts.
            while not state.backfilled:
                _backfill_chunk(state, now, outcome, oldest=oldest, newest=newest)
                if time.monotonic() - started >= budget_s:
                    break
        outcome.backfilled = state.backfilled
        outcome.elapsed_ms = round((time.monotonic() - started) * 1000, 1)
        RollupState.objects.filter(pk=state.pk).update(
            last_refresh_at=now,
            last_refresh_ms=outcome.elapsed_ms,
            last_refresh_batches=outcome.batches,
            last_refresh_rows=outcome.hour_rows + outcome.day_rows,
        )
    if outcome.batches or outcome.backfill_chunks:
        logger.info("rollup refresh: %s", outcome.as_dict())
    return outcome


def _state(now: datetime) -> RollupState:
    state, _ = RollupState.objects.get_or_create(
        pk=RollupState.SINGLETON,
        defaults={"watermark": now - timedelta(seconds=settings.AGGREGATES_REFRESH_SETTLE_S)},
    )
    return state


def _upsert(cursor, table: str, select: str, params: dict) -> int:
    """Write the rows of `select` into a rollup table; returns how many changed.

    A bucket whose sum exceeds float8 (readings stored before INGEST_MAX_ABS_VALUE bounded them, or days
    adding up hours near the limit) fails the statement, which would stop every refresh after it for every
    sensor. So the statement runs in a savepoint, and after an overflow again with exact sums: those that fit
    are the same, those that do not are kept as ±Infinity, with the bucket's count, min and max right, and
    reported (`_report_overflows`)."""
    try:
        with transaction.atomic():
            cursor.execute(_UPSERT.format(table=table, select=_with_sums(select, exact=False)), params)
            return cursor.rowcount
    except DataError as exc:
        if not is_overflow(exc):
            raise
    cursor.execute(
        _UPSERT.format(table=table, select=_with_sums(select, exact=True)) + " RETURNING t.sensor_id, t.bucket, t.sum",
        params,
    )
    rows = cursor.fetchall()
    _report_overflows(table, [(sensor_id, bucket) for sensor_id, bucket, total in rows if not math.isfinite(total)])
    return len(rows)


def _with_sums(select: str, *, exact: bool) -> str:
    return select.format(sum_values=sum_sql("r.value", exact=exact), sum_sums=sum_sql("h.sum", exact=exact))


def _report_overflows(table: str, buckets: list[tuple[int, datetime]]) -> None:
    """Log, count and list (admin: Rollup overflows) the buckets whose sum was kept as infinite."""
    if not buckets:
        return
    granularity = (
        RollupOverflow.Granularity.HOUR if table == "aggregates_rolluphour" else RollupOverflow.Granularity.DAY
    )
    logger.warning(
        "rollup refresh: the sum of %d %s bucket(s) exceeds float8 and is kept as infinite; first: sensor %s at %s",
        len(buckets), granularity, buckets[0][0], buckets[0][1].isoformat(),
    )  # fmt: skip
    metrics.ROLLUP_OVERFLOWS.labels(granularity).inc(len(buckets))
    now = timezone.now()
    RollupOverflow.objects.bulk_create(
        [
            RollupOverflow(sensor_id=sensor_id, granularity=granularity, bucket=bucket, detected_at=now)
            for sensor_id, bucket in buckets
        ],
        update_conflicts=True,
        unique_fields=["sensor", "granularity", "bucket"],
        update_fields=["detected_at"],
    )


def _refresh_batches(state: RollupState, now: datetime, outcome: RefreshOutcome) -> None:
    settle_before = now - timedelta(seconds=settings.AGGREGATES_REFRESH_SETTLE_S)
    limit = settings.AGGREGATES_REFRESH_MAX_BATCHES
    horizon = {"horizon": raw_horizon(now)}
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(_PLANNER_SETTINGS)
        cursor.execute(_PICK_BATCHES, {"watermark": state.watermark, "limit": limit})
        picked = cursor.rowcount
        if picked:
            cursor.execute(_TOUCHED_RANGES)
            cursor.execute(_DIRTY_RANGES, {"wide": WIDE_RANGE})
            outcome.hour_rows += _upsert(cursor, "aggregates_rolluphour", _HOURS_OF_TOUCHED, horizon)
            outcome.day_rows += _upsert(cursor, "aggregates_rollupday", _DAYS_OF_TOUCHED, _DAYS_NEVER_FROZEN)
            cursor.execute(
                "INSERT INTO aggregates_rolledupbatch (batch_id, finished_at)"
                " SELECT id, finished_at FROM aggregates_picked ON CONFLICT DO NOTHING"
            )
        # A batch may finish (take its finished_at) a moment before it commits; the watermark stays the
        # settle time behind, and behind the newest batch taken when this run could not take them all.
        watermark = settle_before
        if picked >= limit:
            cursor.execute("SELECT max(finished_at) FROM aggregates_picked")
            watermark = min(watermark, cursor.fetchone()[0])
        if watermark > state.watermark:
            state.watermark = watermark
            RollupState.objects.filter(pk=state.pk).update(watermark=watermark)
            cursor.execute("DELETE FROM aggregates_rolledupbatch WHERE finished_at < %s", [watermark])
        if picked:
            cursor.execute("DROP TABLE aggregates_picked, aggregates_touched, aggregates_dirty")
        else:
            cursor.execute("DROP TABLE aggregates_picked")
    outcome.batches += picked


def _backfill_chunk(
    state: RollupState,
    now: datetime,
    outcome: RefreshOutcome,
    *,
    oldest: datetime | None,
    newest: datetime | None,
) -> None:
    """Roll up one chunk of hours below `covered_from` (the first chunk ends above the newest reading) and
    lower `covered_from` to its start; once it passes the oldest reading kept, the rollups are complete."""
    floor = floor_to(now - timedelta(days=settings.ROLLUPS_RETENTION_DAYS), DAY)
    if oldest is not None:
        floor = max(floor, floor_to(oldest, HOUR))
    top = state.covered_from
    if top is None:
        top = ceil_to(max(newest or now, now) + HOUR, HOUR)
    if top <= floor or oldest is None:
        state.backfilled = True
        RollupState.objects.filter(pk=state.pk).update(backfilled=True)
        return
    low = max(top - timedelta(hours=settings.AGGREGATES_BACKFILL_CHUNK_HOURS), floor)
    rows = rollups_rebuild(start=low, end=top, now=now)
    outcome.hour_rows += rows[0]
    outcome.day_rows += rows[1]
    outcome.backfill_chunks += 1
    state.covered_from = low
    RollupState.objects.filter(pk=state.pk).update(covered_from=low)


def rollups_rebuild(*, start: datetime, end: datetime, now: datetime | None = None) -> tuple[int, int]:
    """Re-aggregate every sensor's hours in [start, end) from raw readings, and the days they belong to.
    For readings that reached the table without an ingest batch (the refresh follows batches). Returns the
    hourly and daily rows written."""
    now = now or timezone.now()
    start, end = floor_to(start, HOUR), ceil_to(end, HOUR)
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(_PLANNER_SETTINGS)
        horizon = raw_horizon(now)
        hours = _upsert(cursor, "aggregates_rolluphour", _HOURS_OF_RANGE, {"lo": start, "hi": end, "horizon": horizon})
        days = _upsert(
            cursor,
            "aggregates_rollupday",
            _DAYS_OF_RANGE,
            {"day_lo": floor_to(start, DAY), "day_hi": ceil_to(end, DAY), **_DAYS_NEVER_FROZEN},
        )
    return hours, days
