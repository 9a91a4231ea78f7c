"""InfluxDB line protocol benchmark: the parser alone, then writes through POST /api/v2/write in-process.

    .venv/bin/python bench/influx_write.py                    # defaults: 30 requests of 1,000 lines, 3 fields each
    .venv/bin/python bench/influx_write.py --requests 100 --lines 5000

It prints, in order:
1. the parser (apps/influx/lineprotocol.py) in µs per line and per field, best of several rounds, on four kinds
   of lines: Telegraf Modbus-style lines (4 tags, 3 fields: the plain path), one-field lines, OPC UA-style lines
   with an escaped node id tag (the backslash path), and the same with OPC UA's string field Quality (the
   escape-aware scanner); and line-protocol-parser (a C extension on PyPI) on the same lines when it is
   installed, for comparison;
2. parsing and mapping together (apps/influx/mapping.normalize_lines), µs per line and per reading;
3. the endpoint through Django's test client (no HTTP server, no network) on a database of its own (default
   `telemetry_bench_influx`, created and migrated here) and Redis database 14 (its `ingest` queue is emptied
   after the run): lines/s and readings/s to the batch committed and queued, taking turns with the JSON ingest
   endpoint on the same readings as flat records (for comparison); then the line protocol batches stored by the
   worker's function (`batch_process`, in this process), and both together: lines/s to rows committed.
Its last line is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import time
from collections import deque
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.harness import add_database_arguments, bench_environment, create_database, run_tables_empty  # noqa: E402

ROUNDS = 15


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=30)
    parser.add_argument("--lines", type=int, default=1_000, help="lines per request (Telegraf's metric_batch_size)")
    parser.add_argument("--devices", type=int, default=200)
    add_database_arguments(parser, database="telemetry_bench_influx", redis_db=14)
    parser.add_argument(
        "--parser-only", action="store_true", help="measure the parser and the mapping only (no database, no Django)"
    )
    return parser.parse_args()


def setup_environment(args: argparse.Namespace) -> dict[str, str]:
    return bench_environment(
        db_url_base=args.db_url_base,
        database=args.database,
        redis_url=args.redis_url,
        THROTTLE_INGEST_READINGS_RATE="off",
        THROTTLE_TOKEN_RATE="off",
    )


def sample_lines(count: int, base_s: int) -> dict[str, tuple[str, int]]:
    """Three bodies of `count` lines each, with their fields per line."""
    modbus = "\n".join(
        f"modbus,device=bench-{n % 200:05d},host=gw-1,slave_id=1,type=holding_register "
        f"voltage_dc={700 + n % 80}.5,current_dc={n % 20}.25,temperature={n % 60}i {(base_s + n) * 10**9}"
        for n in range(count)
    )
    single = "\n".join(
        f"env,device=bench-{n % 200:05d} temperature={n % 60}.5 {(base_s + n) * 10**9}" for n in range(count)
    )
    opcua = "\n".join(
        f"opcua,device=bench-{n % 200:05d},id=ns\\=2;s\\=Meter{n % 200}.Voltage voltage_dc={700 + n % 80}.5 "
        f"{(base_s + n) * 10**9}"
        for n in range(count)
    )
    quality = "\n".join(
        f"opcua,device=bench-{n % 200:05d},id=ns\\=2;s\\=Meter{n % 200}.Voltage voltage_dc={700 + n % 80}.5,"
        f'Quality="OK (0x0)" {(base_s + n) * 10**9}'
        for n in range(count)
    )
    return {
        "modbus (4 tags, 3 fields)": (modbus, 3),
        "one field": (single, 1),
        "opcua (escaped node id)": (opcua, 1),
        "opcua with a string field": (quality, 2),
    }


def best_of(function) -> float:
    """The best of ROUNDS runs, with the garbage collector paused as timeit does: the least disturbed figure on a
    machine shared with other work."""
    best = float("inf")
    gc.disable()
    try:
        for _ in range(ROUNDS):
            started = time.perf_counter()
            function()
            best = min(best, time.perf_counter() - started)
    finally:
        gc.enable()
    return best


def measure_parser(count: int) -> dict[str, dict[str, float]]:
    from apps.influx.lineprotocol import parse_lines
    from apps.influx.mapping import normalize_lines

    try:
        from line_protocol_parser import parse_line as c_parse_line
    except ImportError:
        c_parse_line = None
    now = datetime.now(UTC)
    results: dict[str, dict[str, float]] = {}
    for name, (text, fields) in sample_lines(count, int(now.timestamp()) - count - 60).items():
        # Consumed without keeping the points, as the mapping does (a list of them all would time the GC too).
        ours = best_of(lambda text=text: deque(parse_lines(text), maxlen=0))
        mapped = best_of(
            lambda text=text: normalize_lines(
                text, precision="ns", received_at=now, sender_device_id=None, device_tag="device",
                max_readings=10**9, max_future_skew_s=300,
            )
        )  # fmt: skip
        row = {
            "parse_us_per_line": round(ours / count * 1e6, 2),
            "parse_us_per_field": round(ours / count / fields * 1e6, 2),
            "parse_and_map_us_per_line": round(mapped / count * 1e6, 2),
            "parse_and_map_us_per_reading": round(mapped / count / fields * 1e6, 2),
        }
        if c_parse_line is not None:
            c_time = best_of(lambda text=text: deque(map(c_parse_line, text.split("\n")), maxlen=0))
            row["c_extension_parse_us_per_line"] = round(c_time / count * 1e6, 2)
        results[name] = row
        print(f"{name:28s} " + "  ".join(f"{key} {value}" for key, value in row.items()))
    return results


def prepare_world(args: argparse.Namespace) -> str:
    """Devices bench-NNNNN with voltage_dc, current_dc and temperature sensors, and an admin token; empties the
    readings tables so every run starts equal."""
    import django

    django.setup()

    from apps.accounts.roles import Role
    from apps.accounts.services import user_set_role
    from apps.devices.models import Device, Sensor, SensorType
    from apps.devices.services import device_create

    run_tables_empty()
    types = []
    for code, low, high in (("voltage_dc", 0, 1500), ("current_dc", -500, 500), ("temperature", -50, 150)):
        sensor_type, _ = SensorType.objects.get_or_create(
            code=code, defaults={"name": code, "plausible_min": low, "plausible_max": high}
        )
        types.append(sensor_type)
    for number in range(args.devices):
        device_id = f"bench-{number:05d}"
        device = Device.objects.filter(device_id=device_id).first() or device_create(device_id=device_id)[0]
        for sensor_type in types:
            Sensor.objects.get_or_create(
                device=device, sensor_type=sensor_type, channel="", defaults={"key": f"{device_id}/{sensor_type.code}"}
            )
    _, token = user_set_role(username="bench", role=Role.ADMIN)
    return token


def measure_endpoint(args: argparse.Namespace, token: str) -> dict[str, float]:
    import orjson
    from django.test import Client

    from apps.ingest.models import IngestBatch
    from apps.ingest.pipeline import batch_process

    client = Client(HTTP_AUTHORIZATION=f"Token {token}")
    start_s = int(time.time()) - args.requests * args.lines // args.devices - 3600
    bodies, flat_bodies = [], []
    for request in range(args.requests):
        lines, records = [], []
        for n in range(args.lines):
            position = request * args.lines + n
            device, stamp = f"bench-{position % args.devices:05d}", start_s + position // args.devices
            voltage, current, temperature = 700 + position % 80 + 0.5, position % 20 + 0.25, position % 60
            lines.append(
                f"modbus,device={device},host=gw-1,slave_id=1 voltage_dc={voltage},current_dc={current},"
                f"temperature={temperature}i {stamp}"
            )
            records.append(
                {
                    "device_id": device,
                    "ts": stamp,
                    "voltage_dc": voltage,
                    "current_dc": current,
                    "temperature": temperature,
                }
            )
        bodies.append("\n".join(lines).encode())
        flat_bodies.append(orjson.dumps(records))

    def post(path: str, payload: bytes, content_type: str, expected: int) -> tuple[float, str]:
        started = time.perf_counter()
        response = client.generic("POST", path, payload, content_type=content_type)
        elapsed = time.perf_counter() - started
        assert response.status_code == expected, response.content
        return elapsed, response.headers.get("Location", "")

    # One request each first, not counted: the first request of a process imports and builds what the rest reuse.
    warm_up = "\n".join(line.replace("modbus,", "warmup,") for line in bodies[0].decode().split("\n")[:10])
    post("/api/v2/write?org=plant&bucket=bench&precision=s", warm_up.encode(), "text/plain", 204)
    post("/api/v1/ingest/", orjson.dumps(orjson.loads(flat_bodies[0])[:10]), "application/json", 202)
    # The two endpoints take turns, so a change in the machine's load falls on both alike.
    line_seconds, json_seconds, batch_ids = 0.0, 0.0, []
    for body, flat_body in zip(bodies, flat_bodies, strict=True):
        elapsed, location = post("/api/v2/write?org=plant&bucket=bench&precision=s", body, "text/plain", 204)
        line_seconds += elapsed
        batch_ids.append(location.rstrip("/").rsplit("/", 1)[-1])
        json_seconds += post("/api/v1/ingest/", flat_body, "application/json", 202)[0]
    lines = args.requests * args.lines
    readings = lines * 3
    started = time.perf_counter()
    for batch_id in batch_ids:
        batch_process(batch_id=batch_id)
    storing = time.perf_counter() - started
    stored = sum(IngestBatch.objects.filter(pk__in=batch_ids).values_list("stored", flat=True))
    assert stored == readings, f"stored {stored} of {readings}"
    result = {
        "lines": lines,
        "readings": readings,
        "endpoint_lines_per_s_to_batch": round(lines / line_seconds),
        "endpoint_readings_per_s_to_batch": round(readings / line_seconds),
        "json_endpoint_readings_per_s_to_batch": round(readings / json_seconds),
        "batch_process_readings_per_s": round(readings / storing),
        "endpoint_and_storing_lines_per_s": round(lines / (line_seconds + storing)),
        "endpoint_and_storing_readings_per_s": round(readings / (line_seconds + storing)),
    }
    for key, value in result.items():
        print(f"{key:40s} {value}")
    return result


def main() -> None:
    args = parse_args()
    if args.parser_only:
        print(json.dumps({"parser": measure_parser(args.lines * 10)}))
        return
    env = setup_environment(args)
    create_database(args.db_url_base, args.database, env)
    token = prepare_world(args)
    try:
        figures = {"parser": measure_parser(args.lines * 10), "endpoint": measure_endpoint(args, token)}
    finally:
        purge_ingest_queue()
    print(json.dumps(figures))


def purge_ingest_queue() -> None:
    """The batches were stored here, so the tasks they queued (no worker runs) are dropped."""
    from workers.celery import app

    with app.connection_for_write() as connection:
        connection.default_channel.queue_purge("ingest")


if __name__ == "__main__":
    main()
