"""The whole system on services of its own, for the chaos tests: a PostgreSQL cluster, a Redis and a Mosquitto
(tests/services.py), the web side under gunicorn, a Celery worker and the MQTT bridge as subprocesses, all
pointed at those private services. Devices are played from the test process over HTTP and MQTT; what was
stored is read back with psycopg from the private database.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import paho.mqtt.client as mqtt
import psycopg
import requests
from django.conf import settings

from apps.devices.keys import hash_ingest_key
from apps.mqtt import topics
from apps.mqtt.signing import signed_message
from tests.services import PrivateMosquitto, PrivatePostgres, PrivateRedis, free_port, port_open, wait_until
from tests.worker import CeleryWorker, celery_app_on

# Short limits, so that what waits for a visibility timeout or the requeue beat's age (time limit plus
# visibility timeout: 13 s) waits seconds, not minutes. Retries wait at most 2 s and go on for about 20 s,
# longer than a PostgreSQL restart takes.
WORKER_ENV = {
    "CELERY_TASK_SOFT_TIME_LIMIT": "4",
    "CELERY_TASK_TIME_LIMIT": "5",
    "CELERY_VISIBILITY_TIMEOUT_S": "8",
    "TASK_RETRY_BACKOFF_MAX_S": "2",
    "TASK_MAX_RETRIES": "12",
    "INGEST_MAX_ATTEMPTS": "20",
    "ALERT_REQUEUE_AFTER_S": "10",
    "REDIS_RETRY_AFTER_S": "1",
    "LOG_FORMAT": "plain",
}
TOPIC_ROOT = "chaos"
BRIDGE_CLIENT_ID = "chaos-bridge"


@dataclass
class Stack:
    directory: Path
    postgres: PrivatePostgres
    redis: PrivateRedis
    mosquitto: PrivateMosquitto
    database_url: str
    device_keys: dict[str, str] = field(default_factory=dict)
    web: subprocess.Popen | None = None
    web_port: int = 0
    worker: CeleryWorker | None = None
    bridge: subprocess.Popen | None = None
    app: object = None
    app_context: object = None
    _logs: list[Path] = field(default_factory=list)

    # --- Processes -------------------------------------------------------------------------------------------

    def env(self, **extra: str) -> dict[str, str]:
        return {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "tests.settings",
            "DATABASE_URL": self.database_url,
            "REDIS_URL": self.redis.url(0),
            "CELERY_BROKER_URL": self.redis.url(0),
            "CELERY_RESULT_BACKEND": self.redis.url(0),
            "MQTT_BROKER_URL": self.mosquitto.url(),
            # Plain brokers are allowed explicitly once the bridge insists on authentication by default.
            "MQTT_INSECURE_BROKER": "true",
            "MQTT_TOPIC_ROOT": TOPIC_ROOT,
            "PYTHONUNBUFFERED": "1",
            **WORKER_ENV,
            **extra,
        }

    def _spawn(self, name: str, command: list[str], **env: str) -> subprocess.Popen:
        log_path = self.directory / f"{name}.log"
        self._logs.append(log_path)
        with log_path.open("ab") as log:
            return subprocess.Popen(
                command,
                cwd=settings.BASE_DIR,
                env=self.env(**env),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def manage(self, *args: str) -> str:
        done = subprocess.run(
            [sys.executable, *args], cwd=settings.BASE_DIR, env=self.env(), capture_output=True, timeout=180
        )
        if done.returncode != 0:
            raise RuntimeError(f"{args} failed:\n{done.stdout.decode()}\n{done.stderr.decode()}")
        return done.stdout.decode()

    def start_web(self) -> None:
        self.web_port = free_port()
        self.web = self._spawn(
            "web",
            [sys.executable, "-m", "gunicorn", "telemetry_project.wsgi:application", "-b",
             f"127.0.0.1:{self.web_port}", "-w", "2", "--threads", "4", "--timeout", "60"],
        )  # fmt: skip
        wait_until(lambda: port_open(self.web_port), timeout=30, what="gunicorn did not listen")

    def start_worker(self, *, purge: bool = False) -> None:
        self.worker = CeleryWorker.start(
            database_url=self.database_url,
            log_path=self.directory / "worker.log",
            app=self.app,
            env=self.env(),
            concurrency=2,
            purge=purge,
        )

    def supervise_worker(self) -> bool:
        """Start the worker again if it exited, as its process manager (compose's restart policy) does; True
        if it had to. The worker can exit when Redis goes away while it acknowledges a message (kombu's
        channel close then fails with an AttributeError that Celery treats as unrecoverable)."""
        if self.worker.process.poll() is None:
            return False
        self.start_worker()
        return True

    def kill_worker(self) -> None:
        self.worker.kill()

    def start_bridge(self) -> None:
        log_path = self.directory / "bridge.log"
        seen = log_path.read_text(errors="replace").count("subscribed to the device topics") if log_path.exists() else 0
        self.bridge = self._spawn(
            "bridge",
            [sys.executable, "manage.py", "mqtt_bridge"],
            MQTT_CLIENT_ID=BRIDGE_CLIENT_ID,
            MQTT_SESSION_EXPIRY_S="600",
            MQTT_BATCH_MAX_WAIT_S="0.2",
        )
        wait_until(
            lambda: log_path.read_text(errors="replace").count("subscribed to the device topics") > seen,
            timeout=30,
            what="the bridge did not subscribe",
        )

    def kill_bridge(self) -> None:
        self.bridge.send_signal(signal.SIGKILL)
        self.bridge.wait(10)

    def requeue_stale(self) -> None:
        """What beat sends every minute: queue again the batches the broker lost or whose worker vanished."""
        self.app.send_task("ingest.requeue_stale_batches")

    def close(self) -> None:
        for process in (self.bridge, self.web):
            if process is not None and process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
                try:
                    process.wait(10)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
        if self.worker is not None:
            self.worker.stop()
        if self.app_context is not None:
            self.app_context.__exit__(None, None, None)
        self.mosquitto.stop()
        self.redis.stop()
        self.postgres.close()

    def logs(self) -> str:
        return "\n".join(f"--- {path.name}\n{path.read_text(errors='replace')[-4000:]}" for path in self._logs)

    # --- Reading back ----------------------------------------------------------------------------------------

    def query(self, sql: str, params: tuple = ()) -> list[tuple]:
        with psycopg.connect(self.database_url, autocommit=True) as conn:
            return conn.execute(sql, params).fetchall()

    def stored(self, sensor_keys: list[str]) -> tuple[int, int]:
        """(rows, distinct (sensor, ts)) among the readings of these sensors."""
        return self.query(
            "SELECT count(*), count(DISTINCT (r.sensor_id, r.ts)) FROM ingest_reading r "
            "JOIN devices_sensor s ON s.id = r.sensor_id WHERE s.key = ANY(%s)",
            (sensor_keys,),
        )[0]

    def unfinished_batches(self) -> int:
        return self.query("SELECT count(*) FROM ingest_ingestbatch WHERE status <> 'done'")[0][0]

    def batch_stored_total(self, since: float, source: str) -> int:
        """What the batches of `source` finished since `since` say they stored, summed. (By when they finished:
        the bridge dates a batch of old readings by their messages' time, not by when they arrived.)"""
        return self.query(
            "SELECT coalesce(sum(stored), 0) FROM ingest_ingestbatch WHERE finished_at >= to_timestamp(%s) "
            "AND source = %s",
            (since, source),
        )[0][0]

    def wait_until_settled(self, sensor_keys: list[str], expected: int, *, timeout: float = 90.0) -> None:
        """Until every batch is done and the sensors hold `expected` readings, sending the requeue beat's task
        every few seconds as beat would (every minute, here sooner)."""
        deadline = time.monotonic() + timeout
        last_beat = 0.0
        while True:
            if self.unfinished_batches() == 0 and self.stored(sensor_keys)[0] >= expected:
                return
            if time.monotonic() >= deadline:
                raise AssertionError(
                    f"not settled within {timeout} s: {self.unfinished_batches()} unfinished batches, "
                    f"{self.stored(sensor_keys)} stored of {expected}\n{self.logs()}"
                )
            if time.monotonic() - last_beat > 3:
                try:
                    self.requeue_stale()
                    last_beat = time.monotonic()
                except Exception:  # the broker may still be coming back; the next round tries again
                    pass
            time.sleep(0.25)

    # --- Devices ---------------------------------------------------------------------------------------------

    def post(self, device_id: str, readings: list[dict], *, give_up_after: float = 120.0) -> int:
        """POST one batch as the device, again and again until it is accepted (202), as a device whose
        request failed or timed out does; returns how many tries it took."""
        url = f"http://127.0.0.1:{self.web_port}/api/v1/ingest/"
        headers = {"Authorization": f"Device {self.device_keys[device_id]}", "Content-Type": "application/json"}
        deadline = time.monotonic() + give_up_after
        tries = 0
        while True:
            tries += 1
            try:
                answer = requests.post(url, data=json.dumps(readings), headers=headers, timeout=10)
                if answer.status_code == 202:
                    return tries
            except requests.RequestException:
                pass
            if time.monotonic() >= deadline:
                raise AssertionError(f"{device_id}: no 202 within {give_up_after} s\n{self.logs()}")
            time.sleep(0.2)


class MqttDevice:
    """A device on the private broker publishing signed telemetry datagrams with QoS 1."""

    def __init__(self, stack: Stack, device_id: str) -> None:
        self.device_id = device_id
        self.secret = hash_ingest_key(stack.device_keys[device_id])
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=f"chaos-{device_id}", protocol=mqtt.MQTTv5
        )
        self.client.connect("127.0.0.1", stack.mosquitto.port, keepalive=30)
        self.client.loop_start()
        self.topic = topics.device_topic(TOPIC_ROOT, device_id, topics.TELEMETRY)

    def publish(self, seq: int, measurements: list[tuple[str, str, float]]) -> None:
        """One datagram: (ts, type code, value) per measurement."""
        message = {
            "v": 2,
            "device_id": self.device_id,
            "seq": seq,
            "msg_type": "telemetry",
            "ts": measurements[0][0],
            "measurements": [{"ts": ts, "type": code, "val": value} for ts, code, value in measurements],
        }
        raw = signed_message(message, self.secret, kind=topics.TELEMETRY, nonce=f"{self.device_id}-{seq}")
        self.client.publish(self.topic, raw, qos=1).wait_for_publish(10)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def start_stack(directory: Path) -> Stack:
    directory.mkdir(parents=True, exist_ok=True)
    postgres = PrivatePostgres().init().start()
    redis_server = PrivateRedis(directory / "redis").start()
    mosquitto = PrivateMosquitto(directory / "mosquitto").start()
    stack = Stack(
        directory=directory,
        postgres=postgres,
        redis=redis_server,
        mosquitto=mosquitto,
        database_url=postgres.create_database("telemetry"),
    )
    try:
        stack.manage("manage.py", "migrate", "--no-input", "-v", "0")
        stack.device_keys = json.loads(stack.manage("-m", "tests.chaos.seed").strip().splitlines()[-1])
        stack.app_context = celery_app_on(redis_server.url(0))
        stack.app = stack.app_context.__enter__()
        stack.start_web()
        stack.start_worker(purge=True)
        stack.start_bridge()
    except BaseException:
        stack.close()
        raise
    return stack


def run_in_threads(*targets) -> list[BaseException]:
    """Run the callables at once; the errors they raised."""
    errors: list[BaseException] = []

    def guard(target) -> None:
        try:
            target()
        except BaseException as exc:  # reported by the test
            errors.append(exc)

    threads = [threading.Thread(target=guard, args=(target,), daemon=True) for target in targets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(300)
    return errors
