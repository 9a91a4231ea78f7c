"""Storage benchmark: bytes per reading, the store step's rate into a full readings table against an empty one,
and the time to purge 30 days, on a database of its own.

It builds what it measures (default `telemetry_bench_storage`, dropped, created and migrated here;
PostgreSQL must be running): 1,000 sensors reading once a minute, whose readings, interleaved in time order as
devices send them, fill day partitions until the table holds `--readings` (50 million: 35 days), bulk-loaded
with COPY straight into each partition. Then, in order:

1. the layouts of item 3 of the storage issue, each on a plain table of `--layout-rows` readings loaded the
   same way: the bytes of the heap, the key and the BRIN index per reading, and the time of a conflict-checked
   insert of 1,000 readings (the store step's statement);
2. the store step (apps/ingest/pipeline.py: batch_process, batches of 1,000, made beforehand) into the full
   table and into an empty one (a second database, `<database>_empty`), on the same readings, in turn, so both
   see the same load from the rest of the machine (median of `--repeat` runs each, after a warm-up run);
3. the bytes per reading of the full table (heap, primary key, BRIN), after VACUUM ANALYZE as autovacuum
   would leave it, as inserted and once the hourly compaction has rebuilt the keys of the days that are over;
4. the purge of the oldest 30 days (`retention_purge`, the rollups taken as up to date), the daily purge of
   the next day, and for comparison the delete of one day's rows in windows, as the purge did before
   partitions;
5. the rollup purge of one day and of 30 days of hourly rollups for the same sensors.

    .venv/bin/python bench/storage.py                                   # 50,000,000 readings
    .venv/bin/python bench/storage.py --readings 3000000 --sensors 60   # a quick run, the same 35 days
    .venv/bin/python bench/storage.py --partition-days 7                # week partitions instead of days

Its last line is one JSON object with bytes_per_reading, purge_ms, rate_full_over_empty and the rest,
including the load average, which on a shared machine moves every timing.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.harness import add_database_arguments, bench_environment, create_database  # noqa: E402

DAY = timedelta(days=1)
# Item 3's candidates: (name, columns, primary key fillfactor or None for no key, BRIN pages_per_range).
LAYOUTS = [
    ("before: int8 id, key fillfactor 90", "ts timestamptz, value float8, sensor_id bigint", 90, 32),
    ("now: int8 id, key fillfactor 100", "ts timestamptz, value float8, sensor_id bigint", 100, 32),
    ("int4 id last", "ts timestamptz, value float8, sensor_id integer", 100, 32),
    ("int4 id first", "sensor_id integer, ts timestamptz, value float8", 100, 32),
    ("BRIN pages_per_range 128", "ts timestamptz, value float8, sensor_id bigint", 100, 128),
    ("no key (not an option: what the key costs)", "ts timestamptz, value float8, sensor_id bigint", None, 32),
]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--readings", type=int, default=50_000_000, help="readings the table holds when full")
    parser.add_argument("--sensors", type=int, default=1_000)
    parser.add_argument("--interval-s", type=float, default=60.0, help="seconds between a sensor's readings")
    parser.add_argument("--purge-days", type=int, default=30)
    parser.add_argument("--batches", type=int, default=100, help="batches of 1,000 per timed run")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs into each table (the median counts)")
    parser.add_argument("--layout-rows", type=int, default=2_000_000, help="readings per layout (0: skip)")
    parser.add_argument("--partition-days", type=int, default=1, choices=[1, 7], help="days per partition")
    # Stored batches are queued for evaluation on commit; nothing consumes them here.
    add_database_arguments(parser, database="telemetry_bench_storage", redis_db=12)
    args = parser.parse_args()
    args.days = args.readings * args.interval_s / args.sensors / 86_400
    if args.days < args.purge_days + 1:
        parser.error(
            f"{args.readings:,} readings of {args.sensors} sensors every {args.interval_s} s span {args.days:.1f} days;"
            f" at least {args.purge_days + 1} are needed (fewer --sensors or more --readings)"
        )
    return args


def make_sensors(count: int) -> list[tuple[int, str]]:
    """`count` sensors, ten to a device."""
    from apps.devices.models import Sensor, SensorType
    from apps.devices.services import device_create, sensor_create

    sensor_type = SensorType.objects.create(code="voltage_dc", name="DC voltage", unit="V")
    for number in range(0, count, 10):
        device, _ = device_create(device_id=f"bench-{number // 10:04d}")
        for channel in range(min(10, count - number)):
            sensor_create(device=device, sensor_type=sensor_type, channel=f"c{channel}")
    return list(Sensor.objects.order_by("id").values_list("id", "key"))


def raw_connection():
    from django.db import connection

    connection.ensure_connection()
    return connection.connection


def copy_readings(table: str, sensor_ids: list[int], ticks, *, types=("timestamptz", "float8", "int8")) -> int:
    """COPY one row per sensor per tick, ticks in time order; returns the rows written."""
    raw = raw_connection()
    written = 0
    with raw.transaction(), raw.cursor() as cursor:
        with cursor.copy(f"COPY {table} (ts, value, sensor_id) FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types(list(types))
            for step, ts in ticks:
                value = 700.0 + (step % 800) / 10
                for sensor_id in sensor_ids:
                    copy.write_row((ts, value, sensor_id))
                written += len(sensor_ids)
    return written


def table_sizes(tables: list[str]) -> dict[str, int]:
    """Bytes of the tables' heaps (with free space and visibility maps), primary keys and BRIN indexes."""
    with raw_connection().cursor() as cursor:
        cursor.execute(
            """
            SELECT coalesce(sum(pg_table_size(c.oid)), 0),
                   (SELECT coalesce(sum(pg_relation_size(i.indexrelid)), 0) FROM pg_index i
                     WHERE i.indrelid = ANY(array_agg(c.oid)) AND i.indisprimary),
                   (SELECT coalesce(sum(pg_relation_size(i.indexrelid)), 0) FROM pg_index i
                      JOIN pg_class ic ON ic.oid = i.indexrelid JOIN pg_am am ON am.oid = ic.relam
                     WHERE i.indrelid = ANY(array_agg(c.oid)) AND am.amname = 'brin')
              FROM pg_class c WHERE c.oid = ANY(%s::regclass[])
            """,
            [tables],
        )
        heap, key, brin = cursor.fetchone()
    return {"heap": int(heap), "key": int(key), "brin": int(brin)}


