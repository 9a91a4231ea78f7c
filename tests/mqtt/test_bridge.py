"""The bridge against the real Mosquitto, with a real Celery worker storing what it batches."""

from __future__ import annotations

import pytest

from apps.deadletters.models import DeadLetter
from apps.devices.models import Device
from apps.ingest.models import IngestBatch, Reading
from apps.mqtt import topics
from apps.mqtt.config import broker_config, new_client
from tests.factories import API
from tests.mqtt.broker import datagram

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]


def _values(sensor) -> list[float]:
    return list(Reading.objects.filter(sensor=sensor).order_by("ts").values_list("value", flat=True))


def _done_batches() -> list[IngestBatch]:
    return list(IngestBatch.objects.filter(source="mqtt", status="done").order_by("received_at"))


def test_telemetry_published_over_mqtt_is_stored(world, celery_worker, start_bridge, device_mqtt, wait_for):
    start_bridge()
    meter = device_mqtt("dc-meter-001")

    meter.publish(
        topics.TELEMETRY, datagram(1, [("voltage_dc", 752.3), ("current_dc", 312.7)], ts="2026-02-12T16:00:00Z")
    )
    meter.publish(topics.TELEMETRY, datagram(2, [("voltage_dc", 753.0)], ts="2026-02-12T16:00:01Z"))

    voltage = world.sensors["dc-meter-001/voltage_dc"]
    wait_for(lambda: len(_values(voltage)) == 2, timeout=20)
    assert _values(voltage) == [752.3, 753.0]
    assert _values(world.sensors["dc-meter-001/current_dc"]) == [312.7]
    batches = wait_for(lambda: sum(b.stored for b in _done_batches()) == 3 and _done_batches(), timeout=20)
    assert {batch.source for batch in batches} == {"mqtt"}
    device = Device.objects.get(device_id="dc-meter-001")
    assert (device.connection_status, device.last_seq) == ("online", 2)


def test_a_flat_record_is_accepted_like_over_http(world, celery_worker, start_bridge, device_mqtt, wait_for):
    start_bridge()
    device_mqtt("env-001").publish(
        topics.TELEMETRY, {"ts": "2026-02-12T16:00:00Z", "temperature_c": 21.5, "humidity": 48.0}
    )

    wait_for(lambda: _values(world.sensors["env-001/humidity"]) == [48.0], timeout=20)
    assert _values(world.sensors["env-001/temperature"]) == [21.5]


def test_a_repeated_seq_is_dropped_and_a_gap_is_counted(world, celery_worker, start_bridge, device_mqtt, wait_for):
    start_bridge()
    meter = device_mqtt("dc-meter-001")

    meter.publish(topics.TELEMETRY, datagram(10, [("voltage_dc", 750.0)], ts="2026-02-12T16:00:00Z"))
    # The same datagram again (a device retrying after a lost PUBACK), then one after two lost ones.
    meter.publish(topics.TELEMETRY, datagram(10, [("voltage_dc", 750.0)], ts="2026-02-12T16:00:00Z"))
    meter.publish(topics.TELEMETRY, datagram(13, [("voltage_dc", 751.0)], ts="2026-02-12T16:00:03Z"))

    wait_for(lambda: Device.objects.get(device_id="dc-meter-001").last_seq == 13, timeout=20)
    wait_for(lambda: sum(b.received for b in _done_batches()) == 3, timeout=20)
    batches = _done_batches()
    assert sum(batch.stored for batch in batches) == 2
    assert sum(batch.duplicates for batch in batches) == 1
    assert _values(world.sensors["dc-meter-001/voltage_dc"]) == [750.0, 751.0]
    assert Device.objects.get(device_id="dc-meter-001").seq_gaps == 2


def test_telemetry_is_micro_batched_by_count(world, celery_worker, start_bridge, device_mqtt, wait_for):
    # A long wait: only the count threshold can close these batches quickly.
    start_bridge(batch_max_readings=3, batch_max_wait_s=30)
    meter = device_mqtt("dc-meter-001")

    for seq in range(1, 7):
        meter.publish(topics.TELEMETRY, datagram(seq, [("voltage_dc", 740.0 + seq)], ts=f"2026-02-12T16:00:0{seq}Z"))

    batches = wait_for(lambda: len(_done_batches()) == 2 and _done_batches(), timeout=20)
    assert [batch.received for batch in batches] == [3, 3]
    assert len(_values(world.sensors["dc-meter-001/voltage_dc"])) == 6


def test_bad_json_does_not_stop_the_bridge_and_becomes_a_dead_letter(
    world, celery_worker, start_bridge, device_mqtt, wait_for
):
    bridge = start_bridge()
    meter = device_mqtt("dc-meter-001")

    meter.publish_raw(topics.TELEMETRY, b'{"v": 2, "measurements": [')
    meter.publish_raw(topics.HELLO, b"\xff\xfe not utf-8 \x00")
    meter.publish(topics.TELEMETRY, datagram(1, [("voltage_dc", 752.3)]))

    wait_for(lambda: _values(world.sensors["dc-meter-001/voltage_dc"]) == [752.3], timeout=20)
    letters = list(DeadLetter.objects.filter(source="mqtt").order_by("created_at"))
    assert [letter.task_name for letter in letters] == ["mqtt.invalid_json", "mqtt.invalid_json"]
    assert letters[0].payload["topic"] == meter.topic(topics.TELEMETRY)
    assert letters[0].payload["text"] == '{"v": 2, "measurements": ['
    assert "\x00" not in letters[1].payload["text"]
    assert bridge.bridge.stats["dead_letter_invalid_json"] == 2
    assert bridge.thread.is_alive()


