"""The simulated edge node of `make run`, through the real broker and bridge."""

from __future__ import annotations

import threading

import pytest

from apps.devices.models import Device
from apps.devices.services import device_create
from apps.ingest.models import Reading
from apps.mqtt.signing import mqtt_password
from apps.sparkplug.simulator import EdgeNodeSimulator

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]


def test_the_simulated_edge_node_provisions_its_devices_where_it_is_and_sends_readings(
    world, settings, mqtt_broker, start_bridge, wait_for
):
    settings.SPARKPLUG_ENABLED = True
    settings.SPARKPLUG_AUTO_PROVISION = True
    device_create(device_id="demo:edge1", location=world.area_a1_north)
    mqtt_broker.reconcile()
    start_bridge()
    username, password = "demo:edge1", mqtt_password(Device.objects.get(device_id="demo:edge1").ingest_key_hash)
    stop = threading.Event()
    simulator = EdgeNodeSimulator(username=username, password=password, interval_s=0.2)
    thread = threading.Thread(target=simulator.run, args=(stop,), daemon=True)
    thread.start()
    try:
        wait_for(
            lambda: (
                Reading.objects.filter(sensor__key="demo:edge1:meter1/voltage_dc").exists()
                and Reading.objects.filter(sensor__key="demo:edge1:env1/humidity").exists()
            ),
            timeout=20,
        )
    finally:
        stop.set()
        thread.join(10)
    assert Device.objects.get(device_id="demo:edge1:env1").location == world.area_a1_north
