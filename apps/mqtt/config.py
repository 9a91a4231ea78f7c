"""Broker connection settings, checked once, and paho clients made from them."""

from __future__ import annotations

import ssl
import threading
import uuid
from dataclasses import dataclass, replace
from urllib.parse import unquote, urlparse

import paho.mqtt.client as mqtt
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

DEFAULT_PORTS = {"mqtt": 1883, "tcp": 1883, "mqtts": 8883, "ssl": 8883}


@dataclass(frozen=True)
class BrokerConfig:
    host: str
    port: int
    tls: bool
    username: str
    password: str
    ca_file: str
    cert_file: str
    key_file: str
    keepalive_s: int


def broker_config() -> BrokerConfig:
    """MQTT_BROKER_URL and its companions; ImproperlyConfigured names the variable that is wrong."""
    url = settings.MQTT_BROKER_URL
    parsed = urlparse(url)
    if parsed.scheme not in DEFAULT_PORTS or not parsed.hostname:
        raise ImproperlyConfigured(
            f"MQTT_BROKER_URL must look like mqtt://host:1883 or mqtts://host:8883 (TLS), got {url!r}."
        )
    try:
        port = parsed.port or DEFAULT_PORTS[parsed.scheme]
    except ValueError:
        raise ImproperlyConfigured(f"MQTT_BROKER_URL has an invalid port: {url!r}.") from None
    if settings.MQTT_TLS_CERT_FILE and not settings.MQTT_TLS_KEY_FILE:
        raise ImproperlyConfigured("MQTT_TLS_CERT_FILE is set without MQTT_TLS_KEY_FILE.")
    root = settings.MQTT_TOPIC_ROOT
    if not root or any(char in root for char in "+#\x00") or root.startswith("/") or root.endswith("/"):
        raise ImproperlyConfigured(f"MQTT_TOPIC_ROOT must be a topic prefix without wildcards, got {root!r}.")
    group = settings.MQTT_SHARED_GROUP
    if any(char in group for char in "/+#\x00"):
        raise ImproperlyConfigured(f"MQTT_SHARED_GROUP must be a name without / + #, got {group!r}.")
    return BrokerConfig(
        host=parsed.hostname,
        port=port,
        tls=parsed.scheme in ("mqtts", "ssl"),
        username=settings.MQTT_USERNAME or unquote(parsed.username or ""),
        password=settings.MQTT_PASSWORD or unquote(parsed.password or ""),
        ca_file=settings.MQTT_TLS_CA_FILE,
        cert_file=settings.MQTT_TLS_CERT_FILE,
        key_file=settings.MQTT_TLS_KEY_FILE,
        keepalive_s=settings.MQTT_KEEPALIVE_S,
    )


def admin_config() -> BrokerConfig:
    """The broker as its dynamic-security admin (MQTT_ADMIN_USERNAME), for keeping accounts in step."""
    if not settings.MQTT_ADMIN_USERNAME:
        raise ImproperlyConfigured("MQTT_ADMIN_USERNAME is not set: the backend does not manage the broker's accounts.")
    return replace(broker_config(), username=settings.MQTT_ADMIN_USERNAME, password=settings.MQTT_ADMIN_PASSWORD)


def accepts_anonymous(config: BrokerConfig, *, timeout_s: float = 5.0) -> bool | None:
    """Whether the broker lets a client in without a username, password or client certificate: True, False,
    or None when it did not answer within `timeout_s` (down, or not reachable)."""
    anonymous = replace(config, username="", password="", cert_file="", key_file="")
    client = new_client(client_id=f"telemetry-probe-{uuid.uuid4().hex[:8]}", config=anonymous)
    answered = threading.Event()
    verdict: list[bool] = []

    def on_connect(client, userdata, flags, reason_code, properties) -> None:
        verdict.append(not reason_code.is_failure)
        answered.set()

    client.on_connect = on_connect
    client.connect_timeout = timeout_s
    try:
        client.connect(config.host, config.port, keepalive=max(config.keepalive_s, 5))
    except ssl.SSLError:
        return False  # the TLS handshake wants a client certificate: no way in without one
    except OSError:
        return None
    client.loop_start()
    try:
        if not answered.wait(timeout_s):
            return None
        return verdict[0]
    finally:
        client.disconnect()
        client.loop_stop()


def new_client(*, client_id: str, config: BrokerConfig, manual_ack: bool = False) -> mqtt.Client:
    """A paho client (MQTT 5) with the broker's credentials and TLS; not connected yet."""
    client = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5, manual_ack=manual_ack
    )
    if config.username:
        client.username_pw_set(config.username, config.password or None)
    if config.tls:
        client.tls_set(
            ca_certs=config.ca_file or None,
            certfile=config.cert_file or None,
            keyfile=config.key_file or None,
            cert_reqs=ssl.CERT_REQUIRED,
        )
    return client
