"""Time partitions of the readings table on plain PostgreSQL (docs/ingest.md, Storage).

`ingest_reading` is partitioned by range of `ts` (migration 0004): one partition per UTC day, each with its
own primary key (sensor_id, ts) and BRIN index on ts, inherited from the parent's. There is no default
partition: a reading whose partition is missing fails its insert, so partitions are made before rows
arrive, by the beat a few days ahead and by the store step for late data and backfills (`partitions_ensure_for`).
Retention drops them whole (`partitions_drop`), and the days that are over get their primary key rebuilt
packed (`partitions_compact`). Where the table is a TimescaleDB hypertable, it makes its own chunks and
nothing here runs.

Partitions are made with CREATE TABLE + ATTACH PARTITION rather than CREATE TABLE ... PARTITION OF: the latter
takes an ACCESS EXCLUSIVE lock on the parent until the transaction ends, which inside an ingest batch would
stop every reader and writer of readings; ATTACH takes SHARE UPDATE EXCLUSIVE, which conflicts with neither.

Days older than the retention cutoff (a history import) get one partition per run of missing days instead of
one per day: they go at the next purge, and a batch of a year of daily readings would otherwise create 365
tables (and hold a lock on each) in one transaction.
"""

from __future__ import annotations

import bisect
import logging
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from django.conf import settings
from django.db import OperationalError, connection, transaction
from django.utils import timezone

from apps.core.locks import session_advisory_lock

logger = logging.getLogger(__name__)

READINGS_TABLE = "ingest_reading"
PARTITION_PREFIX = f"{READINGS_TABLE}_p"
DAY = timedelta(days=1)
DAY_US = 86_400 * 1_000_000
EPOCH_DATE = date(1970, 1, 1)
# pg_advisory_xact_lock key: one transaction at a time creates partitions (the apps.aggregates keys are 5_240_00x).
CREATE_LOCK = 5_240_010
# How long creating a partition may wait for its locks (a retention detach, a sensor being written) before the
# batch gives up and is retried, rather than hold its own locks for long.
CREATE_LOCK_TIMEOUT = "5s"
# How long detaching one may wait for the queries that still read it (retention tries again on its next run).
DROP_LOCK_TIMEOUT = "10s"
# The names this module gives partitions (the migration's first one included), so that a table left detached
# by an interrupted drop is recognised as one.
PARTITION_NAME_PATTERN = rf"^{PARTITION_PREFIX}(_before_)?[0-9]{{8}}(_[0-9]{{8}})?$"
# pg_try_advisory_lock key: one compaction at a time (a redelivered task finds it taken and returns).
COMPACT_LOCK = 5_240_011
# A partition's primary key is rebuilt once its day is over by this much (the stragglers of the day are in).
COMPACT_AFTER = timedelta(hours=1)
# The table comment that says its primary key was rebuilt.
COMPACTED = "primary key compacted"
# Stands for an open bound (MINVALUE / MAXVALUE) in day numbers.
OPEN_LOW, OPEN_HIGH = -(10**9), 10**9

# Each partition's bounds as epoch days (None for MINVALUE / MAXVALUE), read from the catalogue: the literals
# are cast back in the same session that printed them, so no date format is assumed here.
_PARTITIONS_SQL = f"""
SELECT c.relname,
       CASE WHEN b.bound[1] = 'MINVALUE' THEN NULL
            ELSE floor(extract(epoch FROM btrim(b.bound[1], '''')::timestamptz) / 86400)::bigint END,
       CASE WHEN b.bound[2] = 'MAXVALUE' THEN NULL
            ELSE floor(extract(epoch FROM btrim(b.bound[2], '''')::timestamptz) / 86400)::bigint END
  FROM pg_inherits i
  JOIN pg_class c ON c.oid = i.inhrelid
 CROSS JOIN LATERAL regexp_match(pg_get_expr(c.relpartbound, c.oid), 'FROM \\((.+)\\) TO \\((.+)\\)') AS b(bound)
 WHERE i.inhparent = '{READINGS_TABLE}'::regclass AND NOT i.inhdetachpending
 ORDER BY 2 NULLS FIRST
"""


@dataclass(frozen=True)
class Partition:
    name: str
    start_day: int  # epoch day of the lower bound, OPEN_LOW for MINVALUE
    end_day: int  # epoch day of the upper bound (exclusive), OPEN_HIGH for MAXVALUE

    @property
    def start(self) -> datetime | None:
        return None if self.start_day == OPEN_LOW else day_start(self.start_day)

    @property
    def end(self) -> datetime | None:
        return None if self.end_day == OPEN_HIGH else day_start(self.end_day)


