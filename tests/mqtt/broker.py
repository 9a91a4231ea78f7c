"""The project's Mosquitto for tests, and clients of it: devices with their own accounts, bridges in threads.

The test session starts one broker of its own (`mqtt_broker`) with the project's configuration
(docker/mosquitto.conf through apps/mqtt/mosquitto.py: logins required, per-device ACLs, the queue limits),
on a free port, before the session's Celery worker, which inherits its address and the backend's login. Tests
that need to stop a broker or change its settings start another (`ProjectBroker`).

Device accounts follow the devices through the real reconciliation (`accounts_reconcile`), which the device
fixtures run before connecting; the signals that sync accounts on each change stay off in the test process
(MQTT_ADMIN_USERNAME is empty there) unless a test asks for them (`broker_accounts`), so that tests building
devices do not each queue account syncs.
"""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

import orjson
import paho.mqtt.client as mqtt
import pytest
import redis
from django.conf import settings
from django.test import override_settings
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.reasoncodes import ReasonCode

from apps.devices.keys import hash_ingest_key
from apps.mqtt import mosquitto, topics
from apps.mqtt.bridge import Bridge, BridgeSettings
from apps.mqtt.broker_accounts import Dynsec, broker_accounts_reconcile
from apps.mqtt.config import BrokerConfig, broker_config, new_client
from apps.mqtt.signing import mqtt_password, signed_message
from tests.worker import QUEUES, UNACKED_KEYS
from tests.worker import wait_for as _wait_for


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


