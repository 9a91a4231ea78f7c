"""What the bridge does with one device message, by topic kind. The bridge (bridge.py) owns the connection,
the micro-batches and the acknowledgements; these functions own the meaning of each message, and a replay of
a dead letter (replay.py) goes through them the same way.

1. message_check: the topic, JSON, the device and its signature (with the v3 envelope: fresh, nonce) are
   checked; what cannot be used raises MessageRejected, which the bridge keeps as a dead letter.
2. Telemetry is normalised per message (telemetry_normalize) and stored per micro-batch (telemetry_store);
   any other kind is applied at once (state_apply, with its handler in handlers.py). Either way a v3 message's nonce is claimed in the same
   transaction as its effect: a nonce already used raises (or returns) it as a repeat, and nothing is applied.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime

import orjson
from celery import current_app
from django.conf import settings
from django.db import transaction

from apps.core.errors import ApplicationError
from apps.core.tasks import CHECK_CONNECTIVITY_TASK
from apps.devices.models import Device
from apps.ingest.models import IngestBatch
from apps.ingest.payload import NormalizedBatch
from apps.ingest.services import batch_create, normalize_request, request_items
from apps.mqtt import signing, topics
from apps.mqtt.envelope import Envelope, EnvelopeError, envelope_read, nonces_claim
from apps.mqtt.handlers import HANDLERS
from apps.mqtt.messages import Inbound, MessageRejected, Reason, Repeated
from apps.mqtt.models import AnnouncedWill


@dataclass
class Checked:
    """A message from a known, active device that proved who it is."""

    message: Inbound
    device: Device
    body: dict | list
    envelope: Envelope
    readings: NormalizedBatch = field(default_factory=NormalizedBatch)

    @property
    def as_of(self) -> datetime:
        """The time the message counts at: its arrival, or for old news its own ts."""
        return self.envelope.ts if self.envelope.stale else self.message.received_at

    @property
    def nonce_claim(self) -> tuple[int, str, datetime] | None:
        envelope = self.envelope
        if envelope.nonce is None or envelope.stale:  # past the window its nonce is no longer remembered
            return None
        return (self.device.pk, envelope.nonce, envelope.ts)


def decode(message: Inbound) -> dict | list:
    try:
        body = orjson.loads(message.payload)
    except orjson.JSONDecodeError as exc:
        raise MessageRejected(Reason.INVALID_JSON, f"Not JSON: {exc}") from None
    if not isinstance(body, dict | list):
        raise MessageRejected(Reason.INVALID_JSON, "Expected a JSON object.")
    if isinstance(body, dict):
        body.pop("sig", None)
    return body


class DeviceDirectory:
    """The devices the bridge hears from, looked up once per few seconds rather than once per message."""

    def __init__(self, ttl_s: float = 10.0) -> None:
        self.ttl_s = ttl_s
        self._cache: dict[str, tuple[float, Device | None]] = {}

    def get(self, device_id: str, *, fresh: bool = False) -> Device | None:
        now = time.monotonic()
        hit = self._cache.get(device_id)
        if hit is not None and hit[0] > now and not fresh:
            return hit[1]
        device = Device.objects.filter(device_id=device_id).first()
        if len(self._cache) > 100_000:
            self._cache.clear()
        self._cache[device_id] = (now + self.ttl_s, device)
        return device


def _signature_version(body: dict | list) -> int:
    return signing.V3 if isinstance(body, dict) and body.get("v") == signing.V3 else 2


def authenticate(message: Inbound, body: dict | list, directory: DeviceDirectory) -> Device:
    """The device the topic names, if it exists, is not inactive and (in signature mode) signed the message
    with its own secret: v3 for the message's topic kind, or v2 while MQTT_ACCEPT_V2_SIGNATURES allows it. A
    failed signature is checked once more against the database, so a key rotated a moment ago is not refused
    from a stale cache."""
    device = directory.get(message.device_id)
    if device is None:
        raise MessageRejected(Reason.UNKNOWN_DEVICE, f"No device {message.device_id!r}.")
    if settings.MQTT_DEVICE_AUTH == "signature":
        if not signing.is_signed(message.payload):
            raise MessageRejected(Reason.BAD_SIGNATURE, 'Unsigned: the message must end with its "sig" member.')
        kind = message.kind if _signature_version(body) == signing.V3 else None
        if kind is None and not settings.MQTT_ACCEPT_V2_SIGNATURES:
            raise MessageRejected(
                Reason.BAD_SIGNATURE, 'v2 signatures are no longer accepted: sign v3 messages ("v": 3, ts, nonce).'
            )
        if not signing.verify(message.payload, device.ingest_key_hash, kind=kind):
            device = directory.get(message.device_id, fresh=True)
            if device is None or not signing.verify(message.payload, device.ingest_key_hash, kind=kind):
                raise MessageRejected(Reason.BAD_SIGNATURE, "The signature does not match the device's key.")
    if device.status == Device.Status.INACTIVE:
        raise MessageRejected(Reason.DEVICE_INACTIVE, f"Device {device.device_id} is inactive.")
    return device


def message_check(message: Inbound, directory: DeviceDirectory, *, topic_root: str) -> Checked:
    """Everything about a message that needs no writing: MessageRejected says what is wrong with it."""
    if not message.kind:
        raise MessageRejected(Reason.INVALID_MESSAGE, f"Not a device topic under {topic_root}/.")
    body = decode(message)
    device = authenticate(message, body, directory)
    envelope = Envelope.unsigned()
    if settings.MQTT_DEVICE_AUTH == "signature" and _signature_version(body) == signing.V3:
        try:
            envelope = envelope_read(body, received_at=message.received_at)
        except EnvelopeError as exc:
            raise MessageRejected(Reason.INVALID_MESSAGE, exc.message, errors={exc.field: [exc.message]}) from None
    if envelope.stale and message.kind != topics.TELEMETRY and not _is_announced_will(device, body, envelope):
        raise MessageRejected(
            Reason.STALE,
            f"Sent at {envelope.ts.isoformat()}, more than {settings.MQTT_REPLAY_WINDOW_S} s before it arrived.",
        )
    checked = Checked(message=message, device=device, body=body, envelope=envelope)
    if message.kind == topics.TELEMETRY:
        checked.readings = telemetry_normalize(checked)
    return checked


def _is_announced_will(device: Device, body: dict | list, envelope: Envelope) -> bool:
    """A status "offline" that is the will of the device's current connection: made when it connected, so
    however old, it is news now (the broker publishes it when that connection drops)."""
    if not isinstance(body, dict) or body.get("status") != Device.ConnectionStatus.OFFLINE:
        return False
    return AnnouncedWill.objects.filter(device=device, nonce=envelope.nonce).exists()


def _timestamps_missing(items: list) -> list[str]:
    """The fields of items that would take the receive time: no ts of their own (flat records, datagrams
    without a seq and with a measurement lacking one)."""
    missing = []
    for index, item in enumerate(items):
        if not isinstance(item, dict) or item.get("ts", item.get("timestamp")) is not None:
            continue
        measurements = item.get("measurements")
        if isinstance(measurements, list):
            if item.get("seq") is not None:
                continue  # a repeated (device, seq) is dropped whole, so its receive time is stamped once
            if all(isinstance(m, dict) and m.get("ts") is not None for m in measurements):
                continue
        missing.append(f"readings[{index}].ts")
    return missing


def telemetry_normalize(checked: Checked) -> NormalizedBatch:
    """The readings of one telemetry message, through the same adapters as HTTP ingest. Every item must be
    the topic's device's own (a datagram or flat record naming it); bare sensor keys are refused, because
    a micro-batch mixes devices and could not tell whose sensors they are.

    A reading must also get the same time if the message comes again (the broker redelivers what the bridge
    had not acknowledged when it stopped): v3 readings without a ts of their own take the message's ts;
    before v3, a reading without a ts is refused unless its datagram has a seq."""
    try:
        items = request_items(checked.body)
    except ApplicationError as exc:
        raise MessageRejected(Reason.INVALID_MESSAGE, exc.message, errors=exc.errors) from None
    for index, item in enumerate(items):
        if isinstance(item, dict) and "sensor" in item:
            raise MessageRejected(
                Reason.INVALID_MESSAGE,
                "MQTT telemetry names its device: send a device datagram or a flat record, not sensor keys.",
                errors={f"readings[{index}].sensor": ["Not accepted over MQTT."]},
            )
    envelope = checked.envelope
    if envelope.ts is not None:
        default_ts = envelope.ts
    else:
        missing = _timestamps_missing(items)
        if missing:
            message = "Give readings a ts (or datagrams a seq): over MQTT a reading must keep its time if the message comes again."
            raise MessageRejected(Reason.INVALID_MESSAGE, message, errors={name: [message] for name in missing})
        default_ts = checked.message.received_at
    try:
        return normalize_request(checked.body, received_at=default_ts, device_id=checked.device.device_id)
    except ApplicationError as exc:
        raise MessageRejected(Reason.INVALID_MESSAGE, exc.message, errors=exc.errors) from None


def telemetry_store(checked: list[Checked]) -> tuple[IngestBatch | None, list[Checked]]:
    """One ingest batch of these telemetry messages, committed with their nonces. Returns the batch (None when
    every message was a repeat) and the repeats, which it leaves out. The batch's receive time is the newest
    of the messages' (for old news: their own ts). Raises what batch_create raises; then nothing is kept."""
    with transaction.atomic():
        fresh = nonces_claim([claim for item in checked if (claim := item.nonce_claim) is not None])
        kept, repeated = _split_repeats(checked, fresh)
        if not kept:
            return None, repeated
        readings = NormalizedBatch()
        for item in kept:
            readings.extend(item.readings)
        batch = batch_create(
            normalized=readings, received_at=max(item.as_of for item in kept), source=IngestBatch.Source.MQTT
        )
    return batch, repeated


def _split_repeats(checked: list[Checked], fresh: set[tuple[int, str]]) -> tuple[list[Checked], list[Checked]]:
    kept, repeated, used = [], [], set()
    for item in checked:
        claim = item.nonce_claim
        if claim is not None:
            pair = claim[:2]
            if pair not in fresh or pair in used:
                repeated.append(item)
                continue
            used.add(pair)
        kept.append(item)
    return kept, repeated


def state_apply(checked: Checked):
    """Apply a message other than telemetry, with its nonce, in one transaction; returns the handler's
    result. Raises Repeated (nothing applied) or MessageRejected."""
    with transaction.atomic():
        claim = checked.nonce_claim
        if claim is not None and not nonces_claim([claim]):
            raise Repeated()
        return HANDLERS[checked.message.kind](checked.device, checked.body, at=checked.message.received_at)


def request_connectivity_check() -> None:
    """Ask for a connectivity sweep now (it reports changes to alerting) rather than at its next beat."""
    current_app.send_task(CHECK_CONNECTIVITY_TASK)