def measure_layouts(args: argparse.Namespace, sensor_ids: list[int], step_s: float) -> list[dict]:
    """Item 3: every candidate layout on the same readings, loaded in time order into a plain table."""
    raw = raw_connection()
    results = []
    ticks_needed = args.layout_rows // len(sensor_ids)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    ticks = [(n, start + timedelta(seconds=n * step_s)) for n in range(ticks_needed)]
    for name, columns, fillfactor, pages_per_range in LAYOUTS:
        with raw.cursor() as cursor:
            cursor.execute("DROP TABLE IF EXISTS bench_layout")
            cursor.execute(f"CREATE TABLE bench_layout ({columns.replace(',', ' NOT NULL,')} NOT NULL)")
            if fillfactor:
                cursor.execute(
                    f"ALTER TABLE bench_layout ADD PRIMARY KEY (sensor_id, ts) WITH (fillfactor = {fillfactor})"
                )
            cursor.execute(f"CREATE INDEX ON bench_layout USING brin (ts) WITH (pages_per_range = {pages_per_range})")
        id_type = "int4" if "integer" in columns else "int8"
        began = time.perf_counter()
        rows = copy_readings("bench_layout", sensor_ids, ticks[:-100], types=("timestamptz", "float8", id_type))
        load_s = time.perf_counter() - began
        # The store step's statement on the last 100 ticks: a conflict-checked insert of 1,000 readings.
        insert_ms = []
        for _, ts in ticks[-100:]:
            with raw.transaction(), raw.cursor() as cursor:
                began = time.perf_counter()
                cursor.execute(
                    "INSERT INTO bench_layout (sensor_id, ts, value) SELECT s, %s, 1.0 FROM unnest(%s::bigint[]) s"
                    + (" ON CONFLICT DO NOTHING" if fillfactor else ""),
                    [ts, sensor_ids],
                )
                insert_ms.append((time.perf_counter() - began) * 1000)
            rows += len(sensor_ids)
        with raw.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE bench_layout")
        sizes = table_sizes(["bench_layout"])
        with raw.cursor() as cursor:
            cursor.execute("REINDEX TABLE bench_layout")  # what compaction does to a day that is over
        rebuilt = table_sizes(["bench_layout"])
        result = {
            "layout": name,
            "heap": round(sizes["heap"] / rows, 2),
            "key": round(sizes["key"] / rows, 2),
            "key_rebuilt": round(rebuilt["key"] / rows, 2),
            "brin": round(sizes["brin"] / rows, 3),
            "total": round(sum(sizes.values()) / rows, 2),
            "total_rebuilt": round(sum(rebuilt.values()) / rows, 2),
            "copy_per_s": round((rows - 100 * len(sensor_ids)) / load_s),
            "insert_1000_ms": round(statistics.median(insert_ms), 2),
        }
        results.append(result)
        print(
            f"layout {name:45}: {result['total']:6.2f} B/reading (heap {result['heap']:.2f}, key {result['key']:.2f},"
            f" BRIN {result['brin']:.3f}), key rebuilt {result['key_rebuilt']:.2f} (total"
            f" {result['total_rebuilt']:.2f}); COPY {result['copy_per_s']:,}/s; insert of 1,000"
            f" {result['insert_1000_ms']:.2f} ms"
        )
    with raw.cursor() as cursor:
        cursor.execute("DROP TABLE bench_layout")
    return results


