"""Aggregates benchmark: a month of hourly aggregates for 100 sensors from rollups against a raw scan, and the
rollup refresh after a batch of 10,000 readings.

It builds what it measures itself, on a database of its own (default `telemetry_bench_aggregates`, dropped,
created and migrated here; PostgreSQL must be running): 100 sensors with 30 days of one reading a minute
(4.32 million readings) loaded with COPY, then the rollups built by the refresh's first run (its backfill).

    .venv/bin/python bench/aggregates.py                      # defaults: 100 sensors x 30 days, 7 repeats
    .venv/bin/python bench/aggregates.py --sensors 200 --days 60

It prints, in order: the load, the rollup build, the month of hourly aggregates from rollups (the selector
the API uses, rollups plus raw readings for the partial hours at both ends) and from a raw scan (the same
query with rollups ignored: date_trunc over every reading), whether both give the same answer, the same
through the HTTP API in-process, daily buckets in Europe/Berlin, and the refresh after batches of 10,000
readings (new ones, then late ones scattered over the month). Times are medians of the repeats. Its last
line is one JSON object with rollup_ms, raw_ms, speedup, refresh_ms and the rest.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.harness import add_database_arguments, bench_environment, create_database  # noqa: E402


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sensors", type=int, default=100)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--repeat", type=int, default=7, help="runs of each timed query (the median is reported)")
    parser.add_argument("--batch-size", type=int, default=10_000)
    parser.add_argument("--batches", type=int, default=5, help="batches timed for the refresh")
    # Batches are queued on commit like any other; no worker consumes them here, the benchmark stores them.
    add_database_arguments(parser, database="telemetry_bench_aggregates", redis_db=13)
    return parser.parse_args()


def make_sensors(count: int) -> list[tuple[int, str]]:
    """`count` temperature sensors on devices spread over four areas of one building."""
    from apps.devices.models import Sensor, SensorType
    from apps.devices.services import device_create, sensor_create
    from apps.locations.models import Location
    from apps.locations.services import location_save

    building = location_save(Location(name="Bench building", kind=Location.Kind.BUILDING))
    areas = [location_save(Location(name=f"Area {n}", parent=building)) for n in range(4)]
    sensor_type = SensorType.objects.create(code="temperature", name="Temperature", unit="°C")
    for number in range(count):
        device, _ = device_create(device_id=f"bench-{number:04d}", location=areas[number % len(areas)])
        sensor_create(device=device, sensor_type=sensor_type)
    return list(Sensor.objects.order_by("key").values_list("id", "key"))


def value(sensor_index: int, minute: int, rng: random.Random) -> float:
    return round(20 + 5 * math.sin((minute / 1440 + sensor_index / 17) * 2 * math.pi) + rng.random(), 3)


def load_readings(sensors: list[tuple[int, str]], start: datetime, minutes: int) -> tuple[int, float]:
    """One reading a minute per sensor, in time order as devices send them, by COPY. Returns (rows, seconds)."""
    from django.db import connection

    from apps.ingest.partitions import partitions_ensure_range

    rng = random.Random(5)
    partitions_ensure_range(start, start + timedelta(minutes=minutes))
    connection.ensure_connection()
    raw = connection.connection
    started = time.perf_counter()
    with raw.transaction(), raw.cursor() as cursor:
        with cursor.copy("COPY ingest_reading (sensor_id, ts, value) FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types(["int8", "timestamptz", "float8"])
            for minute in range(minutes):
                ts = start + timedelta(minutes=minute)
                for index, (sensor_id, _) in enumerate(sensors):
                    copy.write_row((sensor_id, ts, value(index, minute, rng)))
    elapsed = time.perf_counter() - started
    raw.autocommit = True
    with raw.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE ingest_reading")
    return minutes * len(sensors), elapsed


def timed(function, repeat: int) -> tuple[float, float, object]:
    """(median ms, best ms, last result) of `repeat` calls, after one warm-up call."""
    result = function()
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        result = function()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times), min(times), result


def same_answer(first: list, second: list) -> bool:
    """Equal rows, the sums up to float summation order."""
    if len(first) != len(second):
        return False
    for a, b in zip(first, second, strict=True):
        if a[:2] != b[:2] or a[2:4] != b[2:4] or a[5] != b[5] or not math.isclose(a[4], b[4], rel_tol=1e-9):
            return False
    return True


def plain_raw_rows(query) -> list[tuple]:
    """The straightforward computation, as anyone would write it, with the server's default settings."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT sensor_id, date_part('epoch', date_trunc(%s, ts, %s))::bigint, min(value), max(value),"
            " sum(value), count(*) FROM ingest_reading WHERE sensor_id = ANY(%s) AND ts >= %s AND ts < %s"
            " GROUP BY 1, 2",
            [query.interval, query.tz, list(query.sensor_ids), query.start, query.end],
        )
        return cursor.fetchall()


