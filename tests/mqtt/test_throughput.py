"""No silent drops at the broker: a burst the bridge was not there for waits in its session and is stored in
full; several bridges share the load through a shared subscription; and what the broker does drop (a queue
smaller than the project's) shows in the bridge's metrics."""

from __future__ import annotations

import threading
import time

import pytest
from django.db.models import Count

from apps.devices.models import Device
from apps.ingest.models import IngestBatch, Reading
from apps.mqtt import topics
from apps.operations import metrics
from tests.factories import make_device, make_sensor, make_sensor_type
from tests.mqtt.broker import DeviceClient, ProjectBroker, unique_client_id

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]

READINGS_PER_DATAGRAM = 10


def _plant(devices: int) -> dict[str, str]:
    """`devices` devices with ten sensors each; returns their ingest keys."""
    types = [make_sensor_type(f"burst_{number}") for number in range(READINGS_PER_DATAGRAM)]
    keys = {}
    for number in range(devices):
        device, keys[f"burst-{number:02}"] = make_device(f"burst-{number:02}")
        for sensor_type in types:
            make_sensor(device, sensor_type)
    return keys


def _publish(clients: list[DeviceClient], datagrams_each: int) -> float:
    """Every client sends `datagrams_each` signed datagrams of ten readings with QoS 1, from a thread of its
    own, as fast as the broker takes them; returns the seconds it took until the broker acknowledged all."""
    start_ms = int(time.time() * 1000) - 3_600_000  # readings of the last hour, one ms apart per datagram

    failures: list[BaseException] = []

    def send(device: DeviceClient) -> None:
        try:
            sent = []
            for seq in range(1, datagrams_each + 1):
                readings = [{"type": f"burst_{n}", "val": seq + n, "ts": start_ms + seq} for n in range(10)]
                body = device.signed(topics.TELEMETRY, {"seq": seq, "msg_type": "telemetry", "measurements": readings})
                sent.append(device.client.publish(device.topic(topics.TELEMETRY), body, qos=1))
            sent[-1].wait_for_publish(120)
            refused = [info for info in sent if info.mid not in device.acks or device.acks[info.mid].is_failure]
            assert not refused, f"{len(refused)} publish(es) of {device.device_id} not acknowledged"
        except BaseException as exc:  # surfaced in the test's thread
            failures.append(exc)

    started = time.monotonic()
    threads = [threading.Thread(target=send, args=(device,)) for device in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise failures[0]
    return time.monotonic() - started


def _connect(keys: dict[str, str]) -> list[DeviceClient]:
    clients = []
    for device_id, key in keys.items():
        device = DeviceClient(device_id, key)
        device.client.max_inflight_messages_set(200)  # how many unacknowledged publishes it keeps going
        clients.append(device.connect())
    return clients


def _readings_stored() -> int:
    return Reading.objects.filter(sensor__device__device_id__startswith="burst-").count()


@pytest.mark.parametrize("bridge_meanwhile", ["running", "away"])
def test_a_burst_of_20000_datagrams_is_stored_in_full(
    celery_worker, start_bridge, mqtt_broker, wait_for, record_property, bridge_meanwhile
):
    """20,000 signed datagrams of ten readings in a few seconds, with the bridge taking them as they come or
    away (they wait in its session): every reading is stored. With the broker's default queue of 1,000
    messages per client, 11,691 of such a burst were lost."""
    keys = _plant(20)
    mqtt_broker.reconcile()
    client_id = unique_client_id("burst")
    bridge = start_bridge(client_id=client_id, session_expiry_s=600)
    if bridge_meanwhile == "away":
        bridge.stop()  # its session, subscriptions and all, waits in the broker
    devices = _connect(keys)

    publish_s = _publish(devices, datagrams_each=1000)
    started = time.monotonic()
    if bridge_meanwhile == "away":
        bridge = start_bridge(client_id=client_id, session_expiry_s=600)
    wait_for(lambda: _readings_stored() == 200_000, timeout=300, interval=0.5)

    stored_s = time.monotonic() - started
    print(f"\nburst, bridge {bridge_meanwhile}: 20,000 datagrams published in {publish_s:.1f} s, ", end="")
    print(f"all 200,000 readings stored {stored_s:.1f} s after")
    record_property("burst", {"publish_s": round(publish_s, 1), "stored_s": round(stored_s, 1)})
    # Each once; a redelivery (the connection dropped under load, say) would be counted apart, not stored.
    stats = bridge.bridge.stats
    assert stats["accepted"] == 20_000 and stats["dead_letters"] == 0, bridge.bridge.stats_line()
    wait_for(lambda: not IngestBatch.objects.exclude(status="done").exists(), timeout=60)
    per_sensor = Reading.objects.filter(sensor__device__device_id="burst-07").values("sensor").annotate(n=Count("ts"))
    assert {row["n"] for row in per_sensor} == {1000}
    assert metrics.MQTT_BROKER_DROPPED._value.get() == 0
    for device in devices:
        device.close()


def test_two_bridges_share_the_devices_through_a_shared_subscription(
    celery_worker, start_bridge, mqtt_broker, wait_for
):
    keys = _plant(4)
    mqtt_broker.reconcile()
    first = start_bridge(shared_group="bridges")
    second = start_bridge(shared_group="bridges")
    devices = _connect(keys)

    _publish(devices, datagrams_each=250)

    wait_for(lambda: _readings_stored() == 10_000, timeout=120, interval=0.5)
    accepted = [bridge.bridge.stats["accepted"] for bridge in (first, second)]
    assert sum(accepted) == 1000 and min(accepted) > 0, accepted
    assert Device.objects.get(device_id="burst-01").last_seq == 250
    for device in devices:
        device.close()


def test_messages_the_broker_drops_show_in_the_bridges_metrics(
    world, celery_worker, start_bridge, tmp_path, client, wait_for
):
    small = ProjectBroker(tmp_path / "small", overrides={"max_queued_messages": "5", "sys_interval": "1"}).start()
    try:
        small.reconcile()
        client_id = unique_client_id("small-queue")
        start_bridge(broker=small.backend_config(), client_id=client_id).stop()
        meter = DeviceClient("dc-meter-001", world.device_keys["dc-meter-001"], config=small.config()).connect()
        for seq in range(1, 31):
            meter.publish(topics.TELEMETRY, {"seq": seq, "measurements": [{"type": "voltage_dc", "val": 700 + seq}]})
        meter.close()

        start_bridge(broker=small.backend_config(), client_id=client_id)

        # The broker kept five for the bridge; the rest it dropped and counted.
        wait_for(lambda: metrics.MQTT_BROKER_DROPPED._value.get() == 25, timeout=20)
        assert "telemetry_mqtt_broker_dropped_messages" in client.get("/metrics").content.decode()
    finally:
        small.stop()
