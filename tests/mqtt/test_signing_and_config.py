"""Message signatures and broker settings: no broker needed."""

from __future__ import annotations

import orjson
import pytest
from django.core.exceptions import ImproperlyConfigured

from apps.devices.keys import hash_ingest_key
from apps.mqtt import mosquitto, topics
from apps.mqtt.config import broker_config
from apps.mqtt.signing import device_secret, is_signed, mqtt_password, sign, signed_json, signed_message, verify

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


def test_a_v3_signature_is_valid_only_for_the_topic_kind_it_was_made_for():
    raw = signed_message({"device_id": "env-001", "status": "online"}, SECRET, kind=topics.STATUS)

    body = orjson.loads(raw)
    assert body["v"] == 3 and body["ts"].endswith("Z") and len(body["nonce"]) == 16
    assert verify(raw, SECRET, kind=topics.STATUS)
    assert not verify(raw, SECRET, kind=topics.OTA_STATUS)
    assert not verify(raw, SECRET)  # nor as v2
    assert not verify(signed_json(body, SECRET), SECRET, kind=topics.STATUS)


def test_a_v3_message_keeps_a_ts_and_nonce_it_was_given_and_its_version_wins():
    raw = signed_message({"v": 2, "ts": "2026-02-12T16:00:00Z"}, SECRET, kind=topics.HELLO, nonce="boot7-42")

    assert orjson.loads(raw) | {"sig": ""} == {"v": 3, "ts": "2026-02-12T16:00:00Z", "nonce": "boot7-42", "sig": ""}


def test_the_broker_password_is_derived_from_the_secret_and_is_not_the_secret():
    password = mqtt_password(SECRET)

    assert len(password) == 64 and password != SECRET and password == mqtt_password(device_secret("an-ingest-key"))
    assert mqtt_password(device_secret("another-key")) != password


def test_commands_are_signed_v3_for_their_topic_unless_the_fleet_is_still_on_v2(settings):
    from apps.devices.models import Device
    from apps.mqtt.publisher import command_payload

    device = Device(device_id="env-001", ingest_key_hash=SECRET)
    message = {"v": 2, "msg_type": "command", "cmd_id": "6f1c2d1e-0000-4000-8000-000000000001", "cmd": "ping"}

    v3 = command_payload(device, message)
    assert verify(v3, SECRET, kind=topics.COMMAND) and orjson.loads(v3)["nonce"] == message["cmd_id"]
    settings.MQTT_ACCEPT_V2_SIGNATURES = True
    assert verify(command_payload(device, message), SECRET)


def test_shared_subscriptions_put_the_group_in_front_of_every_filter():
    assert topics.subscriptions("iot", "bridges")[0] == "$share/bridges/iot/+/telemetry"
    assert len(topics.subscriptions("iot", "bridges")) == len(topics.INBOUND_KINDS)


def test_the_local_broker_configuration_is_the_projects_with_its_own_port_and_paths(tmp_path):
    path = mosquitto.render_config(directory=tmp_path, port=18830, overrides={"sys_interval": "1", "log_type": None})

    lines = path.read_text().splitlines()
    shipped = (mosquitto.CONFIG_TEMPLATE).read_text()
    assert "listener 18830 127.0.0.1" in lines and f"persistence_location {tmp_path}/" in lines
    assert f"plugin_opt_config_file {tmp_path}/dynamic-security.json" in lines
    assert "allow_anonymous false" in lines and "allow_anonymous false" in shipped
    for directive in ("max_queued_messages 1000000", "max_queued_bytes 1073741824", "persistence true"):
        assert directive in lines and directive in shipped
    assert "sys_interval 1" in lines and not any(line.startswith("log_type") for line in lines)


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
        ("MQTT_SHARED_GROUP", "a/b", "MQTT_SHARED_GROUP"),
    ],
)
def test_bad_broker_settings_stop_the_bridge_with_the_variable_named(settings, name, value, message):
    setattr(settings, name, value)

    with pytest.raises(ImproperlyConfigured, match=message):
        broker_config()
