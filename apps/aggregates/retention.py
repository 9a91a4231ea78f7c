"""Retention: raw readings older than READINGS_RETENTION_DAYS and rollups older than ROLLUPS_RETENTION_DAYS
go, daily by the beat (`aggregates.purge_retention`) or at once with `manage.py apply_retention`.

Readings are kept in whole UTC days. On plain PostgreSQL the partitions entirely older than the cutoff are
dropped whole, which costs the same whatever they hold, and rows are deleted (in windows) only inside a
partition that straddles the cutoff: none in the steady state, where partitions are UTC days; the first
partition of a migrated table, until the cutoff passes its end. On TimescaleDB, drop_chunks. Either way no
reading goes that the rollups have not taken in yet (`readings_cutoff`). Rollups are deleted in windows of a
day of hourly and a month of daily rows: a day of hourly rollups is a twenty-fourth of a day of readings per
sensor (measured in docs/performance.md, Storage).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import OperationalError, connection, transaction
from django.utils import timezone

from apps.aggregates import timescale
from apps.aggregates.buckets import DAY, floor_to
from apps.aggregates.models import RollupState
from apps.core.locks import session_advisory_lock
from apps.ingest.partitions import (
    Partition,
    partition_oldest,
    partitions_drop,
    partitions_finish_detaching,
    partitions_list,
)
from apps.ingest.timescale import is_hypertable

logger = logging.getLogger(__name__)

# pg_advisory_lock key: one purge at a time across all workers.
PURGE_LOCK = 5_240_002

# The oldest reading of a done batch the refresh has not rolled up yet (the same test as its pick).
_OLDEST_PENDING = """
SELECT min(b.stored_ts_min)
  FROM ingest_ingestbatch b
 WHERE b.status = 'done' AND b.stored > 0 AND b.finished_at >= %s
   AND NOT EXISTS (SELECT 1 FROM aggregates_rolledupbatch r WHERE r.batch_id = b.id)
