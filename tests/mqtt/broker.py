"""The real Mosquitto for tests: a topic root and client ids of this test run's own, and device clients.

Other test runs may share the broker, so everything this run publishes or subscribes to lives under a random
topic root. It is chosen when the test modules are collected, before any fixture runs, so the session's
Celery worker subprocess (which publishes commands) inherits it from the environment.
"""

from __future__ import annotations

import os
import secrets
import threading
import time
from dataclasses import dataclass, field

import orjson
import paho.mqtt.client as mqtt
import pytest
import redis
from django.conf import settings
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.reasoncodes import ReasonCode

from apps.devices.keys import hash_ingest_key
from apps.mqtt import topics
from apps.mqtt.bridge import Bridge, BridgeSettings
from apps.mqtt.config import broker_config, new_client
from apps.mqtt.signing import signed_json
from tests.worker import QUEUES, UNACKED_KEYS

_MARKER = "TELEMETRY_TEST_MQTT_ROOT"


def use_private_topic_root() -> str:
    """Point this process and its future subprocesses at a topic root of this test run; idempotent."""
    root = os.environ.get(_MARKER)
    if root is None:
        root = f"test-{secrets.token_hex(5)}"
        os.environ[_MARKER] = root
    os.environ["MQTT_TOPIC_ROOT"] = root
    settings.MQTT_TOPIC_ROOT = root
    return root


def unique_client_id(purpose: str) -> str:
    return f"{settings.MQTT_TOPIC_ROOT}-{purpose}-{secrets.token_hex(3)}"


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

    def __init__(self, options: BridgeSettings) -> None:
        self.bridge = Bridge(options)
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
    """A device on the broker: publishes signed messages of its own, receives its commands."""

    device_id: str
    key: str
    will: bool = False
    client: mqtt.Client = field(init=False)
    commands: list[dict] = field(default_factory=list)
    received: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self.client = new_client(client_id=unique_client_id(f"device-{self.device_id}"), config=broker_config())
        self.client.on_message = self._on_message
        if self.will:
            self.client.will_set(
                self.topic(topics.STATUS), self.signed({"msg_type": "status", "status": "offline"}), qos=1
            )

    @property
    def secret(self) -> str:
        return hash_ingest_key(self.key)

    def topic(self, kind: str) -> str:
        return topics.device_topic(settings.MQTT_TOPIC_ROOT, self.device_id, kind)

    def signed(self, message: dict) -> bytes:
        return signed_json({"v": 2, "device_id": self.device_id, **message}, self.secret)

    def connect(self, *, listen: bool = False) -> DeviceClient:
        config = broker_config()
        self.client.connect(config.host, config.port, keepalive=config.keepalive_s)
        self.client.loop_start()
        if listen:
            done = threading.Event()
            self.client.on_subscribe = lambda *args: done.set()
            self.client.subscribe(self.topic(topics.COMMAND), qos=1)
            assert done.wait(5), "no SUBACK"
        return self

    def publish_raw(self, kind: str, payload: bytes) -> None:
        self.client.publish(self.topic(kind), payload, qos=1).wait_for_publish(5)

    def publish(self, kind: str, message: dict) -> None:
        self.publish_raw(kind, self.signed(message))

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


def datagram(seq: int, measurements: list[tuple[str, float]], *, ts: str = "2026-02-12T16:00:00Z") -> dict:
    return {
        "ts": ts,
        "seq": seq,
        "msg_type": "telemetry",
        "measurements": [{"type": type_code, "val": value} for type_code, value in measurements],
    }


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

    def start(**overrides) -> BridgeThread:
        bridge = BridgeThread(bridge_settings(**overrides)).start()
        started.append(bridge)
        return bridge

    yield start
    for bridge in started:
        if bridge.thread.is_alive():
            bridge.stop()
    wait_for_worker_idle()


@pytest.fixture
def device_mqtt(world):
    """`device_mqtt("env-001", will=True)`: a connected device client with the device's key."""
    clients: list[DeviceClient] = []

    def connect(device_id: str, *, will: bool = False, listen: bool = False) -> DeviceClient:
        client = DeviceClient(device_id, world.device_keys[device_id], will=will).connect(listen=listen)
        clients.append(client)
        return client

    yield connect
    for client in clients:
        client.close()
