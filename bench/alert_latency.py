"""Alert latency benchmark: a breaching reading to its webhook notification, under a background ingest load.

It starts what it measures itself, on a database of its own (default `telemetry_bench_alerts`, created and
migrated here) and a Redis database of its own (default 13): gunicorn serving the API, Celery worked as in the
Procfile (one worker on the ingest, alerts and default queues; `--alerts-worker` adds one of its own for the
alerts queue), and a webhook receiver in this process. PostgreSQL and Redis must be running.

While clients post readings at `--rate` readings/s (batches of `--batch-size` over `--sensors` sensors whose
values stay inside their band), a breaching reading of a probe sensor rides along in one batch every
`--probe-every` seconds. Each probe opens an alert whose webhook is timed from the moment its batch was
posted to the moment the receiver has it: that is the latency measured (p50, p95, p99, max).

    .venv/bin/python bench/alert_latency.py                 # defaults: 5,000 readings/s, 90 s, ~180 probes
    .venv/bin/python bench/alert_latency.py --rate 10000 --alerts-worker

Its last line is one JSON object with p50_ms, p95_ms, p99_ms, max_ms, readings_per_s (= load_readings_per_s,
the rate actually posted during the measurement) and the rest.
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
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
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

PROBE_PREFIX = "probe-"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=int, default=5_000, help="background readings per second")
    parser.add_argument("--batch-size", type=int, default=500, help="readings per request")
    parser.add_argument("--sensors", type=int, default=1_000, help="background sensors")
    parser.add_argument("--duration", type=float, default=90.0, help="seconds of measurement")
    parser.add_argument("--warmup", type=float, default=10.0, help="seconds of load before the first probe")
    parser.add_argument("--probe-every", type=float, default=0.5, help="seconds between breaching readings")
    parser.add_argument("--clients", type=int, default=4, help="concurrent HTTP clients")
    parser.add_argument("--web-workers", type=int, default=2, help="gunicorn worker processes")
    parser.add_argument("--worker-concurrency", type=int, default=3, help="processes of the Celery worker")
    parser.add_argument(
        "--alerts-worker", type=int, default=0, help="processes of an extra worker on the alerts queue only (0: none)"
    )
    add_database_arguments(parser, database="telemetry_bench_alerts", redis_db=13)
    parser.add_argument("--port", type=int, default=8766)
    return parser.parse_args()


def setup_environment(args: argparse.Namespace) -> dict[str, str]:
    # The receiver runs in this process, on this machine: outside the public addresses webhooks go to.
    return bench_environment(
        db_url_base=args.db_url_base,
        database=args.database,
        redis_url=args.redis_url,
        WEBHOOK_ALLOWED_NETWORKS="127.0.0.1/32",
    )


def prepare_world(args: argparse.Namespace, probes: int, webhook_url: str) -> tuple[list[str], list[str], str]:
    """Background sensor keys, probe sensor keys (one per breach, so each opens its own alert), an admin
    token; a threshold on the type and one webhook subscription. Empties readings and alerting tables."""
    import django

    django.setup()

    from apps.accounts.roles import Role
    from apps.accounts.services import user_set_role
    from apps.devices.models import Sensor
    from apps.devices.services import device_create
    from apps.notifications.models import Subscription
    from apps.thresholds.models import Threshold

    run_tables_empty("alerts_alertevent", "notifications_notification", "notifications_subscription")
    sensor_type = dc_voltage_type()
    Threshold.objects.update_or_create(
        sensor_type=sensor_type,
        name="default",
        defaults={
            "warning_low": 650,
            "warning_high": 800,
            "critical_low": 600,
            "critical_high": 850,
            "hysteresis": 5,
            "min_duration_s": 0,
            "enabled": True,
        },
    )

    def ensure(prefix: str, count: int) -> list[str]:
        existing = set(
            Sensor.objects.filter(key__startswith=prefix, sensor_type=sensor_type).values_list("key", flat=True)
        )
        keys = []
        for number in range(count):
            key = f"{prefix}{number:05d}/voltage_dc"
            if key not in existing:
                device, _ = device_create(device_id=f"{prefix}{number:05d}")
                Sensor.objects.create(device=device, sensor_type=sensor_type, key=key)
            keys.append(key)
        return keys

    background = ensure("alertbench-", args.sensors)
    probe_keys = ensure(PROBE_PREFIX, probes)
    Subscription.objects.create(
        name="bench webhook",
        channels=[{"type": "webhook", "target": webhook_url}],
        secret="bench-webhook-secret-0123456789",
        notify_on_resolve=False,
        storm_limit=0,
    )
    _, token = user_set_role(username="bench", role=Role.ADMIN)
    return background, probe_keys, token


class WebhookReceiver:
    """Records when each alert's opening arrives, by sensor key."""

    def __init__(self) -> None:
        self.arrivals: dict[str, float] = {}
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):  # noqa: N802 (the name http.server calls)
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                arrived = time.time()
                try:
                    sensor = json.loads(body)["alert"]["sensor"]
                except (ValueError, KeyError, TypeError):
                    sensor = None
                if sensor:
                    with receiver.lock:
                        receiver.arrivals.setdefault(sensor, arrived)
                self.send_response(204)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}/alerts"


