"""A simulated Sparkplug B edge node for `make run`: the node demo:edge1 with an environment sensor and a DC
meter behind it, publishing births, data every few seconds, answering rebirth requests and writes."""

from __future__ import annotations

import logging
import random
import threading
from dataclasses import replace

from apps.devices.models import Device
from apps.devices.services import device_create
from apps.locations.models import Location
from apps.mqtt.broker_accounts import Dynsec, broker_account_sync
from apps.mqtt.config import admin_config, broker_config, new_client
from apps.mqtt.signing import mqtt_password
from apps.sparkplug import payloads
from apps.sparkplug.sparkplug_b_pb2 import Payload

logger = logging.getLogger(__name__)

GROUP, EDGE_NODE = "demo", "edge1"
DOUBLE = payloads.DOUBLE
# device -> metric name -> (start value, step of the random walk); "Setpoint" is writable.
DEVICES = {
    "env1": {"Ambient/Temperature": (22.0, 0.2), "Ambient/Humidity": (45.0, 0.5)},
    "meter1": {"DC/Voltage_DC": (750.0, 2.0), "DC/Current_DC": (300.0, 3.0)},
}


def edge_node_credentials() -> tuple[str, str]:
    """The node's device (in the first area of the plant) and its broker account, whose password derives from
    what the backend stores of its key, so no key needs to be kept."""
    device_id = f"{GROUP}:{EDGE_NODE}"
    device = Device.objects.filter(device_id=device_id).first()
    if device is None:
        location = Location.objects.filter(kind=Location.Kind.AREA).order_by("tree_path").first()
        device, _ = device_create(device_id=device_id, name="Sparkplug edge node", location=location)
    with Dynsec(admin_config()) as dynsec:
        broker_account_sync(dynsec=dynsec, device_id=device_id)
    return device_id, mqtt_password(device.ingest_key_hash)


class EdgeNodeSimulator:
    def __init__(self, *, username: str, password: str, interval_s: float) -> None:
        self.interval_s = interval_s
        self.config = replace(broker_config(), username=username, password=password)
        self.bd_seq = 0
        self.seq = 0
        self.values = {
            device: {name: start for name, (start, _) in metrics.items()} for device, metrics in DEVICES.items()
        }
        self.setpoint = 0.0
        self.birth_wanted = threading.Event()
        self.client = new_client(client_id=f"sparkplug-{GROUP}-{EDGE_NODE}", config=self.config)
        self.client.on_connect = lambda *args: self.birth_wanted.set()
        self.client.on_message = self._on_message

    def topic(self, message_type: str, device: str = "") -> str:
        return payloads.topic_for(GROUP, message_type, EDGE_NODE, device)

    def _payload(self) -> Payload:
        payload = Payload(timestamp=payloads.now_ms(), seq=self.seq)
        self.seq = (self.seq + 1) % 256
        return payload

    def _publish(self, topic: str, payload: Payload) -> None:
        self.client.publish(topic, payload.SerializeToString(), qos=0)

    def births(self) -> None:
        self.seq = 0
        node = self._payload()
        node.metrics.add(name=payloads.BDSEQ_METRIC, datatype=8, long_value=self.bd_seq)
        node.metrics.add(name=payloads.REBIRTH_METRIC, datatype=payloads.BOOLEAN, boolean_value=False)
        self._publish(self.topic(payloads.NBIRTH), node)
        alias = 0
        for device, values in self.values.items():
            birth = self._payload()
            for name, value in values.items():
                alias += 1
                birth.metrics.add(name=name, alias=alias, datatype=DOUBLE, double_value=value)
            setpoint = birth.metrics.add(
                name="Setpoint", alias=100 + alias, datatype=DOUBLE, double_value=self.setpoint
            )
            setpoint.properties.keys.append("writable")
            setpoint.properties.values.add(type=payloads.BOOLEAN, boolean_value=True)
            self._publish(self.topic(payloads.DBIRTH, device), birth)

    def data(self) -> None:
        alias = 0
        for device, values in self.values.items():
            payload = self._payload()
            for name, (_, step) in DEVICES[device].items():
                alias += 1
                values[name] += random.uniform(-step, step)
                payload.metrics.add(
                    alias=alias, timestamp=payload.timestamp, datatype=DOUBLE, double_value=values[name]
                )
            self._publish(self.topic(payloads.DDATA, device), payload)

    def _on_message(self, client, userdata, message) -> None:
        command = Payload.FromString(message.payload)
        for metric in command.metrics:
            if metric.name == payloads.REBIRTH_METRIC and metric.boolean_value:
                self.birth_wanted.set()
            elif metric.name == "Setpoint":
                self.setpoint = metric.double_value
                logger.info("sparkplug simulator: %s set Setpoint to %s", message.topic, self.setpoint)

    def run(self, stop: threading.Event) -> None:
        death = Payload(timestamp=payloads.now_ms())
        death.metrics.add(name=payloads.BDSEQ_METRIC, datatype=8, long_value=self.bd_seq)
        self.client.will_set(self.topic(payloads.NDEATH), death.SerializeToString(), qos=1)
        self.client.connect(self.config.host, self.config.port, keepalive=self.config.keepalive_s)
        self.client.subscribe([(self.topic(payloads.NCMD), 0), (self.topic(payloads.DCMD, "+"), 0)])
        self.client.loop_start()
        self.birth_wanted.set()  # a session starts with its births
        try:
            while not stop.is_set():
                if self.birth_wanted.is_set():
                    self.birth_wanted.clear()
                    self.births()
                else:
                    self.data()
                stop.wait(self.interval_s)
        finally:
            self.client.disconnect()
            self.client.loop_stop()
