"""End-to-end ingest benchmark: HTTP batches of readings to rows committed, against raw COPY in the same run.

It starts what it measures itself, on a database of its own (default `telemetry_bench`, created and migrated
here) and a Redis database of its own (default 14): gunicorn serving the API and one Celery worker consuming
the `ingest` and `alerts` queues, so "done" means stored, latest values updated and thresholds evaluated
(a threshold on the benchmark's sensor type, breached by one reading in a thousand). PostgreSQL and Redis must be running (`bin/ensure-services` starts them).

    .venv/bin/python bench/ingest.py                      # defaults: 300,000 readings, batches of 1,000
    .venv/bin/python bench/ingest.py --readings 1000000 --clients 8
    .venv/bin/python bench/ingest.py --anomaly            # without, then with an anomaly rule on every sensor

It prints, in order: the validation cost per reading (our tight loop against a DRF serializer), the
end-to-end run (readings/s from the first POST to the last batch evaluated; p50/p99 from POST to the batch
evaluated, and to it being stored), then the same rows written straight into the readings table by COPY, by COPY into a staging table
plus INSERT ... ON CONFLICT, and by INSERT ... SELECT FROM unnest(...) ON CONFLICT. Its last line is one JSON
object with readings_per_s, copy_per_s, ratio, p50_ms, p99_ms and the rest.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import statistics
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.harness import (  # noqa: E402
    Stack,
    add_database_arguments,
    bench_environment,
    create_database,
    dc_voltage_type,
    run_tables_empty,
)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--readings", type=int, default=300_000)
    parser.add_argument("--batch-size", type=int, default=1_000)
    parser.add_argument("--clients", type=int, default=4, help="concurrent HTTP clients")
    parser.add_argument("--sensors", type=int, default=2_000)
    parser.add_argument("--web-workers", type=int, default=2, help="gunicorn worker processes")
    parser.add_argument("--worker-concurrency", type=int, default=2, help="Celery worker processes")
    add_database_arguments(parser, database="telemetry_bench", redis_db=14)
    parser.add_argument(
        "--anomaly",
        action="store_true",
        help="run the end-to-end part twice, without and then with an anomaly rule on every sensor, and compare",
    )
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--timeout", type=float, default=400, help="seconds to wait for all batches")
    parser.add_argument(
        "--store-only", action="store_true", help="worker on the ingest queue only: measure storing without evaluation"
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="with --anomaly: rounds of one run without and one with the rule, in alternating order; the figures "
        "are medians",
    )
    return parser.parse_args()


def setup_environment(args: argparse.Namespace) -> dict[str, str]:
    return bench_environment(
        db_url_base=args.db_url_base,
        database=args.database,
        redis_url=args.redis_url,
        # One token sends everything here; in production the ingest budget is per device or gateway.
        THROTTLE_INGEST_READINGS_RATE="off",
        THROTTLE_TOKEN_RATE="off",
        # --store-only: the ingest task leaves evaluation to the `alerts` queue, which no worker here consumes.
        INGEST_EVALUATE_INLINE="false" if args.store_only else "true",
    )


def prepare_world(args: argparse.Namespace) -> tuple[list[tuple[int, str]], str]:
    """Sensors to write to and an admin token; empties the readings tables so every run starts equal."""
    import django

    django.setup()

    from apps.accounts.roles import Role
    from apps.accounts.services import user_set_role
    from apps.devices.models import Device, Sensor
    from apps.devices.services import device_create
    from apps.thresholds.models import Threshold

    run_tables_empty()
    sensor_type = dc_voltage_type()
    Threshold.objects.update_or_create(
        sensor_type=sensor_type, name="default", defaults={"warning_high": 790, "critical_high": 798, "hysteresis": 2}
    )
    existing = Sensor.objects.filter(sensor_type=sensor_type, device__device_id__startswith="bench-").count()
    for number in range(existing, args.sensors):
        device, _ = device_create(device_id=f"bench-{number:05d}")
        Sensor.objects.create(device=device, sensor_type=sensor_type, key=f"bench-{number:05d}/voltage_dc")
    sensors = list(
        Sensor.objects.filter(sensor_type=sensor_type, device__device_id__startswith="bench-")
        .order_by("key")
        .values_list("id", "key")[: args.sensors]
    )
    Device.objects.filter(device_id__startswith="bench-").update(last_seq=None, seq_gaps=0, connection_status="unknown")
    _, token = user_set_role(username="bench", role=Role.ADMIN)
    return sensors, token


def make_rows(sensors: list[tuple[int, str]], count: int) -> list[tuple[int, str, datetime, float]]:
    """(sensor id, key, ts, value): each sensor's readings a second apart, sensors interleaved as devices send."""
    rng = random.Random(42)
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=count // len(sensors) + 3600)
    rows = []
    for position in range(count):
        sensor_id, key = sensors[position % len(sensors)]
        ts = start + timedelta(seconds=position // len(sensors))
        # Inside the bands, but for one reading in a thousand that breaches the warning band: a plant with
        # a few alerts a minute, not an alert storm (bench/alert_latency.py measures alerting under load).
        value = 805.0 if position % 997 == 0 else round(700 + rng.random() * 80, 3)
        rows.append((sensor_id, key, ts, value))
    return rows


def request_bodies(rows, batch_size: int) -> list[bytes]:
    import orjson

    bodies = []
    for offset in range(0, len(rows), batch_size):
        chunk = rows[offset : offset + batch_size]
        bodies.append(
            orjson.dumps(
                [
                    {"sensor": key, "ts": ts.isoformat().replace("+00:00", "Z"), "value": value}
                    for _, key, ts, value in chunk
                ]
            )
        )
    return bodies


def measure_validation(bodies: list[bytes]) -> dict[str, float]:
    """µs per reading to check and normalise a request: our loop against a DRF serializer on the same items."""
    import orjson
    from rest_framework import serializers

    from apps.ingest.services import normalize_request

    class ReadingSerializer(serializers.Serializer):
        sensor = serializers.CharField(max_length=300)
        ts = serializers.DateTimeField(required=False)
        value = serializers.FloatField()

    sample = [orjson.loads(body) for body in bodies[:20]]
    readings = sum(len(items) for items in sample)
    now = datetime.now(UTC)
    started = time.perf_counter()
    for items in sample:
        normalize_request(items, received_at=now, device_id=None)
    ours = (time.perf_counter() - started) / readings * 1e6
    started = time.perf_counter()
    for items in sample:
        serializer = ReadingSerializer(data=items, many=True)
        serializer.is_valid(raise_exception=True)
    drf = (time.perf_counter() - started) / readings * 1e6
    return {"validation_us_per_reading": round(ours, 2), "drf_serializer_us_per_reading": round(drf, 2)}


def start_stack(args: argparse.Namespace, env: dict[str, str], log_dir: Path) -> Stack:
    import redis

    redis.Redis.from_url(args.redis_url).flushdb()
    stack = Stack(env, log_dir, "bench-ingest")
    stack.web(args.port, args.web_workers)
    stack.worker("worker", "ingest" if args.store_only else "ingest,alerts", args.worker_concurrency)
    stack.wait_for_workers(1)
    return stack


def post_all(args: argparse.Namespace, bodies: list[bytes], token: str) -> tuple[list[tuple[str, float]], float]:
    """POST every body from `clients` threads with keep-alive; returns (batch id, sent at) and the start time."""
    sent: list[tuple[str, float]] = []
    errors: list[str] = []
    lock = threading.Lock()
    next_body = iter(range(len(bodies)))
    headers = {"Authorization": f"Token {token}", "Content-Type": "application/json"}

    def client() -> None:
        connection = http.client.HTTPConnection("127.0.0.1", args.port, timeout=60)
        while True:
            with lock:
                index = next(next_body, None)
            if index is None:
                return
            started = time.time()
            connection.request("POST", "/api/v1/ingest/", body=bodies[index], headers=headers)
            response = connection.getresponse()
            payload = response.read()
            if response.status != 202:
                errors.append(f"{response.status}: {payload[:200]!r}")
                return
            with lock:
                sent.append((json.loads(payload)["batch_id"], started))

    started = time.time()
    threads = [threading.Thread(target=client) for _ in range(args.clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise SystemExit(f"ingest requests failed: {errors[:3]}")
    return sent, started


def wait_until_done(
    sent: list[tuple[str, float]], timeout: float, *, evaluated: bool
) -> dict[str, tuple[float, float]]:
    """Wait until every batch is stored (and evaluated); returns (stored at, done at) per batch."""
    from django.db import connection

    ids = [batch_id for batch_id, _ in sent]
    deadline = time.monotonic() + timeout
    while True:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FILTER (WHERE status = 'done' AND (evaluated_at IS NOT NULL OR NOT %s)),"
                " count(*) FILTER (WHERE status = 'failed') FROM ingest_ingestbatch WHERE id = ANY(%s::uuid[])",
                [evaluated, ids],
            )
            done, failed = cursor.fetchone()
        if failed:
            raise SystemExit(f"{failed} batches failed")
        if done == len(ids):
            break
        if time.monotonic() > deadline:
            raise SystemExit(f"only {done} of {len(ids)} batches done after {timeout} s")
        time.sleep(0.2)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT id::text, extract(epoch FROM finished_at), extract(epoch FROM COALESCE(evaluated_at, finished_at))"
            " FROM ingest_ingestbatch WHERE id = ANY(%s::uuid[])",
            [ids],
        )
        return {batch_id: (float(stored), float(evaluated)) for batch_id, stored, evaluated in cursor.fetchall()}


def baseline_writes(rows) -> dict[str, float]:
    """Rows/s for the same rows written three ways straight into the same (emptied) readings table."""
    from django.db import connection

    ids = [sensor_id for sensor_id, _, _, _ in rows]
    stamps = [ts for _, _, ts, _ in rows]
    values = [value for _, _, _, value in rows]
    results = {}
    for method in ("copy", "stage_insert", "unnest"):
        with connection.cursor() as cursor:
            cursor.execute("TRUNCATE ingest_reading")
        raw = connection.connection
        started = time.perf_counter()
        with raw.transaction(), raw.cursor() as cursor:
            if method == "copy":
                with cursor.copy("COPY ingest_reading (sensor_id, ts, value) FROM STDIN (FORMAT BINARY)") as copy:
                    copy.set_types(["int8", "timestamptz", "float8"])
                    for row in zip(ids, stamps, values, strict=True):
                        copy.write_row(row)
            elif method == "stage_insert":
                cursor.execute(
                    "CREATE TEMP TABLE bench_stage (sensor_id bigint, ts timestamptz, value float8) ON COMMIT DROP"
                )
                with cursor.copy("COPY bench_stage FROM STDIN (FORMAT BINARY)") as copy:
                    copy.set_types(["int8", "timestamptz", "float8"])
                    for row in zip(ids, stamps, values, strict=True):
                        copy.write_row(row)
                cursor.execute(
                    "INSERT INTO ingest_reading (sensor_id, ts, value) SELECT sensor_id, ts, value FROM bench_stage"
                    " ON CONFLICT DO NOTHING"
                )
            else:
                for offset in range(0, len(ids), 10_000):
                    cursor.execute(
                        "INSERT INTO ingest_reading (sensor_id, ts, value) SELECT s, t, v FROM"
                        " unnest(%s::bigint[], %s::timestamptz[], %s::float8[]) AS u(s, t, v) ON CONFLICT DO NOTHING",
                        [
                            ids[offset : offset + 10_000],
                            stamps[offset : offset + 10_000],
                            values[offset : offset + 10_000],
                        ],
                    )
        results[f"{method}_per_s"] = round(len(rows) / (time.perf_counter() - started))
    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE ingest_reading, ingest_latestreading")
    return results


def main() -> None:
    args = parse_args()
    env = setup_environment(args)
    create_database(args.db_url_base, args.database, env)
    sensors, token = prepare_world(args)
    rows = make_rows(sensors, args.readings)
    bodies = request_bodies(rows, args.batch_size)
    validation = measure_validation(bodies)
    print(
        f"validation: {validation['validation_us_per_reading']} µs/reading (tight loop) against "
        f"{validation['drf_serializer_us_per_reading']} µs/reading (DRF serializer, many=True)"
    )

    runs = {}
    if args.anomaly:
        rounds = anomaly_rounds(args, env, rows, bodies, token)
        runs["without_anomaly"] = median_run([without for without, _ in rounds])
        runs["with_anomaly"] = median_run([with_ for _, with_ in rounds])
        costs = [1 - with_["readings_per_s"] / without["readings_per_s"] for without, with_ in rounds]
    else:
        runs["run"] = end_to_end(args, env, rows, bodies, token)
    last = list(runs.values())[-1]
    baselines = baseline_writes(rows)
    print(
        f"same rows straight into the table: COPY {baselines['copy_per_s']:,}/s, staging COPY + INSERT ON CONFLICT "
        f"{baselines['stage_insert_per_s']:,}/s, unnest INSERT ON CONFLICT {baselines['unnest_per_s']:,}/s"
    )
    ratio = last["readings_per_s"] / baselines["copy_per_s"]
    print(f"ratio end to end / raw COPY: {ratio:.2f}")
    result = {
        "readings": len(rows),
        "batch_size": args.batch_size,
        "clients": args.clients,
        "sensors": len(sensors),
        "evaluated": not args.store_only,
        **last,
        "copy_per_s": baselines["copy_per_s"],
        "stage_insert_per_s": baselines["stage_insert_per_s"],
        "unnest_per_s": baselines["unnest_per_s"],
        "ratio": round(ratio, 3),
        **validation,
        "cpus": os.cpu_count(),
    }
    if args.anomaly:
        without, with_ = runs["without_anomaly"], runs["with_anomaly"]
        cost = statistics.median(costs)
        print(
            f"anomaly pass, median of {len(costs)} rounds: {without['readings_per_s']:,} readings/s without rules, "
            f"{with_['readings_per_s']:,} with a rule on every sensor ({cost:.1%} slower; rounds: "
            f"{', '.join(f'{c:.1%}' for c in costs)}); p50 {without['p50_ms']} -> {with_['p50_ms']} ms"
        )
        result["without_anomaly"] = without
        result["anomaly_cost"] = round(cost, 3)
        result["anomaly_costs"] = [round(c, 3) for c in costs]
    print(json.dumps(result))


def reset_tables() -> None:
    """Empty what a run wrote, so the second run of --anomaly stores the same rows afresh."""

    run_tables_empty()
    from apps.devices.models import Device

    Device.objects.filter(device_id__startswith="bench-").update(last_seq=None, seq_gaps=0, connection_status="unknown")


def set_anomaly_rule(*, enabled: bool) -> None:
    """An anomaly rule on the benchmark's sensor type (so on every sensor), or none. Warm-up of a few readings,
    so that the detectors score (not only learn) for most of the run."""
    from django.core.cache import cache

    from apps.anomaly.models import AnomalyRule
    from apps.anomaly.selectors import ANY_RULE_CACHE_KEY
    from apps.devices.models import SensorType

    AnomalyRule.objects.all().delete()
    if enabled:
        AnomalyRule.objects.create(
            sensor_type=SensorType.objects.get(code="voltage_dc"), warmup_readings=20, warmup_s=0
        )
    # The signal deletes the key in this process's cache, which is the workers' Redis too.
    cache.delete(ANY_RULE_CACHE_KEY)


def anomaly_rounds(args, env, rows, bodies, token) -> list[tuple[dict, dict]]:
    """(without rules, with a rule on every sensor) for each round. The order alternates from round to round
    (without first, then with first, ...), so that what changes over a run of the machine (its other load, the
    database's caches and dead rows) weighs on both sides alike; each round's cost compares its own pair."""
    # A first run, not counted, warms the database's caches and the machine: otherwise the first run of the
    # first round is measured cold, and its side of that round's pair with it.
    reset_tables()
    set_anomaly_rule(enabled=False)
    end_to_end(args, env, rows, bodies, token)
    rounds = []
    for number in range(args.rounds):
        measured = {}
        for enabled in (False, True) if number % 2 == 0 else (True, False):
            reset_tables()
            set_anomaly_rule(enabled=enabled)
            measured[enabled] = end_to_end(args, env, rows, bodies, token)
        rounds.append((measured[False], measured[True]))
    return rounds


def median_run(runs: list[dict]) -> dict:
    """Each figure's median over the runs."""
    return {key: type(runs[0][key])(statistics.median(run[key] for run in runs)) for key in runs[0]}


def end_to_end(args, env, rows, bodies, token) -> dict:
    log_dir = Path(os.environ.get("BENCH_LOG_DIR", "/tmp"))
    stack = start_stack(args, env, log_dir)
    try:
        sent, started = post_all(args, bodies, token)
        posted = time.time()
        finished = wait_until_done(sent, args.timeout, evaluated=not args.store_only)
    finally:
        stack.stop()
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM ingest_reading")
        stored = cursor.fetchone()[0]
        cursor.execute("SELECT count(*) FROM ingest_latestreading")
        latest = cursor.fetchone()[0]
    if stored != len(rows):
        raise SystemExit(f"stored {stored} readings, expected {len(rows)}")
    elapsed = max(evaluated for _, evaluated in finished.values()) - started
    stored_elapsed = max(stored for stored, _ in finished.values()) - started
    latencies = sorted((finished[batch_id][1] - sent_at) * 1000 for batch_id, sent_at in sent)
    stored_latencies = sorted((finished[batch_id][0] - sent_at) * 1000 for batch_id, sent_at in sent)
    p50 = statistics.median(latencies)
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    rate = len(rows) / elapsed
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM alerts_alert")
        alerts = cursor.fetchone()[0]
    print(
        f"end to end: {len(rows):,} readings in {len(bodies)} requests from {args.clients} clients: {elapsed:.2f} s, "
        f"{rate:,.0f} readings/s {'stored' if args.store_only else 'stored and evaluated'} (stored: {len(rows) / stored_elapsed:,.0f}/s; POSTs took "
        f"{posted - started:.2f} s); POST→evaluated p50 {p50:.0f} ms, p99 {p99:.0f} ms (POST→stored p50 "
        f"{statistics.median(stored_latencies):.0f} ms); {stored:,} rows stored, {latest:,} latest values, "
        f"{alerts} alerts opened"
    )
    return {
        "readings_per_s": round(rate),
        "p50_ms": round(p50, 1),
        "p99_ms": round(p99, 1),
        "stored_only_per_s": round(len(rows) / stored_elapsed),
        "alerts": alerts,
    }


if __name__ == "__main__":
    main()
