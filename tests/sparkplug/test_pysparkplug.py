"""An edge node built on pysparkplug, a Sparkplug B library no one here wrote, against the host in the
bridge: its births provision the device, its data is stored and evaluated, its death (the MQTT will) takes it
offline."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from apps.alerts.models import Alert
from apps.devices.keys import hash_ingest_key
from apps.devices.models import Device
from apps.devices.services import device_create
from apps.ingest.models import Reading
from apps.mqtt.config import broker_config
from apps.mqtt.signing import mqtt_password
from apps.sparkplug.models import Endpoint

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]

ROOT = Path(__file__).resolve().parents[2]
PYTHON = ROOT / ".venv-sparkplug" / "bin" / "python"
NODE = Path(__file__).with_name("pysparkplug_node.py")


class Node:
    """The pysparkplug edge node in its own interpreter, driven line by line."""

    def __init__(self, username: str, password: str) -> None:
        assert PYTHON.exists(), "no .venv-sparkplug: run bin/ensure-test-tools (make test does)"
        config = broker_config()
        self.process = subprocess.Popen(
            [PYTHON, NODE, config.host, str(config.port), username, password, "plant1", "edge1", "meter1"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.expect() == "started"

    def expect(self) -> str:
        return self.process.stdout.readline().strip()

    def send(self, line: str, answer: str) -> None:
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()
        assert self.expect() == answer

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=10)


@pytest.fixture
def node(world, settings, mqtt_broker, start_bridge):
    settings.SPARKPLUG_ENABLED = True
    settings.SPARKPLUG_AUTO_PROVISION = True
    _, key = device_create(device_id="plant1:edge1")
    mqtt_broker.reconcile()  # the node's broker account
    start_bridge()
    node = Node("plant1:edge1", mqtt_password(hash_ingest_key(key)))
    yield node
    node.close()


def test_a_pysparkplug_edge_node_is_born_sends_data_and_dies(node, wait_for):
    meter = wait_for(lambda: Endpoint.objects.filter(device_name="meter1", device__isnull=False).first(), timeout=20)
    assert meter.device.device_id == "plant1:edge1:meter1"

    node.send("data 900.5", "sent")
    node.send("data 751.0", "sent")

    def voltages():
        readings = Reading.objects.filter(sensor__key="plant1:edge1:meter1/voltage_dc").order_by("ts")
        return list(readings.values_list("value", flat=True))

    wait_for(lambda: voltages() == [900.5, 751.0], timeout=20)
    # 900.5 V is past the DC voltage thresholds of the test world: evaluated like every reading.
    wait_for(lambda: Alert.objects.filter(sensor__key="plant1:edge1:meter1/voltage_dc").exists(), timeout=20)

    # The node dies the way that matters: its connection drops, and the broker publishes its will, the NDEATH
    # with the bdSeq of its birth. (pysparkplug's clean disconnect sends an NDEATH with the next session's
    # bdSeq, which the host ignores as stale, as Sparkplug 3.0 asks.)
    node.process.kill()
    wait_for(
        lambda: (
            Device.objects.get(device_id="plant1:edge1:meter1").connection_status == "offline"
            and Device.objects.get(device_id="plant1:edge1").connection_status == "offline"
        ),
        timeout=20,
    )
