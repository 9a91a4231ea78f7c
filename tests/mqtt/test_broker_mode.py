"""MQTT_DEVICE_AUTH=broker: the bridge believes the topic about who sent a message, so it first makes sure the
broker lets no one in without a login; and readings without a time of their own must keep the time they
were first given when the broker delivers them again."""

from __future__ import annotations

import logging

import orjson
import pytest
from django.core.exceptions import ImproperlyConfigured

from apps.deadletters.models import DeadLetter
from apps.devices.models import Device
from apps.ingest.models import IngestBatch, Reading
from apps.mqtt import topics
from apps.mqtt.bridge import Bridge
from tests.mqtt.broker import ProjectBroker, bridge_settings, datagram

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def open_broker(tmp_path):
    """A plain broker: no accounts, anonymous clients let in (Mosquitto as a distribution installs it)."""
    plain = {"allow_anonymous": "true", "plugin": None, "plugin_opt_config_file": None}
    broker = ProjectBroker(tmp_path / "open", overrides=plain).start()
    yield broker
    broker.stop()


def test_broker_mode_refuses_a_broker_that_lets_anonymous_clients_in(open_broker, settings):
    settings.MQTT_DEVICE_AUTH = "broker"

    with pytest.raises(ImproperlyConfigured, match="accepts anonymous clients"):
        Bridge(bridge_settings(), open_broker.config()).run()


@pytest.mark.worker
def test_on_purpose_it_runs_and_says_so_at_start_and_in_readiness(open_broker, start_bridge, settings, client, caplog):
    settings.MQTT_DEVICE_AUTH, settings.MQTT_INSECURE_BROKER = "broker", True

    with caplog.at_level(logging.WARNING, logger="apps.mqtt.bridge"):
        bridge = start_bridge(broker=open_broker.config())

    assert bridge.bridge.subscribed.is_set()
    assert "MQTT_INSECURE_BROKER=true" in caplog.text
    assert any("MQTT_INSECURE_BROKER" in warning for warning in client.get("/health/ready").json()["warnings"])


def test_readiness_has_no_warning_otherwise(client, settings):
    settings.MQTT_DEVICE_AUTH, settings.MQTT_INSECURE_BROKER = "broker", False
    assert "warnings" not in client.get("/health/ready").json()


@pytest.mark.worker
def test_against_the_projects_broker_unsigned_messages_are_trusted_by_topic(
    world, start_bridge, device_mqtt, settings, wait_for
):
    settings.MQTT_DEVICE_AUTH = "broker"
    start_bridge()

    device_mqtt("env-001").publish_raw(topics.HELLO, b'{"fw_version": "3.1.0"}')

    wait_for(lambda: Device.objects.get(device_id="env-001").fw_version == "3.1.0")


@pytest.mark.worker
def test_readings_without_a_time_need_a_datagram_seq_and_keep_their_first_time(
    world, start_bridge, device_mqtt, settings, wait_for
):
    """Before v3 (here: unsigned, broker mode) a reading without a ts would take the time it arrived, and a
    redelivery a second time: refused, unless its datagram has a seq, whose repeat is dropped whole."""
    settings.MQTT_DEVICE_AUTH = "broker"
    start_bridge()
    meter = device_mqtt("dc-meter-001")
    with_seq = orjson.dumps({"device_id": "dc-meter-001", **datagram(7, [("voltage_dc", 749.0)])})

    meter.publish_raw(topics.TELEMETRY, b'{"device_id": "dc-meter-001", "voltage_dc": 750.0}')
    meter.publish_raw(topics.TELEMETRY, b'{"measurements": [{"type": "voltage_dc", "val": 751.0}]}')
    meter.publish_raw(topics.TELEMETRY, with_seq)
    meter.publish_raw(topics.TELEMETRY, with_seq)  # as the broker delivers it again after a crash

    wait_for(lambda: sum(b.received for b in IngestBatch.objects.filter(status="done")) == 2, timeout=20)
    assert list(Reading.objects.values_list("value", flat=True)) == [749.0]
    letters = DeadLetter.objects.filter(source="mqtt").order_by("created_at")
    assert [list(letter.payload["errors"]) for letter in letters] == [["readings[0].ts"], ["readings[0].ts"]]


@pytest.mark.worker
def test_v3_readings_without_a_time_take_the_messages(world, start_bridge, device_mqtt, wait_for):
    start_bridge()
    raw = device_mqtt("env-001").signed(topics.TELEMETRY, datagram(1, [("humidity", 41.0)]))
    device_mqtt("env-001").publish_raw(topics.TELEMETRY, raw)

    reading = wait_for(lambda: Reading.objects.first(), timeout=20)
    sent_at = orjson.loads(raw)["ts"]
    assert reading.ts.isoformat(timespec="milliseconds").replace("+00:00", "Z") == sent_at
