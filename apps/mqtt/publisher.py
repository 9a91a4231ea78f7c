"""Publishing from web and worker processes: one broker connection per process, made on first use."""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading

from django.conf import settings
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from apps.devices.models import Device
from apps.mqtt import topics
from apps.mqtt.config import broker_config, new_client
from apps.mqtt.signing import signed_json, signed_message
from apps.sparkplug.commands import command_publication

logger = logging.getLogger(__name__)


class Publisher:
    """A connected client with its network loop in a thread of its own. Made per process (a forked Celery
    child must not share its parent's socket), and again after the broker dropped it."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.connected = threading.Event()
        config = broker_config()
        client_id = f"telemetry-pub-{socket.gethostname()}-{self.pid}-{secrets.token_hex(3)}"
        self.client = new_client(client_id=client_id, config=config)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.reconnect_delay_set(settings.MQTT_RECONNECT_MIN_DELAY_S, settings.MQTT_RECONNECT_MAX_DELAY_S)
        self.client.connect_timeout = settings.MQTT_PUBLISH_TIMEOUT_S
        try:
            self.client.connect(config.host, config.port, keepalive=config.keepalive_s)
        except OSError as exc:
            raise ConnectionError(f"MQTT broker {config.host}:{config.port} unreachable: {exc}") from exc
        self.client.loop_start()

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            logger.warning("MQTT publisher: broker refused the connection: %s", reason_code)
        else:
            self.connected.set()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        self.connected.clear()

    def publish(self, topic: str, payload: bytes, *, qos: int = 1, expiry_s: int | None = None) -> None:
        """Hand one message to the broker (for QoS 1: until the broker acknowledged it), or raise
        ConnectionError / TimeoutError."""
        timeout = settings.MQTT_PUBLISH_TIMEOUT_S
        if not self.connected.wait(timeout):
            raise ConnectionError("not connected to the MQTT broker")
        properties = None
        if expiry_s is not None:
            # The broker drops the message if it cannot deliver it before the command expires.
            properties = Properties(PacketTypes.PUBLISH)
            properties.MessageExpiryInterval = expiry_s
        info = self.client.publish(topic, payload, qos=qos, properties=properties)
        try:
            info.wait_for_publish(timeout)
        except (RuntimeError, ValueError) as exc:
            raise ConnectionError(f"MQTT publish to {topic} failed: {exc}") from exc
        if not info.is_published():
            raise TimeoutError(f"MQTT publish to {topic} not acknowledged within {timeout} s")

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


_publisher: Publisher | None = None
_lock = threading.Lock()


def publisher() -> Publisher:
    global _publisher
    with _lock:
        if _publisher is None or _publisher.pid != os.getpid():
            _publisher = Publisher()
        return _publisher


def command_payload(device: Device, message: dict) -> bytes:
    """A command signed v3 (kind "command", its cmd_id as nonce); v2 while MQTT_ACCEPT_V2_SIGNATURES says the
    fleet is still moving to v3, so that devices not yet updated can still check it."""
    if settings.MQTT_ACCEPT_V2_SIGNATURES:
        return signed_json(message, device.ingest_key_hash)
    return signed_message(message, device.ingest_key_hash, kind=topics.COMMAND, nonce=message.get("cmd_id"))


def publish_command(device: Device, message: dict, expiry_s: int) -> None:
    """The `publish` of apps.commands: a signed command on the device's command topic, QoS 1; for a Sparkplug
    device a metric write, QoS 0 as Sparkplug asks of commands."""
    sparkplug_command = command_publication(device, message)
    if sparkplug_command is not None:
        publisher().publish(*sparkplug_command, qos=0, expiry_s=expiry_s)
        return
    topic = topics.device_topic(settings.MQTT_TOPIC_ROOT, device.device_id, topics.COMMAND)
    publisher().publish(topic, command_payload(device, message), qos=1, expiry_s=expiry_s)
