"""Signed messages (v3) cannot be used twice or elsewhere: the topic kind is in the MAC, the ts must be fresh,
the nonce is used once. Redeliveries by the broker are told apart from replays; a device's last will counts
however old, once, when the device announced it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson
import pytest
from django.conf import settings
from django.utils import timezone

from apps.deadletters.models import DeadLetter
from apps.devices.connectivity import device_mark_offline
from apps.devices.models import Device
from apps.ingest.models import IngestBatch, Reading
from apps.mqtt import topics
from apps.mqtt.bridge import Bridge
from apps.mqtt.messages import Inbound
from apps.mqtt.signing import iso, sign, signed_json
from tests.mqtt.broker import DeviceClient, bridge_settings, datagram

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]


def _ago(seconds: float) -> str:
    return iso(datetime.now(UTC) - timedelta(seconds=seconds))


def _reasons() -> list[str]:
    return sorted(DeadLetter.objects.filter(source="mqtt").values_list("task_name", flat=True))


def _status(device_id: str) -> str:
    return Device.objects.get(device_id=device_id).connection_status


def test_a_recorded_message_sent_again_changes_nothing(world, start_bridge, device_mqtt, wait_for):
    start_bridge()
    env = device_mqtt("env-002")
    recorded = env.signed(topics.STATUS, {"msg_type": "status", "status": "online"})
    env.publish_raw(topics.STATUS, recorded)
    wait_for(lambda: _status("env-002") == "online")
    env.publish(topics.STATUS, {"msg_type": "status", "status": "offline"})
    wait_for(lambda: _status("env-002") == "offline")

    env.publish_raw(topics.STATUS, recorded)

    wait_for(lambda: _reasons() == ["mqtt.replayed"], timeout=20)
    assert _status("env-002") == "offline"


def test_a_message_is_valid_only_on_the_topic_it_was_signed_for(world, start_bridge, device_mqtt, wait_for):
    start_bridge()
    meter = device_mqtt("dc-meter-001")
    status = meter.signed(topics.STATUS, {"msg_type": "status", "status": "online", "progress": 100})

    meter.publish_raw(topics.OTA_STATUS, status)
    meter.publish_raw(topics.HELLO, status)

    wait_for(lambda: len(_reasons()) == 2, timeout=20)
    assert _reasons() == ["mqtt.bad_signature", "mqtt.bad_signature"]
    assert Device.objects.get(device_id="dc-meter-001").ota_status == {}


def test_stale_state_is_refused_and_stale_telemetry_is_stored_as_old_news(world, start_bridge, device_mqtt, wait_for):
    start_bridge()
    meter = device_mqtt("dc-meter-001")
    said_goodbye = timezone.now()
    device_mark_offline(device=Device.objects.get(device_id="dc-meter-001"), at=said_goodbye)
    old = _ago(2 * settings.MQTT_REPLAY_WINDOW_S)

    meter.publish(topics.STATUS, {"msg_type": "status", "status": "online"}, ts=old)
    meter.publish(topics.TELEMETRY, datagram(7, [("voltage_dc", 748.0)]), ts=old)

    batch = wait_for(lambda: IngestBatch.objects.filter(source="mqtt", status="done").first(), timeout=20)
    assert batch.received_at == datetime.fromisoformat(old) and batch.stored == 1
    assert Reading.objects.get(sensor=world.sensors["dc-meter-001/voltage_dc"]).ts == batch.received_at
    wait_for(lambda: _reasons() == ["mqtt.stale"], timeout=20)
    device = Device.objects.get(device_id="dc-meter-001")
    assert device.connection_status == "offline"  # old news is no sign of life


def test_a_message_from_beyond_the_window_ahead_or_without_a_nonce_is_refused(
    world, start_bridge, device_mqtt, wait_for
):
    start_bridge()
    env = device_mqtt("env-001")
    env.publish(topics.HELLO, {"msg_type": "hello"}, ts=_ago(-2 * settings.MQTT_REPLAY_WINDOW_S))
    no_nonce = orjson.dumps({"v": 3, "device_id": "env-001", "msg_type": "hello", "ts": _ago(0)})
    env.publish_raw(topics.HELLO, sign(no_nonce, env.secret, kind=topics.HELLO))

    wait_for(lambda: len(_reasons()) == 2, timeout=20)
    errors = [letter.payload["errors"] for letter in DeadLetter.objects.order_by("created_at")]
    assert list(errors[0]) == ["ts"] and list(errors[1]) == ["nonce"]
    assert Device.objects.get(device_id="env-001").last_seen is None


def test_v2_signatures_pass_only_while_the_migration_setting_allows_them(
    world, start_bridge, device_mqtt, settings, wait_for
):
    bridge = start_bridge()
    env = device_mqtt("env-001")
    hello_v2 = signed_json({"v": 2, "device_id": "env-001", "msg_type": "hello", "fw_version": "1.0.0"}, env.secret)

    env.publish_raw(topics.HELLO, hello_v2)
    wait_for(lambda: _reasons() == ["mqtt.bad_signature"], timeout=20)
    settings.MQTT_ACCEPT_V2_SIGNATURES = True
    env.publish_raw(topics.HELLO, hello_v2)

    wait_for(lambda: Device.objects.get(device_id="env-001").fw_version == "1.0.0", timeout=20)
    assert bridge.bridge.stats["accepted_v2"] == 1


def test_the_will_announced_for_the_connection_counts_however_old_and_only_once(
    world, start_bridge, device_mqtt, wait_for
):
    start_bridge()
    device_mqtt("env-001")  # the world's accounts are on the broker
    key = world.device_keys["env-001"]
    made_long_ago = _ago(2 * settings.MQTT_REPLAY_WINDOW_S)

    def connection(will_nonce: str, *, announce: bool) -> DeviceClient:
        device = DeviceClient("env-001", key)
        will = device.signed(topics.STATUS, {"status": "offline"}, ts=made_long_ago, nonce=will_nonce)
        device.client.will_set(device.topic(topics.STATUS), will, qos=1)
        device.connect()
        online = {"status": "online", **({"will_nonce": will_nonce} if announce else {})}
        device.publish(topics.STATUS, online)
        wait_for(lambda: _status("env-001") == "online")
        return device

    connection("will-1", announce=True).drop_with_will()
    wait_for(lambda: _status("env-001") == "offline", timeout=20)

    # A connection whose will was not announced: the will is as old as it is, and refused.
    connection("will-0", announce=False).drop_with_will()
    wait_for(lambda: _reasons() == ["mqtt.stale"], timeout=20)
    assert _status("env-001") == "online"


def test_a_redelivery_of_an_applied_message_is_counted_and_a_replay_is_a_dead_letter(world, celery_worker, device_mqtt):
    """What the broker sends again (DUP) after the bridge applied a message but stopped before acknowledging
    it: the bridge's own handling, fed the message as paho hands it over."""
    device_mqtt("env-001")
    device = DeviceClient("env-001", world.device_keys["env-001"])
    hello = device.signed(topics.HELLO, {"msg_type": "hello", "fw_version": "2.0.0"})
    telemetry = device.signed(topics.TELEMETRY, {**datagram(1, [("temperature", 20.5)]), "msg_type": "telemetry"})
    bridge = Bridge(bridge_settings())

    def arrive(kind: str, payload: bytes, *, dup: bool) -> None:
        message = Inbound(
            topic=device.topic(kind),
            device_id="env-001",
            kind=kind,
            payload=payload,
            received_at=timezone.now(),
            dup=dup,
        )
        bridge._handle(message)
        bridge._flush()

    for dup in (False, True, False):
        arrive(topics.HELLO, hello, dup=dup)
        arrive(topics.TELEMETRY, telemetry, dup=dup)

    assert bridge.stats["redelivered"] == 2
    assert _reasons() == ["mqtt.replayed", "mqtt.replayed"]
    assert IngestBatch.objects.get().received == 1
    assert all(pending.done for pending in bridge._pending)