BATCH_SIZE = 1_000


def run_ticks(args: argparse.Namespace) -> int:
    """Ticks (one reading of every sensor) in one timed run of `--batches` batches of 1,000."""
    return -(-args.batches * BATCH_SIZE // args.sensors)


def make_batches(sensors: list[tuple[int, str]], first: datetime, step_s: float, ticks: int) -> list[str]:
    """The readings of `ticks` ticks from `first` in time order, sensors interleaved, as ingest batches of
    1,000 queued the way the API queues them."""
    from django.utils import timezone

    from apps.ingest.services import batch_create, normalize_request

    readings = [
        {"sensor": key, "ts": (first + timedelta(seconds=tick * step_s)).isoformat(), "value": 750.0 + tick % 13}
        for tick in range(ticks)
        for _, key in sensors
    ]
    ids = []
    for offset in range(0, len(readings), BATCH_SIZE):
        received_at = timezone.now()
        normalized = normalize_request(readings[offset : offset + BATCH_SIZE], received_at=received_at, device_id=None)
        ids.append(str(batch_create(normalized=normalized, received_at=received_at).pk))
    return ids


def store_batches(batch_ids: list[str]) -> dict[str, float]:
    """Run the store step on each batch as the worker does; readings/s of the whole step and of its writes."""
    from apps.ingest import pipeline

    write_s = []
    original_write = pipeline._write

    def timed_write(*args):
        began = time.perf_counter()
        try:
            return original_write(*args)
        finally:
            write_s.append(time.perf_counter() - began)

    pipeline._write = timed_write
    stored = 0
    try:
        began = time.perf_counter()
        for batch_id in batch_ids:
            outcome = pipeline.batch_process(batch_id=batch_id)
            stored += outcome.stored
        elapsed = time.perf_counter() - began
    finally:
        pipeline._write = original_write
    return {"stored": stored, "step_per_s": stored / elapsed, "write_per_s": stored / sum(write_s)}


def use_database(name: str) -> None:
    """Point Django's connection at another database of the cluster; what this process cached about the
    other one (sensors, partitions) is forgotten."""
    from django.db import connection

    from apps.ingest.partitions import partitions_forget
    from apps.ingest.resolution import clear_cache

    connection.close()
    connection.settings_dict["NAME"] = name
    partitions_forget()
    clear_cache()


def interleaved_runs(args, sensors, first: datetime, step_s: float, databases: dict[str, str]) -> dict[str, list]:
    """Runs of `--batches` batches into each database in turn, on the same ticks, so that both see the same
    load from the rest of the machine: a warm-up run each, then `--repeat` timed runs each, alternating which
    goes first. Each database gets a checkpoint before, so neither pays for one a bulk load left due (every
    page first written after a checkpoint goes to the WAL whole)."""
    for name in databases.values():
        use_database(name)
        with raw_connection().cursor() as cursor:
            cursor.execute("CHECKPOINT")
    runs: dict[str, list] = {label: [] for label in databases}
    ticks = run_ticks(args)
    for run in range(args.repeat + 1):
        order = list(databases) if run % 2 == 0 else list(reversed(databases))
        for label in order:
            use_database(databases[label])
            batch_ids = make_batches(sensors, first + timedelta(seconds=run * ticks * step_s), step_s, ticks)
            result = store_batches(batch_ids)
            if result["stored"] != ticks * len(sensors):
                raise SystemExit(f"a run stored {result['stored']} of {ticks * len(sensors)} readings")
            if run:
                runs[label].append(result)
    return runs


def median_rate(runs: list[dict]) -> str:
    step = statistics.median(run["step_per_s"] for run in runs)
    write = statistics.median(run["write_per_s"] for run in runs)
    return f"{step:,.0f} readings/s (its writes alone {write:,.0f}/s), median of {len(runs)} runs"


def create_week_partitions(start: datetime, end: datetime) -> list[str]:
    """--partition-days 7: Monday-to-Monday partitions over [start, end), made here before the store step or
    the bulk load would make day partitions."""
    from django.db import connection

    from apps.ingest.partitions import day_of_datetime, partition_name

    monday = start - timedelta(days=start.weekday())
    names = []
    with connection.cursor() as cursor:
        while monday < end:
            first = day_of_datetime(monday)
            name = partition_name(first, first + 7)
            cursor.execute(f"CREATE TABLE {name} (LIKE ingest_reading)")
            cursor.execute(
                f"ALTER TABLE ingest_reading ATTACH PARTITION {name} FOR VALUES FROM (%s) TO (%s)",
                [monday, monday + timedelta(days=7)],
            )
            names.append(name)
            monday += timedelta(days=7)
    return names


def bulk_fill(sensor_ids: list[int], start: datetime, step_s: float, ticks: int) -> tuple[int, float]:
    """COPY the readings straight into their partitions, one partition after the other in time order."""
    from apps.ingest.partitions import partitions_list

    by_partition = [(p.name, p.start, p.end) for p in partitions_list()]
    began = time.perf_counter()
    rows = 0
    tick = 0
    for name, low, high in by_partition:
        chunk = []
        while tick < ticks:
            ts = start + timedelta(seconds=tick * step_s)
            if (low is not None and ts < low) or (high is not None and ts >= high):
                break
            chunk.append((tick, ts))
            tick += 1
        if chunk:
            rows += copy_readings(name, sensor_ids, chunk)
    if tick < ticks:
        raise SystemExit(f"no partition for the readings from tick {tick}")
    return rows, time.perf_counter() - began


def rollup_purges(sensor_ids: list[int], end: datetime, days: int) -> dict:
    """Hourly rollups of `days` days for the sensors, then the rollup purge of one day and of 30 more."""
    from django.conf import settings

    from apps.aggregates.retention import retention_purge

    start = end - timedelta(days=days)
    with raw_connection().cursor() as cursor:
        cursor.execute(
            "INSERT INTO aggregates_rolluphour (sensor_id, bucket, min, max, sum, count, first_ts, last_ts)"
            " SELECT s, b, 700, 780, 44000, 60, b, b + interval '59 minutes'"
            " FROM generate_series(%s::timestamptz, %s::timestamptz - interval '1 hour', interval '1 hour') b,"
            " unnest(%s::bigint[]) s ORDER BY b, s",
            [start, end, sensor_ids],
        )
    with raw_connection().cursor() as cursor:
        cursor.execute("VACUUM ANALYZE aggregates_rolluphour")
        cursor.execute("SELECT pg_total_relation_size('aggregates_rolluphour'), count(*) FROM aggregates_rolluphour")
        size, count = cursor.fetchone()
    results: dict = {"bytes_per_row": round(size / count, 1)}
    settings.READINGS_RETENTION_DAYS = 100_000  # readings are left alone here
    now = datetime.now(UTC)
    for label, cut in (("one_day", 1), ("thirty_days", 31)):
        # rollups_before = the start of the UTC day `cut` days after the rollups' first day.
        settings.ROLLUPS_RETENTION_DAYS = (now - (start + timedelta(days=cut))).days
        began = time.perf_counter()
        outcome = retention_purge(now=now)
        results[label] = {"ms": round((time.perf_counter() - began) * 1000, 1), "rows": outcome.hour_rollups}
    return results


def main() -> None:
    sys.stdout.reconfigure(line_buffering=True)
    args = parse_args()
    env = bench_environment(db_url_base=args.db_url_base, database=args.database, redis_url=args.redis_url)
    load_before = os.getloadavg()
    import redis

    redis.Redis.from_url(args.redis_url).flushdb()
    # The full table's database, and an empty one for the store step to run into in turn with it.
    empty_database = f"{args.database}_empty"
    create_database(args.db_url_base, args.database, env, fresh=True)
    create_database(
        args.db_url_base, empty_database, {**env, "DATABASE_URL": f"{args.db_url_base}/{empty_database}"}, fresh=True
    )
    import django

    django.setup()
    from django.conf import settings
    from django.db import connection

    from apps.aggregates.models import RollupState
    from apps.aggregates.retention import retention_purge
    from apps.ingest.partitions import partitions_compact, partitions_ensure_range, partitions_list

    # The same sensors with the same ids in both, so the batches are the same.
    use_database(empty_database)
    empty_sensors = make_sensors(args.sensors)
    use_database(args.database)
    sensors = make_sensors(args.sensors)
    if sensors != empty_sensors:
        raise SystemExit("the two databases' sensors differ")
    sensor_ids = [sensor_id for sensor_id, _ in sensors]
    step_s = args.interval_s
    ticks = args.readings // len(sensors)
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    # The bulk load starts at a midnight and ends where the timed batches begin, which end before now.
    span = timedelta(seconds=ticks * step_s)
    latest_end = now - timedelta(seconds=(args.repeat + 1) * run_ticks(args) * step_s) - timedelta(minutes=10)
    data_start = (latest_end - span).replace(hour=0, minute=0, second=0, microsecond=0)
    data_end = data_start + span
    print(
        f"{args.readings:,} readings of {len(sensors)} sensors, one per sensor every {step_s:.1f} s, from"
        f" {data_start:%Y-%m-%d %H:%M} to {data_end:%Y-%m-%d %H:%M} UTC; timed batches from there on"
    )

    layouts = measure_layouts(args, sensor_ids, step_s) if args.layout_rows else []

    # Partitions for everything, as the beat and the store step would have made them.
    settings.READINGS_RETENTION_DAYS = max(settings.READINGS_RETENTION_DAYS, int(args.days) + 3)
    for database, first in ((empty_database, data_end), (args.database, data_start)):
        use_database(database)
        if args.partition_days == 7:
            create_week_partitions(first, now + DAY)
        partitions_ensure_range(first, now + DAY)
    print(f"partitions: {len(partitions_list())} of {args.partition_days} day(s)")

    rows, load_s = bulk_fill(sensor_ids, data_start, step_s, ticks)
    print(f"bulk load: {rows:,} readings by COPY into their partitions in {load_s:.0f} s ({rows / load_s:,.0f}/s)")
    raw = raw_connection()  # in autocommit, as Django keeps it
    began = time.perf_counter()
    with raw.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE ingest_reading")
    print(f"VACUUM ANALYZE: {time.perf_counter() - began:.0f} s")
    names = [p.name for p in partitions_list()]
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM ingest_reading")
        counted = cursor.fetchone()[0]
    if counted != rows:
        raise SystemExit(f"the table holds {counted:,} readings, {rows:,} were loaded")
    inserted = table_sizes(names)
    print(
        f"bytes per reading as inserted: {sum(inserted.values()) / rows:.2f} (heap {inserted['heap'] / rows:.2f},"
        f" primary key {inserted['key'] / rows:.2f}, BRIN {inserted['brin'] / rows:.3f})"
    )
    # The hourly compaction has rebuilt the keys of the days that are over (all but the last one here).
    began = time.perf_counter()
    compacted = partitions_compact(now=data_end + timedelta(hours=2))
    compact_s = time.perf_counter() - began
    sizes = table_sizes(names)
    per_reading = {part: size / rows for part, size in sizes.items()}
    bytes_per_reading = sum(sizes.values()) / rows
    print(
        f"bytes per reading with the days that are over compacted ({len(compacted)} keys rebuilt in"
        f" {compact_s:.0f} s): {bytes_per_reading:.2f} (heap {per_reading['heap']:.2f}, primary key"
        f" {per_reading['key']:.2f}, BRIN {per_reading['brin']:.3f}); {sum(sizes.values()) / 2**30:.2f} GiB"
    )

    runs = interleaved_runs(args, sensors, data_end, step_s, {"empty": empty_database, "full": args.database})
    use_database(args.database)
    empty_rate = statistics.median(run["step_per_s"] for run in runs["empty"])
    empty_write = statistics.median(run["write_per_s"] for run in runs["empty"])
    full_rate = statistics.median(run["step_per_s"] for run in runs["full"])
    full_write = statistics.median(run["write_per_s"] for run in runs["full"])
    ratio = full_rate / empty_rate
    print(
        f"store step, runs into an empty and the full table in turn: empty {median_rate(runs['empty'])}; full"
        f" {median_rate(runs['full'])}; full / empty {ratio:.2f} (its writes {full_write / empty_write:.2f})"
    )

    # The purge of the oldest purge-days days, with the rollups taken as up to date, run at the moment when
    # those days are past the raw retention.
    RollupState.objects.update_or_create(
        pk=RollupState.SINGLETON, defaults={"watermark": datetime.now(UTC), "backfilled": True}
    )
    cutoff = data_start + timedelta(days=args.purge_days)
    purge_now = cutoff + timedelta(days=settings.READINGS_RETENTION_DAYS, hours=1)
    released = table_sizes([p.name for p in partitions_list() if p.end is not None and p.end <= cutoff])
    released = sum(released.values())
    drop_s: list[float] = []

    def time_drops(execute, sql, params, many, context):
        began = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            if sql.startswith("DROP TABLE"):
                drop_s.append(time.perf_counter() - began)

    began = time.perf_counter()
    with connection.execute_wrapper(time_drops):
        outcome = retention_purge(now=purge_now)
    purge_ms = (time.perf_counter() - began) * 1000
    drop_ms = sum(drop_s) * 1000
    with connection.cursor() as cursor:
        cursor.execute("SELECT min(ts) FROM ingest_reading")
        oldest_left = cursor.fetchone()[0]
    if outcome.more or oldest_left is None or oldest_left < cutoff:
        raise SystemExit(f"the purge did not finish: {outcome.as_dict()}, oldest reading left {oldest_left}")
    print(
        f"purge of {args.purge_days} days: {purge_ms:.0f} ms, {len(outcome.partitions_dropped)} partitions dropped"
        f" (about {outcome.readings:,} readings), {outcome.readings_deleted:,} deleted row by row; of that time, the"
        f" DROP that releases their {released / 2**30:.1f} GiB of files {drop_ms:.0f} ms"
    )

    # The daily case: the next day past retention.
    began = time.perf_counter()
    daily = retention_purge(now=purge_now + DAY)
    purge_day_ms = (time.perf_counter() - began) * 1000
    print(f"the daily purge of the next day: {purge_day_ms:.0f} ms, {len(daily.partitions_dropped)} partition dropped")

    # What the purge cost before partitions: one day of rows deleted in windows of an hour.
    first_left = next(p for p in partitions_list() if p.end is not None and p.start is not None and p.start >= cutoff)
    day_end = min(first_left.end, first_left.start + DAY)
    raw = raw_connection()
    began = time.perf_counter()
    deleted = 0
    low = first_left.start
    while low < day_end:
        with raw.transaction(), raw.cursor() as cursor:
            cursor.execute(
                f"DELETE FROM {first_left.name} WHERE ts >= %s AND ts < %s",
                [low, min(low + timedelta(hours=1), day_end)],
            )
            deleted += cursor.rowcount
        low += timedelta(hours=1)
    delete_day_ms = (time.perf_counter() - began) * 1000
    print(
        f"for comparison, deleting one day ({deleted:,} readings) in windows of an hour: {delete_day_ms:,.0f} ms"
        f" (30 days: about {delete_day_ms * 30 / 1000:,.0f} s, plus vacuuming them)"
    )

    rollups = rollup_purges(sensor_ids, data_end, int(args.days))
    print(
        f"rollup purge, hourly rollups of {len(sensors)} sensors: one day ({rollups['one_day']['rows']:,} rows)"
        f" {rollups['one_day']['ms']:.0f} ms, 30 days ({rollups['thirty_days']['rows']:,} rows)"
        f" {rollups['thirty_days']['ms']:.0f} ms; {rollups['bytes_per_row']} bytes per hourly rollup"
    )
    redis.Redis.from_url(args.redis_url).flushdb()
    load_after = os.getloadavg()
    print(
        json.dumps(
            {
                "readings": rows,
                "sensors": len(sensors),
                "days": round(args.days, 1),
                "interval_s": args.interval_s,
                "partition_days": args.partition_days,
                "bytes_per_reading": round(bytes_per_reading, 2),
                "bytes_per_reading_as_inserted": round(sum(inserted.values()) / rows, 2),
                "compact_s": round(compact_s, 1),
                "heap_bytes_per_reading": round(per_reading["heap"], 2),
                "key_bytes_per_reading": round(per_reading["key"], 2),
                "brin_bytes_per_reading": round(per_reading["brin"], 3),
                "gib": round(sum(sizes.values()) / 2**30, 2),
                "rate_empty_per_s": round(empty_rate),
                "rate_full_per_s": round(full_rate),
                "rate_full_over_empty": round(ratio, 3),
                "write_full_over_empty": round(full_write / empty_write, 3),
                "purge_days": args.purge_days,
                "purge_ms": round(purge_ms, 1),
                "purge_drop_ms": round(drop_ms, 1),
                "purge_released_gib": round(released / 2**30, 2),
                "partitions_dropped": len(outcome.partitions_dropped),
                "purge_one_day_ms": round(purge_day_ms, 1),
                "readings_deleted_row_by_row": outcome.readings_deleted,
                "delete_one_day_ms": round(delete_day_ms),
                "rollup_purge_one_day_ms": rollups["one_day"]["ms"],
                "rollup_purge_30_days_ms": rollups["thirty_days"]["ms"],
                "rollup_hour_bytes_per_row": rollups["bytes_per_row"],
                "load_s": round(load_s),
                "copy_per_s": round(rows / load_s),
                "layouts": layouts,
                "cpus": os.cpu_count(),
                "load_average_before": round(load_before[0], 2),
                "load_average_after": round(load_after[0], 2),
            }
        )
    )


if __name__ == "__main__":
    main()