def start_stack(args: argparse.Namespace, env: dict[str, str], log_dir: Path) -> Stack:
    import redis

    redis.Redis.from_url(args.redis_url).flushdb()
    stack = Stack(env, log_dir, "bench-alerts")
    stack.web(args.port, args.web_workers)
    stack.worker("main", "ingest,alerts,default", args.worker_concurrency)
    if args.alerts_worker:
        stack.worker("alerts", "alerts", args.alerts_worker)
    stack.wait_for_workers(2 if args.alerts_worker else 1)
    return stack


def iso_now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def run_load(
    args: argparse.Namespace, background: list[str], probe_keys: list[str], token: str
) -> tuple[dict[str, float], int, float, float, list[str]]:
    """Post batches on a fixed schedule from `clients` threads; a probe joins the first batch posted at or
    after its time. Returns probe send times by sensor, readings posted during the measurement, its start and
    end, and errors."""
    import orjson

    batches_per_s = args.rate / args.batch_size
    interval = 1.0 / batches_per_s
    start = time.time() + 0.5
    measure_from = start + args.warmup
    end = measure_from + args.duration
    probe_times = [measure_from + i * args.probe_every for i in range(len(probe_keys))]
    sent_at: dict[str, float] = {}
    errors: list[str] = []
    measured_readings = 0
    lock = threading.Lock()
    next_slot = iter(range(10**9))
    next_probe = 0
    rng = random.Random(7)
    headers = {"Authorization": f"Token {token}", "Content-Type": "application/json"}

    def client() -> None:
        nonlocal measured_readings, next_probe
        connection = http.client.HTTPConnection("127.0.0.1", args.port, timeout=60)
        while True:
            with lock:
                slot = next(next_slot)
            due = start + slot * interval
            if due >= end:
                return
            delay = due - time.time()
            if delay > 0:
                time.sleep(delay)
            offset = (slot * args.batch_size) % len(background)
            ts = iso_now()
            items = [
                {
                    "sensor": background[(offset + i) % len(background)],
                    "ts": ts,
                    "value": round(700 + rng.random() * 90, 2),
                }
                for i in range(args.batch_size)
            ]
            probe = None
            with lock:
                if next_probe < len(probe_keys) and time.time() >= probe_times[next_probe]:
                    probe = probe_keys[next_probe]
                    next_probe += 1
            if probe:
                items.append({"sensor": probe, "ts": ts, "value": 900.0})
            body = orjson.dumps(items)
            posted = time.time()
            try:
                connection.request("POST", "/api/v1/ingest/", body=body, headers=headers)
                response = connection.getresponse()
                payload = response.read()
            except OSError as exc:
                errors.append(f"{type(exc).__name__}: {exc}")
                connection = http.client.HTTPConnection("127.0.0.1", args.port, timeout=60)
                continue
            if response.status != 202:
                errors.append(f"{response.status}: {payload[:200]!r}")
                continue
            with lock:
                if probe:
                    sent_at[probe] = posted
                if measure_from <= posted < end:
                    measured_readings += len(items)

    threads = [threading.Thread(target=client) for _ in range(args.clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sent_at, measured_readings, measure_from, end, errors


def percentile(sorted_values: list[float], fraction: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, int(len(sorted_values) * fraction))]


def main() -> None:
    args = parse_args()
    env = setup_environment(args)
    create_database(args.db_url_base, args.database, env)
    receiver = WebhookReceiver()
    probes = int(args.duration / args.probe_every)
    background, probe_keys, token = prepare_world(args, probes, receiver.url)
    print(
        f"load: {args.rate:,} readings/s in batches of {args.batch_size} over {len(background):,} sensors, "
        f"{args.clients} clients; {probes} breaching readings, one every {args.probe_every} s after {args.warmup} s"
    )

    log_dir = Path(os.environ.get("BENCH_LOG_DIR", "/tmp"))
    # The machine may be shared: the load before and after says how much else was running.
    load_before = os.getloadavg()[0]
    stack = start_stack(args, env, log_dir)
    try:
        sent_at, measured_readings, measure_from, end, errors = run_load(args, background, probe_keys, token)
        deadline = time.time() + 30
        while time.time() < deadline and len(receiver.arrivals) < len(sent_at):
            time.sleep(0.2)
    finally:
        stack.stop()
        receiver.server.shutdown()

    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*), count(*) FILTER (WHERE evaluated_at IS NULL) FROM ingest_ingestbatch")
        batches, unevaluated = cursor.fetchone()
        cursor.execute("SELECT count(*) FROM alerts_alert")
        alerts = cursor.fetchone()[0]
        cursor.execute("SELECT status, count(*) FROM notifications_notification GROUP BY status")
        notifications = dict(cursor.fetchall())

    latencies = sorted(
        (receiver.arrivals[key] - sent) * 1000 for key, sent in sent_at.items() if key in receiver.arrivals
    )
    missing = len(sent_at) - len(latencies)
    if errors:
        print(f"{len(errors)} ingest request(s) failed, e.g. {errors[:3]}")
    if not latencies:
        raise SystemExit("no webhook arrived; see the logs in " + str(log_dir))
    rate = measured_readings / (end - measure_from)
    p50, p95, p99 = (percentile(latencies, f) for f in (0.50, 0.95, 0.99))
    print(
        f"measured {end - measure_from:.0f} s at {rate:,.0f} readings/s posted; {len(latencies)} of {len(sent_at)} "
        f"breaches notified ({missing} missing); {batches:,} batches ({unevaluated} not evaluated), {alerts} alerts, "
        f"notifications {notifications}"
    )
    print(
        f"breach → webhook: p50 {p50:.0f} ms, p95 {p95:.0f} ms, p99 {p99:.0f} ms, max {latencies[-1]:.0f} ms, "
        f"mean {statistics.fmean(latencies):.0f} ms"
    )
    result = {
        "p50_ms": round(p50, 1),
        "p95_ms": round(p95, 1),
        "p99_ms": round(p99, 1),
        "max_ms": round(latencies[-1], 1),
        "readings_per_s": round(rate),
        "load_readings_per_s": round(rate),
        "target_readings_per_s": args.rate,
        "breaches": len(sent_at),
        "notified": len(latencies),
        "missing": missing,
        "batch_size": args.batch_size,
        "sensors": len(background),
        "web_workers": args.web_workers,
        "worker_concurrency": args.worker_concurrency,
        "alerts_worker": args.alerts_worker,
        "ingest_errors": len(errors),
        "cpus": os.cpu_count(),
        "loadavg_before": round(load_before, 2),
        "loadavg_after": round(os.getloadavg()[0], 2),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
