"""Message signatures and broker settings: no broker needed."""

from __future__ import annotations

import orjson
import pytest
from django.core.exceptions import ImproperlyConfigured

from apps.devices.keys import hash_ingest_key
from apps.mqtt import topics
from apps.mqtt.config import broker_config
from apps.mqtt.signing import device_secret, is_signed, sign, signed_json, verify

SECRET = device_secret("an-ingest-key")


def test_a_signed_message_is_valid_json_with_its_signature_last():
    raw = signed_json({"v": 2, "device_id": "env-001", "status": "online"}, SECRET)

    body = orjson.loads(raw)
    assert list(body)[-1] == "sig" and len(body["sig"]) == 64
    assert verify(raw, SECRET)
    assert SECRET == hash_ingest_key("an-ingest-key")


def test_any_change_or_another_key_breaks_the_signature():
    raw = signed_json({"v": 2, "device_id": "env-001", "measurements": [{"type": "temperature", "val": 20.5}]}, SECRET)

    assert not verify(raw.replace(b"20.5", b"90.5"), SECRET)
    assert not verify(raw, device_secret("another-key"))
    assert not verify(b'{"v": 2}', SECRET)
    assert not is_signed(b'{"v": 2, "sig": "not hex"}')


def test_the_signed_bytes_are_whatever_the_device_wrote():
    """No canonical JSON: a device's own spacing and number formatting are signed as they are."""
    body = b'{ "v" : 2,\n  "device_id": "env-001", "val": 1.50 }'

    assert verify(sign(body, SECRET), SECRET)
    assert verify(sign(body, SECRET) + b"\n", SECRET)
    with pytest.raises(ValueError):
        sign(b"[1, 2]", SECRET)


def test_topics_are_parsed_under_the_root_only():
    assert topics.parse("iot/env-001/telemetry", "iot") == ("env-001", "telemetry")
    assert topics.parse("iot/env-001/command/ack", "iot") == ("env-001", "command/ack")
    assert topics.parse("plant/iot/env-001/ota/status", "plant/iot") == ("env-001", "ota/status")
    assert topics.parse("iot/env-001/command", "iot") is None
    assert topics.parse("other/env-001/telemetry", "iot") is None
    assert topics.subscriptions("iot") == [
        "iot/+/telemetry",
        "iot/+/hello",
        "iot/+/status",
        "iot/+/command/ack",
        "iot/+/ota/status",
    ]


def test_the_broker_url_gives_host_port_tls_and_credentials(settings):
    settings.MQTT_BROKER_URL = "mqtts://bridge:s%40cret@broker.example.com"
    settings.MQTT_USERNAME = settings.MQTT_PASSWORD = ""

    config = broker_config()

    assert (config.host, config.port, config.tls, config.username, config.password) == (
        "broker.example.com",
        8883,
        True,
        "bridge",
        "s@cret",
    )
    settings.MQTT_BROKER_URL = "mqtt://localhost:1884"
    settings.MQTT_USERNAME, settings.MQTT_PASSWORD = "user", "pass"
    config = broker_config()
    assert (config.port, config.tls, config.username, config.password) == (1884, False, "user", "pass")


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("MQTT_BROKER_URL", "http://localhost:1883", "MQTT_BROKER_URL"),
        ("MQTT_BROKER_URL", "mqtt://localhost:notaport", "MQTT_BROKER_URL"),
        ("MQTT_TOPIC_ROOT", "iot/#", "MQTT_TOPIC_ROOT"),
        ("MQTT_TLS_CERT_FILE", "/etc/client.pem", "MQTT_TLS_KEY_FILE"),
    ],
)
def test_bad_broker_settings_stop_the_bridge_with_the_variable_named(settings, name, value, message):
    setattr(settings, name, value)

    with pytest.raises(ImproperlyConfigured, match=message):
        broker_config()
