"""MQTT end to end: signed datagrams of 10 readings from many devices, published with QoS 1 to a Mosquitto run
with the project's configuration (authenticated: dynamic security, an account per device) on a free port,
consumed by one or more bridges (MQTT 5 shared subscription), stored and evaluated by a real Celery worker in
a database of the benchmark's own. Waits until every reading is stored and every batch evaluated.

    .venv/bin/python bench/mqtt.py                        # 100 devices x 200 datagrams x 10 readings, 2 bridges
    .venv/bin/python bench/mqtt.py --devices 50 --datagrams 400 --bridges 1

The last line is JSON: readings_per_s (first publish to last batch evaluated), lost, doubled, evaluated.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.harness import (  # noqa: E402
    Stack,
    add_database_arguments,
    bench_environment,
    create_database,
    dc_voltage_type,
    run_tables_empty,
)

ADMIN, BACKEND = "bench-admin", "bench-backend"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--devices", type=int, default=100)
    parser.add_argument("--datagrams", type=int, default=200, help="per device")
    parser.add_argument("--bridges", type=int, default=2)
    parser.add_argument("--publishers", type=int, default=4, help="publishing processes")
    parser.add_argument("--worker-concurrency", type=int, default=2)
    add_database_arguments(parser, database="telemetry_bench_mqtt", redis_db=13)
    parser.add_argument("--timeout", type=float, default=600)
    return parser.parse_args()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_broker(directory: Path, port: int, admin_password: str) -> subprocess.Popen:
    from apps.mqtt import mosquitto

    config = mosquitto.render_config(directory=directory, port=port)
    mosquitto.init_accounts(directory=directory, admin_username=ADMIN, admin_password=admin_password)
    log = open(directory / "mosquitto.log", "wb")  # noqa: SIM115 (the broker writes to it until stopped)
    process = subprocess.Popen(["mosquitto", "-c", str(config)], stdout=log, stderr=subprocess.STDOUT)
    time.sleep(1.0)
    if process.poll() is not None:
        raise SystemExit((directory / "mosquitto.log").read_text())
    return process


def prepare_devices(count: int) -> list[tuple[str, str]]:
    """(device id, signing secret) for `count` devices with one DC voltage sensor each; readings emptied."""
    import django

    django.setup()

    from apps.devices.keys import hash_ingest_key
    from apps.devices.models import Device, Sensor
    from apps.devices.services import device_create, device_rotate_key
    from apps.thresholds.models import Threshold

    run_tables_empty()
    sensor_type = dc_voltage_type()
    Threshold.objects.update_or_create(
        sensor_type=sensor_type, name="default", defaults={"warning_high": 790, "critical_high": 798, "hysteresis": 2}
    )
    devices = []
    for number in range(count):
        device_id = f"mqtt-bench-{number:04d}"
        device = Device.objects.filter(device_id=device_id).first()
        if device is None:
            device, key = device_create(device_id=device_id)
            Sensor.objects.create(device=device, sensor_type=sensor_type, key=f"{device_id}/voltage_dc")
        else:
            key = device_rotate_key(device=device)
        devices.append((device_id, hash_ingest_key(key)))
    Device.objects.filter(device_id__startswith="mqtt-bench-").update(
        last_seq=None, seq_gaps=0, connection_status="unknown"
    )
    return devices


def publish(job: tuple) -> int:
    """One publishing process: a client per device (its own broker account), every datagram signed up front,
        then published with QoS 1 as fast as the acknowledgements allow. Returns the datagrams acknowledged and
    when publishing began and the last acknowledgement came."""
    import paho.mqtt.client as mqtt

    from apps.mqtt import topics
    from apps.mqtt.signing import iso, mqtt_password, signed_message

    host, port, root, devices, datagrams, start_ts, go_at = job
    clients, payloads = [], []
    for device_id, secret in devices:
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"pub-{device_id}", protocol=mqtt.MQTTv5)
        client.username_pw_set(device_id, mqtt_password(secret))
        client.max_inflight_messages_set(200)
        client.max_queued_messages_set(0)
        client.connect(host, port)
        client.loop_start()
        clients.append(client)
        boot = secrets.token_hex(4)
        messages = []
        for seq in range(datagrams):
            base = start_ts + timedelta(seconds=seq)
            measurements = [
                {
                    "type": "voltage_dc",
                    "val": 700 + (seq * 10 + i) % 80,
                    "unit": "V",
                    "ts": iso(base + timedelta(milliseconds=100 * i)),
                }
                for i in range(10)
            ]
            message = {
                "device_id": device_id,
                "ts": iso(base),
                "seq": seq + 1,
                "msg_type": "telemetry",
                "measurements": measurements,
            }
            messages.append(
                signed_message(message, secret, kind="telemetry", ts=iso(datetime.now(UTC)), nonce=f"{boot}-{seq}")
            )
        payloads.append((topics.device_topic(root, device_id, "telemetry"), messages))
    while time.time() < go_at:
        time.sleep(0.01)
    began = time.time()
    infos = []
    for index in range(datagrams):
        for client, (topic, messages) in zip(clients, payloads, strict=True):
            infos.append(client.publish(topic, messages[index], qos=1))
    for info in infos:
        info.wait_for_publish(timeout=120)
    acked = sum(1 for info in infos if info.is_published())
    ended = time.time()
    for client in clients:
        client.disconnect()
        client.loop_stop()
    return acked, began, ended


def counts(prefix: str) -> tuple[int, int, int]:
    """(readings stored, batches not yet done and evaluated, duplicates reported) for the benchmark's devices."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM ingest_reading r JOIN devices_sensor s ON s.id = r.sensor_id WHERE s.key LIKE %s",
            [prefix + "%"],
        )
        stored = cursor.fetchone()[0]
        cursor.execute(
            "SELECT count(*) FILTER (WHERE status <> 'done' OR evaluated_at IS NULL), coalesce(sum(duplicates), 0)"
            " FROM ingest_ingestbatch"
        )
        pending, duplicates = cursor.fetchone()
    return stored, pending, int(duplicates)


