"""A Sparkplug B edge node for tests: births, data and deaths over the project's broker with the node's own
account, and the commands (NCMD/DCMD) it receives, decoded."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field, replace

from apps.devices.keys import hash_ingest_key
from apps.mqtt.config import broker_config, new_client
from apps.mqtt.signing import mqtt_password
from apps.sparkplug import payloads
from apps.sparkplug.sparkplug_b_pb2 import Payload
from tests.mqtt.broker import unique_client_id

DOUBLE, BOOLEAN = 10, 11


@dataclass
class EdgeNode:
    group: str
    edge_node: str
    key: str
    bd_seq: int = 0
    seq: int = 0
    commands: list[tuple[str, Payload]] = field(default_factory=list)
    received: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        config = replace(
            broker_config(),
            username=f"{self.group}:{self.edge_node}",
            password=mqtt_password(hash_ingest_key(self.key)),
        )
        self.config = config
        self.client = new_client(client_id=unique_client_id("edge"), config=config)
        self.client.on_message = self._on_message
        death = Payload(timestamp=payloads.now_ms())
        death.metrics.add(name="bdSeq", datatype=8, long_value=self.bd_seq)
        self.client.will_set(self.topic(payloads.NDEATH), death.SerializeToString(), qos=1)

    def topic(self, message_type: str, device: str = "") -> str:
        return payloads.topic_for(self.group, message_type, self.edge_node, device)

    def connect(self) -> EdgeNode:
        connected = threading.Event()
        self.client.on_connect = lambda *args: connected.set()
        self.client.connect(self.config.host, self.config.port, keepalive=self.config.keepalive_s)
        self.client.loop_start()
        assert connected.wait(5), "no CONNACK"
        subscribed = threading.Event()
        self.client.on_subscribe = lambda *args: subscribed.set()
        self.client.subscribe([(self.topic(payloads.NCMD), 1), (self.topic(payloads.DCMD, "+"), 1)])
        assert subscribed.wait(5), "no SUBACK"
        return self

    def _on_message(self, client, userdata, message) -> None:
        self.commands.append((message.topic, Payload.FromString(message.payload)))
        self.received.set()

    def _send(self, message_type: str, metrics: list[dict], *, device: str = "", seq: int | None = None) -> None:
        payload = Payload(timestamp=payloads.now_ms(), seq=self.seq if seq is None else seq)
        for metric in metrics:
            added = payload.metrics.add(**{k: v for k, v in metric.items() if k != "writable"})
            if metric.get("writable"):
                added.properties.keys.append("writable")
                added.properties.values.add(type=BOOLEAN, boolean_value=True)
        if message_type != payloads.NBIRTH:
            self.seq = (payload.seq + 1) % 256
        info = self.client.publish(self.topic(message_type, device), payload.SerializeToString(), qos=1)
        info.wait_for_publish(5)

    def nbirth(self, metrics: list[dict] = ()) -> None:
        self.seq = 0
        self._send(payloads.NBIRTH, [{"name": "bdSeq", "datatype": 8, "long_value": self.bd_seq}, *metrics])
        self.seq = 1

    def dbirth(self, device: str, metrics: list[dict]) -> None:
        self._send(payloads.DBIRTH, metrics, device=device)

    def ddata(self, device: str, metrics: list[dict], *, seq: int | None = None) -> None:
        self._send(payloads.DDATA, metrics, device=device, seq=seq)

    def ndeath(self, bd_seq: int | None = None) -> None:
        payload = Payload(timestamp=payloads.now_ms())
        payload.metrics.add(name="bdSeq", datatype=8, long_value=self.bd_seq if bd_seq is None else bd_seq)
        self.client.publish(self.topic(payloads.NDEATH), payload.SerializeToString(), qos=1).wait_for_publish(5)

    def wait_for_command(self, timeout: float = 10.0) -> tuple[str, Payload]:
        deadline = time.monotonic() + timeout
        while not self.commands and time.monotonic() < deadline:
            self.received.wait(0.1)
        assert self.commands, "no command"
        return self.commands.pop(0)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