def test_unknown_devices_bad_signatures_and_foreign_readings_are_dead_letters(
    world, celery_worker, start_bridge, device_mqtt, wait_for
):
    bridge = start_bridge()
    meter = device_mqtt("dc-meter-001")
    # A device deleted from the backend whose broker account the reconciliation has not removed yet.
    ghost = device_mqtt("env-002")
    Device.objects.filter(device_id="env-002").delete()

    ghost.publish(topics.TELEMETRY, datagram(1, [("temperature", 20.0)]))
    # Signed with another device's key; unsigned; and readings of another device on this device's topic.
    other_key = device_mqtt("env-001").signed(topics.TELEMETRY, datagram(2, [("voltage_dc", 1.0)]))
    meter.publish_raw(topics.TELEMETRY, other_key)
    meter.publish_raw(topics.TELEMETRY, b'{"device_id": "dc-meter-001", "voltage_dc": 700}')
    meter.publish(topics.TELEMETRY, {"device_id": "env-001", "temperature_c": 20.0})
    meter.publish(topics.TELEMETRY, {"sensor": "env-001/temperature", "value": 20.0})

    wait_for(lambda: DeadLetter.objects.filter(source="mqtt").count() == 5, timeout=20)
    reasons = sorted(DeadLetter.objects.filter(source="mqtt").values_list("task_name", flat=True))
    assert reasons == [
        "mqtt.bad_signature",
        "mqtt.bad_signature",
        "mqtt.invalid_message",
        "mqtt.invalid_message",
        "mqtt.unknown_device",
    ]
    foreign = DeadLetter.objects.get(source="mqtt", payload__errors__has_key="readings[0].device_id")
    assert (
        "A device key may only send readings of its own device" in foreign.payload["errors"]["readings[0].device_id"][0]
    )
    assert bridge.bridge.stats["dead_letters"] == 5
    assert not Reading.objects.exists()


def test_hello_refreshes_last_seen_and_firmware(world, start_bridge, device_mqtt, wait_for):
    start_bridge()
    device_mqtt("env-001").publish(topics.HELLO, {"msg_type": "hello", "fw_version": "2.1.0"})

    device = wait_for(lambda: Device.objects.filter(device_id="env-001", fw_version="2.1.0").first())
    assert device.connection_status == "online" and device.last_seen is not None


def test_status_and_the_last_will_set_the_connection_status_at_once(world, start_bridge, device_mqtt, wait_for):
    start_bridge()
    sensor = device_mqtt("env-002", will=True)

    sensor.publish(topics.STATUS, {"msg_type": "status", "status": "online"})
    wait_for(lambda: Device.objects.get(device_id="env-002").connection_status == "online")

    sensor.drop_with_will()

    device = wait_for(lambda: Device.objects.filter(device_id="env-002", connection_status="offline").first())
    assert device.offline_since is not None and device.offline_since >= device.last_seen


def test_ota_status_reports_are_recorded_on_the_device(world, start_bridge, device_mqtt, viewer_api, wait_for):
    start_bridge()
    meter = device_mqtt("dc-meter-001")

    meter.publish(
        topics.OTA_STATUS, {"msg_type": "ota_status", "status": "downloading", "progress": 40, "fw_version": "3.0.0"}
    )
    wait_for(lambda: Device.objects.get(device_id="dc-meter-001").ota_status.get("progress") == 40)
    meter.publish(
        topics.OTA_STATUS, {"msg_type": "ota_status", "status": "success", "progress": 100, "fw_version": "3.0.0"}
    )

    device = wait_for(lambda: Device.objects.filter(device_id="dc-meter-001", fw_version="3.0.0").first())
    assert device.ota_status["status"] == "success" and device.ota_updated_at is not None
    shown = viewer_api.get(f"{API}/devices/{device.pk}/").json()
    assert shown["ota_status"]["fw_version"] == "3.0.0" and shown["fw_version"] == "3.0.0"


def test_the_bridge_reconnects_after_losing_the_broker_and_carries_on(
    world, start_bridge, device_mqtt, settings, wait_for
):
    settings.MQTT_RECONNECT_MIN_DELAY_S = 1
    bridge = start_bridge()
    # Another client taking over the bridge's session makes the broker drop the bridge's connection.
    intruder = new_client(client_id=bridge.bridge.options.client_id, config=broker_config())
    config = broker_config()
    intruder.connect(config.host, config.port, clean_start=False)
    intruder.loop_start()
    wait_for(lambda: not bridge.bridge.connected.is_set(), timeout=10)
    intruder.disconnect()
    intruder.loop_stop()

    wait_for(lambda: bridge.bridge.stats["connections"] == 2 and bridge.bridge.subscribed.is_set(), timeout=15)
    device_mqtt("dc-meter-001").publish(topics.TELEMETRY, datagram(1, [("voltage_dc", 752.3)]))

    wait_for(lambda: _values(world.sensors["dc-meter-001/voltage_dc"]) == [752.3], timeout=20)