class Coverage:
    """The days covered by a set of non-overlapping partitions, for bisecting."""

    def __init__(self, ranges: Iterable[tuple[int, int]] = ()) -> None:
        self.ranges = sorted(ranges)
        self.starts = [start for start, _ in self.ranges]

    def covers(self, day: int) -> bool:
        index = bisect.bisect_right(self.starts, day) - 1
        return index >= 0 and day < self.ranges[index][1]

    def gaps(self, low: int, high: int) -> list[tuple[int, int]]:
        """The runs of days in [low, high) that no partition covers."""
        runs: list[tuple[int, int]] = []
        cursor = low
        for start, end in self.ranges:
            if end <= cursor:
                continue
            if start >= high:
                break
            if start > cursor:
                runs.append((cursor, start))
            cursor = max(cursor, end)
        if cursor < high:
            runs.append((cursor, high))
        return runs


# Per process: the partitions known to exist (committed), and whether the table is partitioned at all.
_known = Coverage()
_partitioned: bool | None = None


def partitions_forget() -> None:
    """Drop what this process believes about partitions: after an insert found one missing (retention dropped
    it, a migration changed the table), or in tests."""
    global _known, _partitioned
    _known, _partitioned = Coverage(), None


def day_start(day: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(days=day)


def day_of_datetime(moment: datetime) -> int:
    return (moment.astimezone(UTC).date() - EPOCH_DATE).days


def readings_partitioned() -> bool:
    """Whether the readings table is declaratively partitioned (plain PostgreSQL after migration 0004), as
    opposed to a TimescaleDB hypertable. Asked once per process."""
    global _partitioned
    if _partitioned is None:
        with connection.cursor() as cursor:
            cursor.execute("SELECT relkind FROM pg_class WHERE oid = to_regclass(%s)", [READINGS_TABLE])
            row = cursor.fetchone()
        _partitioned = row is not None and row[0] == "p"
    return _partitioned


def partitions_ensure_for(timestamps_us: Iterable[int]) -> list[str]:
    """Make sure every timestamp (epoch microseconds) has its partition before rows are inserted; returns the
    names of the partitions created. The hot path: when every day is known to this process, no query."""
    days = {ts_us // DAY_US for ts_us in timestamps_us}
    missing = [day for day in days if not _known.covers(day)]
    if not missing:
        return []
    return _ensure_days(missing)


def partitions_ensure_range(start: datetime, end: datetime) -> list[str]:
    """Make sure [start, end) is covered by partitions (bulk loads, the beat ahead)."""
    first, last = day_of_datetime(start), day_of_datetime(end - timedelta(microseconds=1))
    missing = [day for day in range(first, last + 1) if not _known.covers(day)]
    if not missing:
        return []
    return _ensure_days(missing)


def partitions_ensure_ahead(*, days: int, now: datetime | None = None) -> list[str]:
    """Today's partition and the next `days` days' (the beat), so the store step seldom has to make one."""
    today = (now or timezone.now()).astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return partitions_ensure_range(today, today + DAY * (days + 1))


def partitions_list() -> list[Partition]:
    """Every attached partition, oldest first (a partition being detached is left out)."""
    with connection.cursor() as cursor:
        cursor.execute(_PARTITIONS_SQL)
        return [
            Partition(name, OPEN_LOW if start is None else start, OPEN_HIGH if end is None else end)
            for name, start, end in cursor.fetchall()
        ]


def partition_name(start_day: int, end_day: int) -> str:
    if end_day == start_day + 1:
        return f"{PARTITION_PREFIX}{_digits(start_day)}"
    return f"{PARTITION_PREFIX}{_digits(start_day)}_{_digits(end_day)}"


def _digits(day: int) -> str:
    moment = day_start(day)  # strftime would not pad years before 1000
    return f"{moment.year:04d}{moment.month:02d}{moment.day:02d}"


def ranges_to_create(missing: Iterable[int], coverage: Coverage, *, retained_from_day: int) -> list[tuple[int, int]]:
    """[start, end) day ranges of the partitions that cover `missing`: a day each from the retention cutoff
    on; below it, the runs of uncovered days from the oldest missing day up to the cutoff."""
    missing = sorted(day for day in set(missing) if not coverage.covers(day))
    ranges = [(day, day + 1) for day in missing if day >= retained_from_day]
    old = [day for day in missing if day < retained_from_day]
    if old:
        ranges = coverage.gaps(old[0], retained_from_day) + ranges
    return ranges


def _ensure_days(days: list[int]) -> list[str]:
    """Create the partitions `days` need, under a transaction-level advisory lock: a second process that
    wanted the same ones waits, then finds them in the catalogue. What this process learns is remembered
    only once the transaction commits (a rolled-back partition does not exist)."""
    if not readings_partitioned():
        return []
    created: list[str] = []
    retained_from_day = day_of_datetime(timezone.now()) - settings.READINGS_RETENTION_DAYS
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [CREATE_LOCK])
        existing = [(p.start_day, p.end_day) for p in partitions_list()]
        ranges = ranges_to_create(days, Coverage(existing), retained_from_day=retained_from_day)
        if ranges:
            with _lock_timeout(cursor, CREATE_LOCK_TIMEOUT):
                for start_day, end_day in ranges:
                    created.append(_create(cursor, start_day, end_day))
        coverage = Coverage(existing + ranges)
        transaction.on_commit(lambda: _remember(coverage))
    if created:
        logger.info("created readings partitions %s", ", ".join(created))
    return created


def _remember(coverage: Coverage) -> None:
    global _known
    _known = coverage


def _create(cursor, start_day: int, end_day: int) -> str:
    name = partition_name(start_day, end_day)
    # Bounds are computed here from day numbers, never taken from input.
    low, high = day_start(start_day).isoformat(), day_start(end_day).isoformat()
    cursor.execute(f"CREATE TABLE {name} (LIKE {READINGS_TABLE})")
    # The primary key, the BRIN index and the foreign key to sensors are added from the parent's definitions;
    # the new table is empty, so checking its rows against the bounds and the key costs nothing.
    cursor.execute(f"ALTER TABLE {READINGS_TABLE} ATTACH PARTITION {name} FOR VALUES FROM ('{low}') TO ('{high}')")
    return name


def partitions_compact(*, now: datetime | None = None) -> list[str]:
    """Rebuild the primary key of every day partition that is over (by COMPACT_AFTER) and still within raw
    retention, newest first, once each; returns their names.

    Readings arrive in time order with sensors interleaved, so each new entry of the key goes to the end of
    its sensor's run in the middle of a leaf page: the page splits in two halves and the key settles at about
    70 % full (38 bytes per reading instead of 28, measured in docs/performance.md). Rebuilt with fillfactor
    100 once no more readings are expected, it is packed full. Outside a transaction the rebuild is
    CONCURRENTLY (inserts and queries go on); an index such a rebuild left invalid when interrupted is
    dropped first. The partition's table comment records that it is done."""
    now = now or timezone.now()
    if not readings_partitioned():
        return []
    retained_from = day_start(day_of_datetime(now) - settings.READINGS_RETENTION_DAYS)
    concurrently = "" if connection.in_atomic_block else " CONCURRENTLY"
    compacted: list[str] = []
    with session_advisory_lock(COMPACT_LOCK) as acquired:
        if not acquired:
            return []
        with connection.cursor() as cursor:
            cursor.execute(_INVALID_KEYS_SQL, [READINGS_TABLE])
            for (index,) in cursor.fetchall():
                cursor.execute(f"DROP INDEX{concurrently} {index}")
            cursor.execute(_KEYS_SQL, [READINGS_TABLE])
            comments = {name: (index, comment) for name, index, comment in cursor.fetchall()}
            due = [
                p
                for p in partitions_list()
                if p.start is not None
                and p.end is not None
                and retained_from <= p.start
                and p.end <= now - COMPACT_AFTER
                and not (comments.get(p.name, (None, ""))[1] or "").startswith(COMPACTED)
            ]
            for partition in sorted(due, key=lambda p: p.start, reverse=True):
                index = comments[partition.name][0]
                cursor.execute(f"REINDEX INDEX{concurrently} {index}")
                cursor.execute(f"COMMENT ON TABLE {partition.name} IS %s", [f"{COMPACTED} {now.isoformat()}"])
                compacted.append(partition.name)
    if compacted:
        logger.info("compacted the primary keys of readings partitions %s", ", ".join(compacted))
    return compacted


# Each partition's primary key index and table comment.
_KEYS_SQL = """
SELECT c.relname, i.indexrelid::regclass::text, obj_description(c.oid, 'pg_class')
  FROM pg_inherits h
  JOIN pg_class c ON c.oid = h.inhrelid
  JOIN pg_index i ON i.indrelid = c.oid AND i.indisprimary AND i.indisvalid
 WHERE h.inhparent = %s::regclass
"""
# Indexes an interrupted REINDEX CONCURRENTLY left behind invalid on a partition.
_INVALID_KEYS_SQL = """
SELECT i.indexrelid::regclass::text
  FROM pg_inherits h
  JOIN pg_index i ON i.indrelid = h.inhrelid AND NOT i.indisvalid
 WHERE h.inhparent = %s::regclass
"""


def partition_oldest(name: str) -> datetime | None:
    """The oldest reading in one partition, by one primary-key probe per sensor rather than a scan."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT min(first.ts) FROM devices_sensor s CROSS JOIN LATERAL"
            f" (SELECT ts FROM {name} r WHERE r.sensor_id = s.id ORDER BY ts LIMIT 1) first"
        )
        return cursor.fetchone()[0]


@dataclass
class DropOutcome:
    dropped: list[str]
    readings: int  # as PostgreSQL estimates them
    blocked: bool  # a detach waited too long; that partition and the rest are left for the next run


def partitions_drop(names: list[str]) -> DropOutcome:
    """Detach partitions and drop them, in one statement at the end: dropping a large table costs a commit
    that releases its files (about 50 ms here for a day of 1.44 million readings), and one commit for all of
    them costs little more than for one. Returns what went, with the readings each held as PostgreSQL
    estimates them (pg_class.reltuples, kept by autovacuum and ANALYZE; a partition never analysed is
    counted), so dropping costs the same whatever the partitions hold.

    Outside a transaction each detach is CONCURRENTLY: it never blocks ingest or queries, only waits (up to
    DROP_LOCK_TIMEOUT) for the queries already reading that partition; one that times out stays "detach
    pending" (invisible to new queries), is finished by `partitions_finish_detaching`, and stops the run.
    Inside a transaction (CONCURRENTLY cannot run there) each is a plain detach, which locks the table until
    commit, and a timeout raises."""
    outcome = DropOutcome(dropped=[], readings=0, blocked=False)
    if not names:
        return outcome
    estimates = _estimated_rows(names)
    in_transaction = connection.in_atomic_block
    with connection.cursor() as cursor, _lock_timeout(cursor, DROP_LOCK_TIMEOUT, local=in_transaction):
        for name in names:
            try:
                cursor.execute(
                    f"ALTER TABLE {READINGS_TABLE} DETACH PARTITION {name}{'' if in_transaction else ' CONCURRENTLY'}"
                )
            except OperationalError:
                if in_transaction:
                    raise
                logger.warning("readings partition %s could not be detached yet; the next purge finishes it", name)
                outcome.blocked = True
                break
            outcome.dropped.append(name)
            outcome.readings += estimates[name]
        if outcome.dropped:
            cursor.execute(f"DROP TABLE {', '.join(outcome.dropped)}")
    if outcome.dropped:
        partitions_forget()
        logger.info("dropped readings partitions %s (about %d readings)", ", ".join(outcome.dropped), outcome.readings)
    return outcome


def partitions_finish_detaching() -> list[str]:
    """Finish what an interrupted drop left: partitions still "detach pending" are detached and dropped, and
    partition tables already detached but not dropped are dropped. Returns their names."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
            " WHERE i.inhparent = %s::regclass AND i.inhdetachpending",
            [READINGS_TABLE],
        )
        pending = [name for (name,) in cursor.fetchall()]
        cursor.execute(
            "SELECT relname FROM pg_class WHERE relkind = 'r' AND NOT relispartition AND relname ~ %s"
            " AND relnamespace = current_schema()::regnamespace",
            [PARTITION_NAME_PATTERN],
        )
        orphans = [name for (name,) in cursor.fetchall()]
        with _lock_timeout(cursor, DROP_LOCK_TIMEOUT, local=connection.in_atomic_block):
            for name in pending:
                cursor.execute(f"ALTER TABLE {READINGS_TABLE} DETACH PARTITION {name} FINALIZE")
            if pending or orphans:
                cursor.execute(f"DROP TABLE {', '.join(pending + orphans)}")
    if pending or orphans:
        logger.info("finished dropping readings partitions %s", ", ".join(pending + orphans))
    return pending + orphans


def _estimated_rows(names: list[str]) -> dict[str, int]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT relname, reltuples FROM pg_class WHERE oid = ANY(%s::regclass[])", [names])
        estimates = dict(cursor.fetchall())
        for name, estimate in estimates.items():
            if estimate < 0:
                cursor.execute(f"SELECT count(*) FROM {name}")
                estimates[name] = cursor.fetchone()[0]
    return {name: int(estimate) for name, estimate in estimates.items()}


@contextmanager
def _lock_timeout(cursor, timeout: str, *, local: bool = True) -> Iterator[None]:
    """lock_timeout for the statements inside, then back to what it was (for the transaction, or for the
    session when not in one)."""
    cursor.execute("SELECT current_setting('lock_timeout')")
    previous = cursor.fetchone()[0]
    cursor.execute("SELECT set_config('lock_timeout', %s, %s)", [timeout, local])
    try:
        yield
    except Exception:
        # A failed statement aborts the transaction, whose rollback undoes a local setting anyway.
        if not local:
            cursor.execute("SELECT set_config('lock_timeout', %s, false)", [previous])
        raise
    cursor.execute("SELECT set_config('lock_timeout', %s, %s)", [previous, local])