"""


@dataclass
class RetentionPlan:
    """What a purge run at `now` removes."""

    readings_limit: datetime  # READINGS_RETENTION_DAYS ago, at the start of that UTC day
    readings_before: datetime  # the limit, or earlier where the rollups still need readings
    held_back: str  # why readings_before is earlier than the limit ("" when it is not)
    rollups_before: datetime
    hypertable: bool = False
    drop: list[Partition] = field(default_factory=list)  # entirely before readings_before
    trim: list[Partition] = field(default_factory=list)  # straddling readings_before


@dataclass
class PurgeOutcome:
    skipped: bool = False
    readings: int = 0  # deleted, plus the estimated rows of the partitions dropped
    readings_deleted: int = 0
    partitions_dropped: list[str] = field(default_factory=list)
    hour_rollups: int = 0
    day_rollups: int = 0
    chunks_dropped: int = 0
    more: bool = False
    readings_before: datetime | None = None
    rollups_before: datetime | None = None
    held_back: str = ""

    def as_dict(self) -> dict:
        return {
            key: value.isoformat() if isinstance(value, datetime) else value for key, value in self.__dict__.items()
        }


def readings_cutoff(now: datetime) -> tuple[datetime, datetime, str]:
    """(limit, cutoff, why): readings before `cutoff` may go. The limit is READINGS_RETENTION_DAYS ago at the
    start of that UTC day; the cutoff stays earlier while the rollup tables have not taken in readings before
    it, as the batch purge does (workers/tasks/ingest.py):

    - before the first refresh, and until its backfill is done, readings newer than the rollup retention are
      kept (older ones will never be rolled up);
    - a done batch the refresh has not taken yet keeps the day of its oldest reading.

    TimescaleDB's continuous aggregates re-materialise from the raw readings within their refresh window,
    which ends where raw retention does, so no cutoff is held back there."""
    limit = floor_to(now - timedelta(days=settings.READINGS_RETENTION_DAYS), DAY)
    if timescale.continuous_aggregates_exist(connection):
        return limit, limit, ""
    never_rolled_up = floor_to(now - timedelta(days=settings.ROLLUPS_RETENTION_DAYS), DAY)
    state = RollupState.objects.filter(pk=RollupState.SINGLETON).first()
    if state is None or state.watermark is None:
        return limit, min(limit, never_rolled_up), "the rollups have not run yet"
    needed_from, why = limit, ""
    if not state.backfilled and (state.covered_from is None or state.covered_from > never_rolled_up):
        # The backfill goes back from the newest reading: what it has not reached lies below covered_from.
        needed_from, why = min(limit, never_rolled_up), "the rollup backfill has not finished"
    with connection.cursor() as cursor:
        cursor.execute(_OLDEST_PENDING, [state.watermark])
        oldest_pending = cursor.fetchone()[0]
    if oldest_pending is not None and oldest_pending < needed_from:
        needed_from, why = oldest_pending, "a stored batch has not been rolled up yet"
    cutoff = floor_to(needed_from, DAY)
    return limit, cutoff, why if cutoff < limit else ""


def retention_plan(*, now: datetime | None = None) -> RetentionPlan:
    now = now or timezone.now()
    limit, cutoff, why = readings_cutoff(now)
    plan = RetentionPlan(
        readings_limit=limit,
        readings_before=cutoff,
        held_back=why,
        rollups_before=floor_to(now - timedelta(days=settings.ROLLUPS_RETENTION_DAYS), DAY),
        hypertable=is_hypertable(connection),
    )
    if not plan.hypertable:
        for partition in partitions_list():
            if partition.end is not None and partition.end <= cutoff:
                plan.drop.append(partition)
            elif partition.start is None or partition.start < cutoff:
                plan.trim.append(partition)
    return plan


def retention_purge(*, now: datetime | None = None, budget_s: float | None = None) -> PurgeOutcome:
    """Remove readings and rollups past their retention; safe to run any number of times, also concurrently
    (one run works, the others return at once with `skipped`).

    1. Take the purge advisory lock, or skip.
    2. Finish drops an earlier run left half done (a detach that timed out, a process that died).
    3. Plan: the readings cutoff (held back for the rollups, see readings_cutoff), the partitions entirely
       before it and the one straddling it.
    4. Drop those partitions whole; delete the straddling partition's rows before the cutoff in windows of
       RETENTION_PURGE_CHUNK_MINUTES, one transaction each (on TimescaleDB: drop_chunks).
    5. Delete rollups older than ROLLUPS_RETENTION_DAYS in windows.
    `more` says the budget ran out or a partition could not be detached yet: the caller runs again."""
    started = time.monotonic()
    now = now or timezone.now()
    budget_s = settings.RETENTION_PURGE_BUDGET_S if budget_s is None else budget_s
    deadline = started + budget_s
    outcome = PurgeOutcome()
    with session_advisory_lock(PURGE_LOCK) as acquired:
        if not acquired:
            outcome.skipped = True
            return outcome
        plan = retention_plan(now=now)
        outcome.readings_before, outcome.rollups_before = plan.readings_before, plan.rollups_before
        outcome.held_back = plan.held_back
        if plan.hypertable:
            _drop_chunks(outcome)  # the readings' chunks and the continuous aggregates'
        else:
            _purge_partitions(plan, outcome, deadline)
            _purge_rollups(plan, outcome, deadline)
        _record(outcome, now)
    if plan.held_back:
        logger.warning(
            "retention purge keeps readings from %s (limit %s): %s",
            plan.readings_before.isoformat(), plan.readings_limit.isoformat(), plan.held_back,
        )  # fmt: skip
    logger.info("retention purge: %s", outcome.as_dict())
    return outcome


def _purge_partitions(plan: RetentionPlan, outcome: PurgeOutcome, deadline: float) -> None:
    try:
        outcome.partitions_dropped += partitions_finish_detaching()
    except OperationalError as exc:
        # The queries still reading a half-detached partition held it longer than the detach may wait.
        logger.warning("retention purge could not finish detaching a readings partition yet: %s", exc)
        outcome.more = True
        return
    dropped = partitions_drop([partition.name for partition in plan.drop])
    outcome.partitions_dropped += dropped.dropped
    outcome.readings += dropped.readings
    if dropped.blocked:
        outcome.more = True  # the next run finishes the detach that waited too long
        return
    for partition in plan.trim:
        deleted, more = _delete_in_windows(
            partition.name,
            "ts",
            oldest=partition.start or partition_oldest(partition.name),
            before=plan.readings_before,
            step=timedelta(minutes=settings.RETENTION_PURGE_CHUNK_MINUTES),
            deadline=deadline,
        )
        outcome.readings_deleted += deleted
        outcome.readings += deleted
        outcome.more = outcome.more or more


def _purge_rollups(plan: RetentionPlan, outcome: PurgeOutcome, deadline: float) -> None:
    outcome.hour_rollups, more_hours = _delete_in_windows(
        "aggregates_rolluphour",
        "bucket",
        oldest=_oldest("aggregates_rolluphour"),
        before=plan.rollups_before,
        step=DAY,
        deadline=deadline,
    )
    outcome.day_rollups, more_days = _delete_in_windows(
        "aggregates_rollupday",
        "bucket",
        oldest=_oldest("aggregates_rollupday"),
        before=plan.rollups_before,
        step=timedelta(days=31),
        deadline=deadline,
    )
    outcome.more = outcome.more or more_hours or more_days


def _record(outcome: PurgeOutcome, now: datetime) -> None:
    counts = {
        "last_purge_at": now,
        "last_purge_readings": outcome.readings,
        "last_purge_rollups": outcome.hour_rollups + outcome.day_rollups,
    }
    RollupState.objects.update_or_create(
        pk=RollupState.SINGLETON,
        defaults=counts,
        create_defaults={"watermark": now - timedelta(seconds=settings.AGGREGATES_REFRESH_SETTLE_S), **counts},
    )


def _oldest(table: str) -> datetime | None:
    # Small tables next to readings, and a BRIN index orders nothing: min() is a plain scan, done once a day.
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT min(bucket) FROM {table}")
        return cursor.fetchone()[0]


def _delete_in_windows(
    table: str, column: str, *, oldest: datetime | None, before: datetime, step: timedelta, deadline: float
) -> tuple[int, bool]:
    """Delete rows with `column` < `before`, one window of `step` per transaction from `oldest` up; each
    window is a BRIN range scan. Returns (rows deleted, whether the deadline stopped it short)."""
    deleted = 0
    if oldest is None or oldest >= before:
        return 0, False
    low = oldest
    while low < before:
        if time.monotonic() > deadline:
            return deleted, True
        high = min(low + step, before)
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(f"DELETE FROM {table} WHERE {column} >= %s AND {column} < %s", [low, high])
            deleted += cursor.rowcount
        low = high
    return deleted, False


def _drop_chunks(outcome: PurgeOutcome) -> None:
    for what, statement in timescale.drop_chunks_statements(
        readings_retention_days=settings.READINGS_RETENTION_DAYS,
        rollups_retention_days=settings.ROLLUPS_RETENTION_DAYS,
    ):
        with connection.cursor() as cursor:
            cursor.execute(statement)
            dropped = len(cursor.fetchall())
        outcome.chunks_dropped += dropped
        logger.info("retention purge: dropped %s chunks of %s", dropped, what)
