"""Sparkplug B path benchmark: what one bridge does with edge node data, in-process, without the network.

    .venv/bin/python bench/sparkplug.py                         # 20 devices, 2,000 DDATA of 10 metrics each
    .venv/bin/python bench/sparkplug.py --messages 5000 --metrics 20

Births for the devices (auto-provisioned, ten mapped metrics each), then DDATA messages taken the way the bridge
takes them: decoded, sequence-checked and mapped (apps.sparkplug.host.message_route, one transaction per
message for the node's seq), then stored as ingest batches of the bridge's micro-batch size
(apps.mqtt.services.telemetry_store: committed and queued; the worker's storing is measured by bench/ingest.py).
On a database of its own (default `telemetry_bench_sparkplug`, created fresh) and Redis database 14 (its ingest
queue emptied after). Its last line is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.harness import add_database_arguments, bench_environment, create_database  # noqa: E402


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", type=int, default=20)
    parser.add_argument("--messages", type=int, default=2_000)
    parser.add_argument("--metrics", type=int, default=10, help="metrics per DDATA (at most 10 are mapped)")
    parser.add_argument("--batch", type=int, default=500, help="readings per ingest batch (MQTT_BATCH_MAX_READINGS)")
    add_database_arguments(parser, database="telemetry_bench_sparkplug", redis_db=14)
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    env = bench_environment(
        db_url_base=args.db_url_base,
        database=args.database,
        redis_url=args.redis_url,
        SPARKPLUG_ENABLED="true",
        SPARKPLUG_AUTO_PROVISION="true",
    )
    create_database(args.db_url_base, args.database, env, fresh=True)

    import django

    django.setup()
    import redis
    from django.utils import timezone

    from apps.devices.models import SensorType
    from apps.mqtt.messages import Inbound
    from apps.mqtt.services import telemetry_store
    from apps.sparkplug import host, payloads
    from apps.sparkplug.sparkplug_b_pb2 import Payload

    codes = [f"bench_{n}" for n in range(10)]
    for code in codes:
        SensorType.objects.get_or_create(code=code, defaults={"name": code})

    seq = 0

    def message(message_type: str, device: str, metrics) -> Inbound:
        nonlocal seq
        payload = Payload(timestamp=payloads.now_ms(), seq=seq)
        seq = (seq + 1) % 256
        for metric in metrics:
            payload.metrics.add(**metric)
        topic = payloads.topic_for("bench", message_type, "edge", device)
        return Inbound(
            topic=topic, device_id="", kind=host.KIND, payload=payload.SerializeToString(), received_at=timezone.now()
        )

    seq = 0
    nbirth = message(payloads.NBIRTH, "", [{"name": "bdSeq", "datatype": 8, "long_value": 0}])
    host.message_route(nbirth, client=None)
    devices = [f"d{n}" for n in range(args.devices)]
    for device in devices:
        metrics = [
            {
                "name": f"Line/{codes[n % 10]}" if n < 10 else f"Extra/{n}",
                "alias": n + 1,
                "datatype": 10,
                "double_value": 0.0,
            }
            for n in range(args.metrics)
        ]
        host.message_route(message(payloads.DBIRTH, device, metrics), client=None)

    base_ms = payloads.now_ms() - args.messages * 1000
    inbound = [
        message(
            payloads.DDATA,
            devices[n % len(devices)],
            [
                {"alias": m + 1, "datatype": 10, "double_value": float(n + m), "timestamp": base_ms + n * 1000}
                for m in range(args.metrics)
            ],
        )
        for n in range(args.messages)
    ]
    started = time.perf_counter()
    pending, readings, stored_readings = [], 0, 0
    for item in inbound:
        checked = host.message_route(item, client=None)
        pending.append(checked)
        readings += len(checked.readings)
        if readings >= args.batch:
            telemetry_store(pending)
            stored_readings += readings
            pending, readings = [], 0
    if pending:
        telemetry_store(pending)
        stored_readings += readings
    seconds = time.perf_counter() - started
    redis.Redis.from_url(args.redis_url).delete("ingest")
    metrics_sent = args.messages * args.metrics
    result = {
        "benchmark": "sparkplug",
        "messages": args.messages,
        "metrics_per_message": args.metrics,
        "metrics": metrics_sent,
        "readings_batched": stored_readings,
        "seconds": round(seconds, 3),
        "messages_per_s": round(args.messages / seconds),
        "metrics_per_s": round(metrics_sent / seconds),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