def store_batch(readings: list[tuple[str, datetime, float]]) -> None:
    """One batch through the ingest services, stored by the task's body as the worker would."""
    from django.utils import timezone

    from apps.ingest.pipeline import batch_process
    from apps.ingest.services import batch_create, normalize_request

    body = [{"sensor": key, "ts": ts.isoformat(), "value": reading} for key, ts, reading in readings]
    received_at = timezone.now()
    batch = batch_create(
        normalized=normalize_request(body, received_at=received_at, device_id=None), received_at=received_at
    )
    outcome = batch_process(batch_id=str(batch.pk))
    if outcome is None or outcome.stored != len(readings):
        raise SystemExit(f"a benchmark batch stored {outcome and outcome.stored} of {len(readings)} readings")


def main() -> None:
    sys.stdout.reconfigure(line_buffering=True)  # figures appear as they are measured, also into a file
    args = parse_args()
    env = bench_environment(db_url_base=args.db_url_base, database=args.database, redis_url=args.redis_url)
    import redis

    redis.Redis.from_url(args.redis_url).flushdb()
    create_database(args.db_url_base, args.database, env, fresh=True)
    import django

    django.setup()
    from django.db import connection
    from django.test import Client

    from apps.accounts.roles import Role
    from apps.accounts.services import user_set_role
    from apps.aggregates.selectors import AggregateQuery, aggregate_rows
    from apps.aggregates.services import rollups_refresh

    sensors = make_sensors(args.sensors)
    sensor_ids = tuple(sensor_id for sensor_id, _ in sensors)
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    # Data ends half a day ago, so the timed batches can append readings that are not in the future.
    data_end = now - timedelta(hours=12)
    data_start = data_end - timedelta(days=args.days)
    minutes = args.days * 24 * 60
    rows, load_s = load_readings(sensors, data_start, minutes)
    print(
        f"load: {rows:,} readings ({args.sensors} sensors x {args.days} days, one a minute) by COPY in {load_s:.1f} s"
    )

    started = time.perf_counter()
    build = rollups_refresh(budget_s=3600)
    build_ms = (time.perf_counter() - started) * 1000
    if not build.backfilled:
        raise SystemExit("the rollups did not finish building")
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE aggregates_rolluphour")
        cursor.execute("VACUUM ANALYZE aggregates_rollupday")
    print(
        f"rollup build (the refresh's first run, backfilling): {build_ms / 1000:.1f} s, {build.hour_rows:,} hourly"
        f" and {build.day_rows:,} daily rows in {build.backfill_chunks} chunks"
    )

    # A dashboard's month: the last 30 days up to a moment that is not on an hour boundary.
    month_end = data_end - timedelta(minutes=17)
    month = AggregateQuery(
        sensor_ids=sensor_ids, interval="hour", tz="UTC", start=month_end - timedelta(days=30), end=month_end
    )
    rollup_ms, rollup_best, from_rollups = timed(lambda: aggregate_rows(month), args.repeat)
    # The raw scan is the same statement with rollups ignored: the same bucketing, planner settings and
    # binary transfer, so the ratio is rollups against scanning and nothing else.
    raw_ms, raw_best, from_raw = timed(lambda: aggregate_rows(month, raw_only=True), args.repeat)
    plain_ms, _, plain = timed(lambda: plain_raw_rows(month), 1)
    equal = same_answer(sorted(from_rollups), sorted(plain)) and same_answer(sorted(from_raw), sorted(plain))
    speedup = raw_ms / rollup_ms
    print(
        f"month of hourly aggregates, {args.sensors} sensors, {len(from_rollups):,} buckets: from rollups"
        f" {rollup_ms:.1f} ms (best {rollup_best:.1f}), raw scan {raw_ms:.1f} ms (best {raw_best:.1f}),"
        f" {speedup:.0f}x; both equal to plain SQL over the raw readings ({plain_ms:.0f} ms with the server's"
        f" default settings): {'yes' if equal else 'NO'}"
    )
    if not equal:
        raise SystemExit("rollups and the raw readings disagree")

    _, token = user_set_role(username="bench", role=Role.VIEWER)
    client = Client(HTTP_AUTHORIZATION=f"Token {token}")
    params = {
        "sensor_type": "temperature",
        "interval": "hour",
        "start": month.start.isoformat(),
        "end": month.end.isoformat(),
        "tz": "UTC",
    }

    def through_api():
        response = client.get("/api/v1/aggregates/", params)
        if response.status_code != 200:
            raise SystemExit(f"the API answered {response.status_code}: {response.content[:300]!r}")
        return response

    api_ms, _, response = timed(through_api, args.repeat)
    print(
        f"the same through GET /api/v1/aggregates/ in-process (auth, parameters, JSON of"
        f" {len(response.content):,} bytes): {api_ms:.1f} ms"
    )

    days = AggregateQuery(sensor_ids=sensor_ids, interval="day", tz="Europe/Berlin", start=month.start, end=month.end)
    day_ms, _, _ = timed(lambda: aggregate_rows(days), args.repeat)
    day_raw_ms, _, _ = timed(lambda: aggregate_rows(days, raw_only=True), max(1, args.repeat // 2))
    print(f"month of daily buckets in Europe/Berlin: from rollups {day_ms:.1f} ms, raw scan {day_raw_ms:.1f} ms")

    per_sensor = args.batch_size // len(sensors)
    refresh_times, written = [], []
    for number in range(args.batches):
        first = data_end + timedelta(minutes=number * per_sensor)
        rng = random.Random(number)
        store_batch(
            [
                (key, first + timedelta(minutes=minute), value(index, minutes + number * per_sensor + minute, rng))
                for minute in range(per_sensor)
                for index, (_, key) in enumerate(sensors)
            ]
        )
        started = time.perf_counter()
        outcome = rollups_refresh()
        refresh_times.append((time.perf_counter() - started) * 1000)
        written.append(outcome.hour_rows + outcome.day_rows)
    refresh_ms = statistics.median(refresh_times)
    print(
        f"refresh after a batch of {per_sensor * len(sensors):,} new readings ({per_sensor} minutes of"
        f" {len(sensors)} sensors): median {refresh_ms:.1f} ms over {args.batches} batches,"
        f" {statistics.median(written):.0f} rollup rows written"
    )

    # Late data as it comes: a gateway back from an outage sends 100 minutes of all its sensors, days late
    # (at half-minutes, so they are new readings, not duplicates).
    late_times = []
    for number in range(max(1, args.batches // 2)):
        first = data_end - timedelta(days=3 + number, seconds=30)
        store_batch(
            [(key, first + timedelta(minutes=minute), 19.5) for minute in range(per_sensor) for _, key in sensors]
        )
        started = time.perf_counter()
        rollups_refresh()
        late_times.append((time.perf_counter() - started) * 1000)
    refresh_late_ms = statistics.median(late_times)
    print(
        f"refresh after a batch of {per_sensor * len(sensors):,} late readings (100 minutes of every sensor, days"
        f" late): median {refresh_late_ms:.1f} ms"
    )

    # The worst case: readings scattered at random over the whole month. A batch records one time span for
    # all its sensors, so every hour of the month is counted and the changed ones re-aggregated.
    rng = random.Random(7)
    scattered = [
        (
            key,
            data_start
            + timedelta(seconds=rng.randrange(1, args.days * 86_400 - 1), microseconds=rng.randrange(1, 999_999)),
            19.5,
        )
        for _ in range(per_sensor)
        for _, key in sensors
    ]
    store_batch(scattered)
    started = time.perf_counter()
    outcome = rollups_refresh()
    refresh_scattered_ms = (time.perf_counter() - started) * 1000
    print(
        f"refresh after a batch of {len(scattered):,} readings scattered over the whole month (worst case):"
        f" {refresh_scattered_ms:.0f} ms, {outcome.hour_rows:,} hourly rows re-aggregated"
    )

    after = same_answer(sorted(aggregate_rows(month)), sorted(plain_raw_rows(month)))
    print(f"after the late batches, rollups still equal plain SQL over the raw readings: {'yes' if after else 'NO'}")
    redis.Redis.from_url(args.redis_url).flushdb()
    print(
        json.dumps(
            {
                "sensors": args.sensors,
                "days": args.days,
                "readings": rows,
                "load_s": round(load_s, 1),
                "copy_per_s": round(rows / load_s),
                "build_ms": round(build_ms),
                "buckets": len(from_rollups),
                "rollup_ms": round(rollup_ms, 1),
                "rollup_best_ms": round(rollup_best, 1),
                "raw_ms": round(raw_ms, 1),
                "speedup": round(speedup, 1),
                "plain_sql_ms": round(plain_ms),
                "api_ms": round(api_ms, 1),
                "day_berlin_ms": round(day_ms, 1),
                "day_berlin_raw_ms": round(day_raw_ms, 1),
                "refresh_ms": round(refresh_ms, 1),
                "refresh_late_ms": round(refresh_late_ms, 1),
                "refresh_scattered_ms": round(refresh_scattered_ms),
                "batch_size": per_sensor * len(sensors),
                "same_answer": equal and after,
                "cpus": os.cpu_count(),
                "load_average": round(os.getloadavg()[0], 2),
            }
        )
    )
    if not after:
        raise SystemExit("rollups and raw readings disagree after the late batches")


if __name__ == "__main__":
    main()
