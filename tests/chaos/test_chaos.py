"""Chaos: services fail while devices send, and every reading is counted afterwards: none lost, none doubled.

Each test breaks a service of the module's own stack (tests/chaos/stack.py: a private PostgreSQL, Redis and
Mosquitto, gunicorn, a Celery worker and the MQTT bridge as subprocesses), never the shared ones. Devices
behave as real ones do: an HTTP request that fails is sent again until it is accepted; MQTT messages are
published with QoS 1 and the broker keeps them for the bridge's persistent session.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from tests.chaos.conftest import Counts
from tests.chaos.stack import MqttDevice, Stack, run_in_threads

pytestmark = pytest.mark.chaos


def timestamps(hours_ago: int, count: int) -> list[str]:
    """`count` distinct timestamps a millisecond apart, starting `hours_ago` hours back (each test its own)."""
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=hours_ago)
    return [(start + timedelta(milliseconds=n)).isoformat().replace("+00:00", "Z") for n in range(count)]


class HttpStream:
    """One device sending `batches` batches of `per_batch` readings of one sensor, `pause_s` apart."""

    def __init__(self, stack: Stack, device_id: str, sensor: str, *, hours_ago: int, batches: int, per_batch: int,
                 pause_s: float = 0.0) -> None:  # fmt: skip
        self.stack, self.device_id, self.sensor = stack, device_id, sensor
        self.batches = [
            [{"sensor": sensor, "ts": ts, "value": float(n % 50)} for n, ts in enumerate(chunk)]
            for chunk in _chunks(timestamps(hours_ago, batches * per_batch), per_batch)
        ]
        self.pause_s = pause_s
        self.accepted = 0
        self.retried = 0
        self.progress = threading.Condition()

    @property
    def sent(self) -> int:
        return sum(len(batch) for batch in self.batches)

    def run(self) -> None:
        for batch in self.batches:
            self.retried += self.stack.post(self.device_id, batch) - 1
            with self.progress:
                self.accepted += 1
                self.progress.notify_all()
            time.sleep(self.pause_s)

    def wait_for(self, accepted: int) -> None:
        with self.progress:
            assert self.progress.wait_for(lambda: self.accepted >= accepted, timeout=60), "the stream stalled"


class MqttStream:
    """One device publishing `datagrams` datagrams of `per_datagram` readings of one sensor type, numbered
    from `first_seq` (a device's repeated seq is a duplicate datagram: each stream numbers its own)."""

    def __init__(self, stack: Stack, device_id: str, type_code: str, *, hours_ago: int, datagrams: int,
                 per_datagram: int, pause_s: float, first_seq: int) -> None:  # fmt: skip
        self.device = MqttDevice(stack, device_id)
        self.first_seq = first_seq
        self.type_code = type_code
        self.datagrams = list(_chunks(timestamps(hours_ago, datagrams * per_datagram), per_datagram))
        self.pause_s = pause_s
        self.published = 0

    @property
    def sent(self) -> int:
        return sum(len(datagram) for datagram in self.datagrams)

    def run(self) -> None:
        try:
            for seq, datagram in enumerate(self.datagrams, start=self.first_seq):
                self.device.publish(seq, [(ts, self.type_code, 10.0 + n) for n, ts in enumerate(datagram)])
                self.published += 1
                time.sleep(self.pause_s)
        finally:
            self.device.close()


def _chunks(items: list, size: int) -> list[list]:
    return [items[start : start + size] for start in range(0, len(items), size)]


def settle_and_count(
    stack: Stack, name: str, sensors: list[str], sent: int, since: float, *, source: str = "http", retried: int = 0
) -> Counts:
    stack.wait_until_settled(sensors, sent)
    stored, distinct = stack.stored(sensors)
    return Counts(name, sent, stored, distinct, stack.batch_stored_total(since, source), retried)


def assert_every_reading_once(counts: Counts) -> None:
    assert (counts.lost, counts.doubled) == (0, 0), counts.line()
    assert counts.stored == counts.sent, counts.line()


def test_postgresql_restarted_during_a_stream_of_http_batches(stack, record_counts):
    since = time.time()
    stream = HttpStream(stack, "env-001", "env-001/temperature", hours_ago=10, batches=30, per_batch=50)

    def restart_midway() -> None:
        stream.wait_for(10)
        stack.postgres.restart(down_for=1.0)

    assert run_in_threads(stream.run, restart_midway) == []
    counts = record_counts(
        settle_and_count(
            stack, "PostgreSQL restart", ["env-001/temperature"], stream.sent, since, retried=stream.retried
        )
    )
    assert_every_reading_once(counts)


def test_redis_down_for_30_s_while_devices_send_over_http_and_mqtt(stack, record_counts):
    since = time.time()
    http = HttpStream(stack, "env-002", "env-002/temperature", hours_ago=9, batches=80, per_batch=20, pause_s=0.4)
    mqtt = MqttStream(
        stack, "dc-meter-001", "voltage_dc", hours_ago=9, datagrams=150, per_datagram=4, pause_s=0.2, first_seq=1
    )

    def outage() -> None:
        http.wait_for(5)
        stack.redis.stop()
        time.sleep(30)
        stack.redis.start()

    errors = run_in_threads(http.run, mqtt.run, outage)

    assert errors == []
    if stack.supervise_worker():
        print("Redis down 30 s: the worker exited when Redis went away and was started again")
    http_counts = record_counts(
        settle_and_count(
            stack, "Redis down 30 s (HTTP)", ["env-002/temperature"], http.sent, since, retried=http.retried
        )
    )
    mqtt_counts = record_counts(
        settle_and_count(stack, "Redis down 30 s (MQTT)", ["dc-meter-001/voltage_dc"], mqtt.sent, since, source="mqtt")
    )
    assert_every_reading_once(http_counts)
    assert_every_reading_once(mqtt_counts)


def test_the_mqtt_bridge_killed_with_sigkill_mid_stream(stack, record_counts):
    since = time.time()
    mqtt = MqttStream(
        stack, "dc-meter-001", "current_dc", hours_ago=8, datagrams=120, per_datagram=5, pause_s=0.03, first_seq=10_001
    )

    def kill_midway() -> None:
        while mqtt.published < 40:
            time.sleep(0.01)
        stack.kill_bridge()
        stack.start_bridge()

    errors = run_in_threads(mqtt.run, kill_midway)

    assert errors == []
    counts = record_counts(
        settle_and_count(stack, "bridge SIGKILL", ["dc-meter-001/current_dc"], mqtt.sent, since, source="mqtt")
    )
    assert_every_reading_once(counts)


def test_a_celery_worker_killed_with_sigkill_mid_batch(stack, record_counts):
    since = time.time()
    stream = HttpStream(stack, "env-001", "env-001/humidity", hours_ago=7, batches=10, per_batch=200)
    with psycopg.connect(stack.database_url) as blocker:
        # Hold back the latest-value upsert: the worker writes a batch's readings, then waits there.
        blocker.execute("LOCK TABLE ingest_latestreading IN EXCLUSIVE MODE")
        stream.run()

        def worker_is_mid_batch() -> bool:
            waiting = "SELECT count(*) FROM pg_locks WHERE NOT granted AND relation = 'ingest_latestreading'::regclass"
            return blocker.execute(waiting).fetchone()[0] > 0

        deadline = time.monotonic() + 30
        while not worker_is_mid_batch():
            assert time.monotonic() < deadline, stack.logs()
            time.sleep(0.05)
        stack.kill_worker()  # the whole worker: main process and pool
        blocker.rollback()
    stack.start_worker()

    counts = record_counts(
        settle_and_count(stack, "worker SIGKILL", ["env-001/humidity"], stream.sent, since, retried=stream.retried)
    )
    assert_every_reading_once(counts)