@dataclass
class ProjectBroker:
    """A Mosquitto of the test's own, run with the project's configuration (and `overrides` to it)."""

    directory: Path
    overrides: dict[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    admin_username: str = "telemetry-admin"
    admin_password: str = field(default_factory=lambda: secrets.token_urlsafe(16))
    backend_username: str = "telemetry-backend"
    backend_password: str = field(default_factory=lambda: secrets.token_urlsafe(16))
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.directory / "mosquitto.log"

    def config(self, username: str = "", password: str = "") -> BrokerConfig:
        return replace(broker_config(), host="127.0.0.1", port=self.port, username=username, password=password)

    def admin(self) -> Dynsec:
        return Dynsec(self.config(self.admin_username, self.admin_password))

    def backend_config(self) -> BrokerConfig:
        """The bridge's view of this broker: its backend account."""
        return self.config(self.backend_username, self.backend_password)

    def start(self, *, fresh_accounts: bool = True, timeout: float = 20.0) -> ProjectBroker:
        config = mosquitto.render_config(directory=self.directory, port=self.port, overrides=self.overrides)
        if fresh_accounts:
            mosquitto.init_accounts(
                directory=self.directory, admin_username=self.admin_username, admin_password=self.admin_password
            )
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                ["mosquitto", "-c", str(config)], stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        deadline = time.monotonic() + timeout
        while not _port_open(self.port):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"Mosquitto did not start:\n{self.log()}")
            time.sleep(0.05)
        return self

    def stop(self, timeout: float = 20.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def use(self) -> None:
        """Point this process (Django settings) and its future subprocesses (the environment, with the
        admin's login for the worker's account tasks) at this broker."""
        settings.MQTT_BROKER_URL = self.url
        settings.MQTT_USERNAME, settings.MQTT_PASSWORD = self.backend_username, self.backend_password
        os.environ.update(
            MQTT_BROKER_URL=self.url,
            MQTT_USERNAME=self.backend_username,
            MQTT_PASSWORD=self.backend_password,
            MQTT_ADMIN_USERNAME=self.admin_username,
            MQTT_ADMIN_PASSWORD=self.admin_password,
            MQTT_TOPIC_ROOT=settings.MQTT_TOPIC_ROOT,
        )

    def reconcile(self) -> dict[str, int]:
        """The backend's reconciliation, as its beat task runs it: accounts in line with the database (and
        this broker's own backend account)."""
        with override_settings(MQTT_USERNAME=self.backend_username, MQTT_PASSWORD=self.backend_password):
            with self.admin() as dynsec:
                return broker_accounts_reconcile(dynsec=dynsec)


@contextmanager
def session_broker(django_db_blocker, directory: Path) -> Iterator[ProjectBroker]:
    """The session's broker (the `mqtt_broker` fixture of tests/conftest.py): the project's configuration on
    a free port, the backend's account provisioned, this process and its subprocesses pointed at it."""
    broker = ProjectBroker(directory).start()
    try:
        broker.use()
        with django_db_blocker.unblock():
            broker.reconcile()
        yield broker
    finally:
        broker.stop()


@pytest.fixture
def broker_accounts(mqtt_broker, settings):
    """Account syncs on device changes, as in production (signals queue them; the worker runs them)."""
    settings.MQTT_ADMIN_USERNAME = mqtt_broker.admin_username
    settings.MQTT_ADMIN_PASSWORD = mqtt_broker.admin_password
    return mqtt_broker


_ROOT_MARKER = "TELEMETRY_TEST_MQTT_ROOT"


def use_private_topic_root() -> str:
    """Point this process and its future subprocesses at a topic root of this test run; idempotent. The
    session's broker is the run's own already; this keeps topics apart on a broker shared with other runs.
    Call it at import time, before the broker's accounts (whose ACLs name the root) are provisioned."""
    root = os.environ.get(_ROOT_MARKER)
    if root is None:
        root = f"test-{secrets.token_hex(5)}"
        os.environ[_ROOT_MARKER] = root
    os.environ["MQTT_TOPIC_ROOT"] = root
    settings.MQTT_TOPIC_ROOT = root
    return root


def unique_client_id(purpose: str) -> str:
    return f"test-{purpose}-{secrets.token_hex(3)}"


def bridge_settings(**overrides) -> BridgeSettings:
    values = {
        "client_id": unique_client_id("bridge"),
        "batch_max_wait_s": 0.2,
        # Short-lived sessions: a test's bridge session should not outlive the run in the broker.
        "session_expiry_s": 60,
    }
    values.update(overrides)
    return BridgeSettings.from_settings(**values)


class BridgeThread:
    """A bridge running in a thread of the test process, with its own database connection."""

    def __init__(self, options: BridgeSettings, broker: BrokerConfig | None = None) -> None:
        self.bridge = Bridge(options, broker)
        self.thread = threading.Thread(target=self._run, name="mqtt-bridge", daemon=True)
        self.error: BaseException | None = None

    def _run(self) -> None:
        try:
            self.bridge.run()
        except BaseException as exc:  # surfaced by stop()
            self.error = exc

    def start(self, timeout: float = 10) -> BridgeThread:
        self.thread.start()
        if not self.bridge.subscribed.wait(timeout):
            self.stop()
            raise AssertionError("the bridge did not connect and subscribe in time")
        return self

    def stop(self) -> None:
        self.bridge.stop()
        self.thread.join(20)
        assert not self.thread.is_alive(), "the bridge did not stop"
        if self.error is not None:
            raise self.error


@dataclass
class DeviceClient:
    """A device on the broker with its own account: publishes signed messages of its own, receives its
    commands. `acks` holds the broker's answer (PUBACK reason) to each publish."""

    device_id: str
    key: str
    will: bool = False
    username: str | None = None  # another account than the device's own (to try what it may not do)
    config: BrokerConfig | None = None
    client: mqtt.Client = field(init=False)
    commands: list[dict] = field(default_factory=list)
    received: threading.Event = field(default_factory=threading.Event)
    acks: dict[int, ReasonCode] = field(default_factory=dict)
    dropped: threading.Event = field(default_factory=threading.Event)  # the broker closed the connection

    def __post_init__(self) -> None:
        base = self.config or broker_config()
        username = self.username or self.device_id
        self.config = replace(base, username=username, password=mqtt_password(self.secret))
        self.client = new_client(client_id=unique_client_id(f"device-{self.device_id}"), config=self.config)
        self.client.on_message = self._on_message
        self.client.on_disconnect = lambda *args: self.dropped.set()
        self.client.on_publish = lambda client, userdata, mid, reason_code, properties: self.acks.update(
            {mid: reason_code}
        )
        if self.will:
            self.client.will_set(
                self.topic(topics.STATUS),
                self.signed(topics.STATUS, {"msg_type": "status", "status": "offline"}),
                qos=1,
            )

    @property
    def secret(self) -> str:
        return hash_ingest_key(self.key)

    def topic(self, kind: str) -> str:
        return topics.device_topic(settings.MQTT_TOPIC_ROOT, self.device_id, kind)

    def signed(self, kind: str, message: dict, **envelope) -> bytes:
        return signed_message({"device_id": self.device_id, **message}, self.secret, kind=kind, **envelope)

    def connect(self, *, listen: bool = False) -> DeviceClient:
        connected = threading.Event()
        outcome: list[ReasonCode] = []
        self.client.on_connect = lambda client, userdata, flags, reason_code, properties: (
            outcome.append(reason_code),
            connected.set(),
        )
        self.client.connect(self.config.host, self.config.port, keepalive=self.config.keepalive_s)
        self.client.loop_start()
        assert connected.wait(5), "no CONNACK"
        if outcome[0].is_failure:
            self.client.loop_stop()
            raise ConnectionRefusedError(str(outcome[0]))
        if listen:
            self.subscribe(self.topic(topics.COMMAND))
        return self

    def subscribe(self, topic: str) -> list[ReasonCode]:
        granted: list = []
        done = threading.Event()
        self.client.on_subscribe = lambda client, userdata, mid, reason_codes, properties: (
            granted.extend(reason_codes),
            done.set(),
        )
        self.client.subscribe(topic, qos=1)
        assert done.wait(5), "no SUBACK"
        return granted

    def publish_raw(self, kind: str, payload: bytes, *, topic: str | None = None) -> ReasonCode:
        info = self.client.publish(topic or self.topic(kind), payload, qos=1)
        info.wait_for_publish(5)
        return _wait_for(lambda: self.acks.get(info.mid), timeout=5)

    def publish(self, kind: str, message: dict, **envelope) -> ReasonCode:
        return self.publish_raw(kind, self.signed(kind, message, **envelope))

    def _on_message(self, client, userdata, message) -> None:
        self.commands.append(orjson.loads(message.payload) | {"_raw": message.payload})
        self.received.set()

    def drop_with_will(self) -> None:
        """Disconnect the way a crash looks to the broker: it publishes the last will."""
        self.client.disconnect(reasoncode=ReasonCode(PacketTypes.DISCONNECT, "Disconnect with will message"))
        self.client.loop_stop()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def datagram(seq: int, measurements: list[tuple[str, float]], *, ts: str | None = None) -> dict:
    """A telemetry datagram whose readings were measured at `ts`; without it they take the message's ts (v3:
    when it was sent, which signed_message sets to now)."""
    readings = [{"type": type_code, "val": value} for type_code, value in measurements]
    if ts is not None:
        readings = [{**reading, "ts": ts} for reading in readings]
    return {"seq": seq, "msg_type": "telemetry", "measurements": readings}


def wait_for_worker_idle(timeout: float = 20.0) -> None:
    """Until the test broker's queues are empty and no message is being worked on (acks are late, so a
    running task's message stays unacknowledged): a test's database is flushed only after the tasks its
    bridge and devices set off have finished, or they would race the flush."""
    client = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    deadline = time.monotonic() + timeout
    idle_polls = 0
    try:
        while time.monotonic() < deadline:
            waiting = sum(client.llen(key) for queue in QUEUES for key in client.scan_iter(f"{queue}*"))
            working = client.hlen(UNACKED_KEYS[0])
            idle_polls = idle_polls + 1 if waiting == 0 and working == 0 else 0
            if idle_polls >= 3:
                return
            time.sleep(0.1)
    finally:
        client.close()


@pytest.fixture
def start_bridge(celery_worker):
    """`start_bridge(**settings)`: a running bridge in a thread, with the real worker behind it. After the
    test the bridge stops and the tasks it queued are waited for."""
    started: list[BridgeThread] = []

    def start(*, broker: BrokerConfig | None = None, **overrides) -> BridgeThread:
        bridge = BridgeThread(bridge_settings(**overrides), broker).start()
        started.append(bridge)
        return bridge

    yield start
    for bridge in started:
        if bridge.thread.is_alive():
            bridge.stop()
    wait_for_worker_idle()


@pytest.fixture
def device_mqtt(world, mqtt_broker):
    """`device_mqtt("env-001", will=True)`: a device of the world connected with its own account (the
    accounts are reconciled with the world's devices first)."""
    clients: list[DeviceClient] = []
    mqtt_broker.reconcile()

    def connect(device_id: str, *, will: bool = False, listen: bool = False, **options) -> DeviceClient:
        client = DeviceClient(device_id, world.device_keys[device_id], will=will, **options).connect(listen=listen)
        clients.append(client)
        return client

    yield connect
    for client in clients:
        client.close()