def main() -> None:
    args = parse_args()
    admin_password, backend_password = secrets.token_urlsafe(16), secrets.token_urlsafe(16)
    port = free_port()
    root = f"bench-{secrets.token_hex(3)}"
    env = bench_environment(
        db_url_base=args.db_url_base,
        database=args.database,
        redis_url=args.redis_url,
        MQTT_BROKER_URL=f"mqtt://127.0.0.1:{port}",
        MQTT_USERNAME=BACKEND,
        MQTT_PASSWORD=backend_password,
        MQTT_ADMIN_USERNAME=ADMIN,
        MQTT_ADMIN_PASSWORD=admin_password,
        MQTT_TOPIC_ROOT=root,
        MQTT_SHARED_GROUP="bench" if args.bridges > 1 else "",
    )
    create_database(args.db_url_base, args.database, env)
    directory = Path(tempfile.mkdtemp(prefix="bench-mqtt-"))
    broker = start_broker(directory, port, admin_password)
    stack = Stack(env, directory, "bench-mqtt")
    try:
        import redis

        redis.Redis.from_url(args.redis_url).flushdb()
        devices = prepare_devices(args.devices)
        from dataclasses import replace

        from apps.mqtt.broker_accounts import Dynsec, broker_accounts_reconcile
        from apps.mqtt.config import broker_config

        with Dynsec(replace(broker_config(), username=ADMIN, password=admin_password)) as dynsec:
            broker_accounts_reconcile(dynsec=dynsec)
        stack.worker("worker", "ingest,alerts", args.worker_concurrency)
        for number in range(args.bridges):
            stack.spawn(
                f"bridge-{number}",
                [sys.executable, "manage.py", "mqtt_bridge", "--client-id", f"bench-bridge-{number}"],
            )
        stack.wait_for_workers(1)
        time.sleep(3)  # the bridges subscribe
        expected = args.devices * args.datagrams * 10
        start_ts = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=args.datagrams + 3600)
        chunks = [devices[i :: args.publishers] for i in range(args.publishers)]
        go_at = time.time() + 5 + args.devices * args.datagrams / 20000
        jobs = [("127.0.0.1", port, root, chunk, args.datagrams, start_ts, go_at) for chunk in chunks if chunk]
        with multiprocessing.get_context("spawn").Pool(len(jobs)) as pool:
            result = pool.map_async(publish, jobs)
            while time.time() < go_at:
                time.sleep(0.01)
            results = result.get(timeout=args.timeout)
        acked = sum(count for count, _, _ in results)
        # From the first publish, not from the pool's start: connecting and signing up front are not counted.
        started = min(began for _, began, _ in results)
        published_s = max(ended for _, _, ended in results) - started
        print(f"published {acked:,} datagrams ({acked * 10:,} readings) in {published_s:.1f} s")
        deadline = time.monotonic() + args.timeout
        last_stored, stalled_since = -1, time.monotonic()
        while True:
            stored, pending, duplicates = counts("mqtt-bench-")
            if stored == expected and pending == 0:
                break
            if stored != last_stored:
                last_stored, stalled_since = stored, time.monotonic()
            if time.monotonic() > deadline or time.monotonic() - stalled_since > 60:
                break
            time.sleep(0.2)
        # The end is the last batch's evaluation as the database recorded it (the same clock as the publishers'),
        # not when this loop saw it: the publishing processes may take a while to wind down.
        from django.db import connection

        with connection.cursor() as cursor:
            cursor.execute("SELECT extract(epoch FROM max(evaluated_at)) FROM ingest_ingestbatch")
            (last_evaluated,) = cursor.fetchone()
        elapsed = (float(last_evaluated) if last_evaluated else time.time()) - started
        load = os.getloadavg()
        line = {
            "devices": args.devices,
            "datagrams": args.devices * args.datagrams,
            "readings": expected,
            "bridges": args.bridges,
            "worker_concurrency": args.worker_concurrency,
            "acknowledged": acked,
            "stored": stored,
            "lost": expected - stored,
            "doubled": duplicates,
            "evaluated": pending == 0,
            "published_s": round(published_s, 2),
            "elapsed_s": round(elapsed, 2),
            "publish_rate_readings_per_s": round(acked * 10 / published_s),
            "readings_per_s": round(stored / elapsed),
            "load_average": [round(value, 2) for value in load],
            "cpus": os.cpu_count(),
        }
        print(
            f"{stored:,} of {expected:,} readings stored and evaluated in {elapsed:.1f} s: {line['readings_per_s']:,}/s"
        )
        print(json.dumps(line))
    finally:
        stack.stop()
        broker.terminate()
        broker.wait(timeout=20)


if __name__ == "__main__":
    main()
