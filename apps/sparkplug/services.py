"""The Sparkplug B host: what each edge node message means for the backend. The bridge routes spBv1.0/
messages here and does what the answer asks: readings go into its micro-batch like any other telemetry, a
rebirth request is published as NCMD.

1. NBIRTH/DBIRTH record the endpoint (its bdSeq, seq, aliases, metrics and which are writable), link it to
   its device (created with its sensors when SPARKPLUG_AUTO_PROVISION is on, otherwise waiting for an admin)
   and mark the device online.
2. NDATA/DDATA: the node's seq must follow the last one (0-255, wrapping); a gap, or data from an endpoint
   with no birth, asks for a rebirth and stores nothing of the message, whose values cannot be trusted to
   belong to the aliases the host knows.
3. NDEATH takes the node and its devices offline, unless its bdSeq is not the current session's (a late
   death of a session already replaced); DDEATH takes one device offline.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

from django.conf import settings
from django.db import transaction

from apps.devices.connectivity import device_mark_offline, device_record_heartbeat
from apps.devices.models import Device, Sensor, SensorType
from apps.devices.services import device_create, sensor_create
from apps.ingest.payload import NormalizedBatch, device_type_ref
from apps.sparkplug import payloads
from apps.sparkplug.models import Endpoint
from apps.sparkplug.payloads import Topic


@dataclass
class Outcome:
    device: Device | None = None
    readings: NormalizedBatch = field(default_factory=NormalizedBatch)
    rebirth: str = ""  # the NCMD topic to ask the node for a rebirth on
    ignored: str = ""  # why nothing was done


TYPE_CODES_TTL_S = 10.0
_type_codes_cache: tuple[float, dict[str, str]] = (0.0, {})


def type_codes(*, fresh: bool = False) -> dict[str, str]:
    """Lower-cased names and aliases -> sensor type code, read again at most every few seconds (every data
    message needs it; a new type or alias counts within TYPE_CODES_TTL_S, or at the next birth, which reads
    them fresh)."""
    global _type_codes_cache
    expires, codes = _type_codes_cache
    if not fresh and time.monotonic() < expires:
        return codes
    codes = _type_codes_read()
    _type_codes_cache = (time.monotonic() + TYPE_CODES_TTL_S, codes)
    return codes


def _type_codes_read() -> dict[str, str]:
    codes = {}
    for code, aliases in SensorType.objects.values_list("code", "aliases"):
        for alias in aliases or []:
            codes[str(alias).lower()] = code
        codes[code.lower()] = code
    return codes


def metric_type_code(name: str, codes: dict[str, str]) -> str | None:
    """The sensor type of a metric: its whole name or its last path segment, matched case-insensitively
    against type codes and aliases."""
    lowered = name.lower()
    return codes.get(lowered) or codes.get(lowered.rsplit("/", 1)[-1])


def message_handle(topic: Topic, raw: bytes, *, received_at: datetime) -> Outcome:
    payload = payloads.decode(raw)
    with transaction.atomic():
        if topic.message_type in (payloads.NBIRTH, payloads.DBIRTH):
            return _birth(topic, payload, received_at)
        if topic.message_type in (payloads.NDATA, payloads.DDATA):
            return _data(topic, payload, received_at)
        if topic.message_type in (payloads.NDEATH, payloads.DDEATH):
            return _death(topic, payload, received_at)
    return Outcome(ignored=f"{topic.message_type} is not for the host")


def _node(topic: Topic) -> Endpoint | None:
    return (
        Endpoint.objects.select_for_update()
        .filter(group=topic.group, edge_node=topic.edge_node, device_name="")
        .first()
    )


def _rebirth(topic: Topic, why: str) -> Outcome:
    return Outcome(rebirth=payloads.topic_for(topic.group, payloads.NCMD, topic.edge_node), ignored=why)


def _seq_follows(node: Endpoint, seq: int) -> bool:
    follows = node.last_seq is not None and seq == (node.last_seq + 1) % 256
    node.last_seq = seq
    return follows


def _birth(topic: Topic, payload, at: datetime) -> Outcome:
    node = _node(topic)
    if topic.message_type == payloads.NBIRTH:
        bd_seq = next((m.long_value for m in payload.metrics if m.name == payloads.BDSEQ_METRIC), None)
        node, _ = Endpoint.objects.get_or_create(group=topic.group, edge_node=topic.edge_node, device_name="")
        node.bd_seq = bd_seq
        node.last_seq = payload.seq
        endpoint = node
    else:
        if node is None or not _seq_follows(node, payload.seq):
            if node is not None:
                node.save(update_fields=["last_seq"])
            return _rebirth(topic, "a device birth out of sequence")
        node.save(update_fields=["last_seq"])
        endpoint, _ = Endpoint.objects.get_or_create(
            group=topic.group, edge_node=topic.edge_node, device_name=topic.device_name
        )
    codes = type_codes(fresh=True)
    metrics, aliases, unmapped = {}, {}, []
    for metric in payload.metrics:
        if not metric.name or metric.name.startswith(("Node Control/", "Properties/")) or metric.name == "bdSeq":
            continue
        writable = bool(payloads.property_value(metric.properties, "writable"))
        metrics[metric.name] = {"datatype": metric.datatype, "writable": writable}
        if metric.HasField("alias"):
            aliases[str(metric.alias)] = metric.name
        if metric_type_code(metric.name, codes) is None:
            unmapped.append(metric.name)
    endpoint.metrics, endpoint.aliases, endpoint.unmapped_metrics, endpoint.born_at = metrics, aliases, unmapped, at
    if endpoint.device is None:
        # A device an admin made with the endpoint's id (the edge node's, for its broker account) is its
        # acceptance already; without one, only auto-provisioning creates it.
        endpoint.device = Device.objects.filter(device_id=endpoint.external_id).first()
        if endpoint.device is None and settings.SPARKPLUG_AUTO_PROVISION:
            endpoint.device = _provision(endpoint)
    if endpoint.device is not None:
        _ensure_sensors(endpoint.device, {metric_type_code(name, codes) for name in metrics} - {None})
        device_record_heartbeat(device=endpoint.device, seen_at=at)
    endpoint.save()
    return Outcome(device=endpoint.device)


def _provision(endpoint: Endpoint) -> Device:
    device = Device.objects.filter(device_id=endpoint.external_id).first()
    if device is None:
        # A device behind an edge node is where the node is, so it shows up there on the plant overview.
        node_device = Device.objects.filter(device_id=f"{endpoint.group}:{endpoint.edge_node}").first()
        device, _ = device_create(
            device_id=endpoint.external_id,
            name=endpoint.external_id,
            payload_adapter="",
            location=node_device.location if node_device else None,
        )
    return device


def endpoint_accept(*, endpoint: Endpoint) -> Device:
    """An admin accepts a waiting endpoint: its device (and sensors) are created; its next data is stored."""
    with transaction.atomic():
        endpoint.device = _provision(endpoint)
        endpoint.save(update_fields=["device"])
        codes = type_codes(fresh=True)
        _ensure_sensors(endpoint.device, {metric_type_code(name, codes) for name in endpoint.metrics} - {None})
    return endpoint.device


def _ensure_sensors(device: Device, type_codes_wanted: set[str]) -> None:
    present = set(Sensor.objects.filter(device=device, channel="").values_list("sensor_type__code", flat=True))
    for sensor_type in SensorType.objects.filter(code__in=type_codes_wanted - present):
        sensor_create(device=device, sensor_type=sensor_type)


def _data(topic: Topic, payload, at: datetime) -> Outcome:
    node = _node(topic)
    if node is None:
        return _rebirth(topic, "data before a birth")
    follows = _seq_follows(node, payload.seq)
    node.save(update_fields=["last_seq"])
    if not follows:
        return _rebirth(topic, "a gap in seq")
    endpoint = node
    if topic.device_name:
        endpoint = Endpoint.objects.filter(
            group=topic.group, edge_node=topic.edge_node, device_name=topic.device_name
        ).first()
        if endpoint is None:
            return _rebirth(topic, "device data before its birth")
    if endpoint.device is None:
        return Outcome(ignored="waiting for an admin to accept it")
    outcome = Outcome(device=endpoint.device)
    codes = type_codes()
    default_us = int((payload.timestamp / 1000 if payload.timestamp else at.timestamp()) * 1_000_000)
    for index, metric in enumerate(payload.metrics):
        name = metric.name or endpoint.aliases.get(str(metric.alias), "")
        code = metric_type_code(name, codes) if name else None
        if code is None:
            continue  # listed in the endpoint's unmapped metrics at its birth
        ts_us = metric.timestamp * 1000 if metric.timestamp else default_us
        outcome.readings.add(device_type_ref(endpoint.external_id, code), ts_us, payloads.metric_value(metric), index)
    return outcome


def _death(topic: Topic, payload, at: datetime) -> Outcome:
    node = _node(topic)
    if node is None:
        return Outcome(ignored="death of an unknown node")
    if topic.message_type == payloads.NDEATH:
        bd_seq = next((m.long_value for m in payload.metrics if m.name == payloads.BDSEQ_METRIC), None)
        if bd_seq is not None and node.bd_seq is not None and bd_seq != node.bd_seq:
            return Outcome(ignored=f"a stale death (bdSeq {bd_seq}, the session's is {node.bd_seq})")
        node.last_seq = None  # whatever comes next must be a birth
        node.save(update_fields=["last_seq"])
        endpoints = Endpoint.objects.filter(group=topic.group, edge_node=topic.edge_node, device__isnull=False)
    else:
        _seq_follows(node, payload.seq)
        node.save(update_fields=["last_seq"])
        endpoints = Endpoint.objects.filter(
            group=topic.group, edge_node=topic.edge_node, device_name=topic.device_name, device__isnull=False
        )
    for endpoint in endpoints.select_related("device"):
        device_mark_offline(device=endpoint.device, at=at)
    return Outcome(device=node.device)


def timestamp_ms(at: datetime) -> int:
    return int(at.astimezone(UTC).timestamp() * 1000)
