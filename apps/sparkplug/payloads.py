"""Sparkplug B topics and payloads (Eclipse Sparkplug 3.0): parsing, the values of metrics, and the payloads
the host sends."""

from __future__ import annotations

import time
from dataclasses import dataclass

from google.protobuf.message import DecodeError

from apps.sparkplug.sparkplug_b_pb2 import Payload

NAMESPACE = "spBv1.0"
NBIRTH, NDEATH, NDATA, NCMD = "NBIRTH", "NDEATH", "NDATA", "NCMD"
DBIRTH, DDEATH, DDATA, DCMD = "DBIRTH", "DDEATH", "DDATA", "DCMD"
NODE_TYPES = {NBIRTH, NDEATH, NDATA, NCMD}
DEVICE_TYPES = {DBIRTH, DDEATH, DDATA, DCMD}
REBIRTH_METRIC = "Node Control/Rebirth"
BDSEQ_METRIC = "bdSeq"

# Sparkplug data types (section 6.4.16) the host reads as numbers, and the one it writes booleans with.
BOOLEAN = 11
DOUBLE = 10


class PayloadError(Exception):
    pass


@dataclass(frozen=True)
class Topic:
    group: str
    message_type: str
    edge_node: str
    device_name: str = ""


def topic_parse(topic: str) -> Topic | None:
    """spBv1.0/{group}/{type}/{edge node}[/{device}]; None for STATE and anything else."""
    parts = topic.split("/")
    if len(parts) not in (4, 5) or parts[0] != NAMESPACE:
        return None
    _, group, message_type, edge_node, *device = parts
    if message_type not in NODE_TYPES | DEVICE_TYPES or (len(parts) == 5) != (message_type in DEVICE_TYPES):
        return None
    return Topic(group, message_type, edge_node, device[0] if device else "")


def topic_for(group: str, message_type: str, edge_node: str, device_name: str = "") -> str:
    return "/".join(part for part in (NAMESPACE, group, message_type, edge_node, device_name) if part)


def state_topic(host_id: str) -> str:
    return f"{NAMESPACE}/STATE/{host_id}"


def decode(raw: bytes) -> Payload:
    try:
        return Payload.FromString(raw)
    except DecodeError as exc:
        raise PayloadError(f"Not a Sparkplug B payload: {exc}") from None


def metric_value(metric) -> float | None:
    """A metric's value as a float, None when it has none or is not a number (strings, bytes)."""
    if metric.is_null:
        return None
    kind = metric.WhichOneof("value")
    if kind in ("int_value", "long_value", "float_value", "double_value"):
        value = getattr(metric, kind)
        # Signed types travel as their unsigned two's complement (section 6.4.16).
        if kind == "int_value" and metric.datatype in (1, 2, 3) and value >= 2**31:
            value -= 2**32
        elif kind == "long_value" and metric.datatype == 4 and value >= 2**63:
            value -= 2**64
        return float(value)
    if kind == "boolean_value":
        return 1.0 if metric.boolean_value else 0.0
    return None


def property_value(properties, key: str):
    for name, value in zip(properties.keys, properties.values, strict=False):
        if name == key:
            kind = value.WhichOneof("value")
            return getattr(value, kind) if kind else None
    return None


def now_ms() -> int:
    return int(time.time() * 1000)


def rebirth_request() -> bytes:
    payload = Payload(timestamp=now_ms())
    payload.metrics.add(name=REBIRTH_METRIC, timestamp=payload.timestamp, datatype=BOOLEAN, boolean_value=True)
    return payload.SerializeToString()


def metric_write(writes: dict[str, tuple[int, object]]) -> bytes:
    """An NCMD/DCMD payload setting metrics: {name: (datatype, value)}."""
    payload = Payload(timestamp=now_ms())
    for name, (datatype, value) in writes.items():
        metric = payload.metrics.add(name=name, timestamp=payload.timestamp, datatype=datatype)
        if datatype == BOOLEAN:
            metric.boolean_value = bool(value)
        elif datatype == 9:
            metric.float_value = float(value)
        elif datatype == 10:
            metric.double_value = float(value)
        elif datatype in (4, 8, 13):
            metric.long_value = int(value) % 2**64
        elif datatype in (1, 2, 3, 5, 6, 7):
            metric.int_value = int(value) % 2**32
        else:
            metric.string_value = str(value)
    return payload.SerializeToString()
