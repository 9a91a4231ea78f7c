"""Commands end to end: the API, a real worker publishing to the real Mosquitto, a simulated device answering
over MQTT, and the bridge recording its answers."""

from __future__ import annotations

import random
import threading
import time
import zoneinfo
from collections import Counter

import pytest
from django.conf import settings

from apps.commands.models import Command
from apps.demo.simulator import MqttTransport, Simulation, load_devices
from apps.devices.models import Device
from apps.mqtt import topics
from apps.mqtt.config import broker_config
from apps.mqtt.signing import verify
from tests.factories import API
from workers.tasks.devices import sweep_commands

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]


@pytest.fixture
def simulated_device(world, mqtt_broker):
    """env-001 as the simulator runs it, in a thread: online, sending now and then, answering commands."""
    mqtt_broker.reconcile()  # the world's devices get their broker accounts
    rng = random.Random(7)
    devices = load_devices(
        {"env-001": world.device_keys["env-001"]}, count=1, rate=0.5, rng=rng, tz=zoneinfo.ZoneInfo("UTC")
    )
    transport = MqttTransport(broker_config(), topic_root=settings.MQTT_TOPIC_ROOT, stats=Counter())
    simulation = Simulation(
        devices, transport, rng=rng, dropout_chance=0, breach_chance_per_minute=0, silence_chance_per_hour=0
    )
    thread = threading.Thread(target=simulation.run, daemon=True)
    thread.start()
    yield simulation
    simulation.stop()
    thread.join(10)


def _command(client, device: Device, body: dict) -> dict:
    response = client.post(f"{API}/devices/{device.pk}/commands/", body, format="json")
    assert response.status_code == 201, response.content
    return response.json()


def test_a_command_round_trips_to_a_simulated_device(
    world, celery_worker, start_bridge, simulated_device, operator_api, wait_for
):
    start_bridge()
    wait_for(lambda: Device.objects.get(device_id="env-001").connection_status == "online", timeout=20)

    command = _command(operator_api, world.devices["env-001"], {"cmd": "set_interval", "params": {"interval_s": 2}})

    def finished():
        body = operator_api.get(f"{API}/commands/{command['cmd_id']}/").json()
        return body if body["status"] == "completed" else None

    body = wait_for(finished, timeout=20)
    assert body["send_count"] == 1 and body["sent_at"] and body["acked_at"]
    assert (body["ack_source"], body["ack_detail"]) == ("mqtt", "reporting every 2 s")
    assert simulated_device.devices[0].interval_s == 2.0

    rejected = _command(operator_api, world.devices["env-001"], {"cmd": "self_destruct"})
    wait_for(lambda: Command.objects.get(pk=rejected["cmd_id"]).status == "rejected", timeout=20)
    assert Command.objects.get(pk=rejected["cmd_id"]).ack_detail == "unknown command 'self_destruct'"


def test_commands_wait_for_an_offline_device_and_only_unexpired_ones_are_sent(
    world, celery_worker, start_bridge, device_mqtt, operator_api, wait_for
):
    start_bridge()
    device = world.devices["env-001"]
    Device.objects.filter(pk=device.pk).update(connection_status="offline")
    listener = device_mqtt("env-001", listen=True)

    expiring = _command(operator_api, device, {"cmd": "ping", "ttl_s": 1})
    lasting = _command(operator_api, device, {"cmd": "reboot", "ttl_s": 300})
    time.sleep(1.5)  # the worker held both (the device is offline); the first has expired meanwhile
    assert set(Command.objects.values_list("status", flat=True)) == {"pending"}
    assert listener.commands == []

    listener.publish(topics.STATUS, {"msg_type": "status", "status": "online"})

    wait_for(lambda: Command.objects.get(pk=lasting["cmd_id"]).status == "sent", timeout=20)
    wait_for(lambda: len(listener.commands) == 1, timeout=10)
    time.sleep(0.5)
    [received] = listener.commands
    assert received["cmd_id"] == lasting["cmd_id"] and received["cmd"] == "reboot"
    assert verify(received["_raw"], device.ingest_key_hash, kind=topics.COMMAND)
    # The expired one was never published; the sweep records that it expired.
    sweep_commands()
    assert Command.objects.get(pk=expiring["cmd_id"]).status == "expired"
    assert Command.objects.get(pk=expiring["cmd_id"]).send_count == 0

    listener.publish(
        topics.COMMAND_ACK, {"cmd_id": lasting["cmd_id"], "status": "completed", "result": {"uptime_s": 1}}
    )
    wait_for(lambda: Command.objects.get(pk=lasting["cmd_id"]).status == "completed", timeout=20)
    assert Command.objects.get(pk=lasting["cmd_id"]).result == {"uptime_s": 1}
