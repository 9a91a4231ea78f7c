"""What the bridge does with one device message, by topic kind. The bridge (bridge.py) owns the connection,
the micro-batches and the acknowledgements; these functions own the meaning of each message.

A message that cannot be used raises MessageRejected: the bridge keeps it as a dead letter and goes on.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from datetime import datetime

import orjson
from celery import current_app
from django.conf import settings
from django.db import transaction

from apps.commands.services import ack_parse, command_record_ack, commands_dispatch_pending
from apps.core.errors import ApplicationError
from apps.deadletters.models import DeadLetter
from apps.deadletters.services import deadletter_record
from apps.devices.models import Device
from apps.devices.services import device_mark_offline, device_record_heartbeat, device_record_ota_status
from apps.ingest.payload import NormalizedBatch
from apps.ingest.services import normalize_request, request_items
from apps.mqtt import signing, topics

CHECK_CONNECTIVITY_TASK = "devices.check_connectivity"
DEAD_LETTER_TEXT_LIMIT = 64 * 1024


class Reason:
    INVALID_JSON = "invalid_json"
    UNKNOWN_DEVICE = "unknown_device"
    DEVICE_INACTIVE = "device_inactive"
    BAD_SIGNATURE = "bad_signature"
    INVALID_MESSAGE = "invalid_message"
    UNKNOWN_COMMAND = "unknown_command"
    ERROR = "error"


class MessageRejected(Exception):
    def __init__(self, reason: str, detail: str, *, errors: dict | None = None) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail
        self.errors = errors or {}


@dataclass
class Inbound:
    """One message as the bridge received it."""

    topic: str
    device_id: str
    kind: str
    payload: bytes
    received_at: datetime
    mid: int = 0
    qos: int = 0
    generation: int = 0


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


def authenticate(message: Inbound, directory: DeviceDirectory) -> Device:
    """The device the topic names, if it exists, is not inactive and (in signature mode) signed the message
    with its own secret. A failed signature is checked once more against the database, so a key rotated a
    moment ago is not refused from a stale cache."""
    device = directory.get(message.device_id)
    if device is None:
        raise MessageRejected(Reason.UNKNOWN_DEVICE, f"No device {message.device_id!r}.")
    if settings.MQTT_DEVICE_AUTH == "signature":
        if not signing.is_signed(message.payload):
            raise MessageRejected(Reason.BAD_SIGNATURE, 'Unsigned: the message must end with its "sig" member.')
        if not signing.verify(message.payload, device.ingest_key_hash):
            device = directory.get(message.device_id, fresh=True)
            if device is None or not signing.verify(message.payload, device.ingest_key_hash):
                raise MessageRejected(Reason.BAD_SIGNATURE, "The signature does not match the device's key.")
    if device.status == Device.Status.INACTIVE:
        raise MessageRejected(Reason.DEVICE_INACTIVE, f"Device {device.device_id} is inactive.")
    return device


def _check_device_field(device: Device, body: dict) -> None:
    claimed = body.get("device_id")
    if claimed is not None and claimed != device.device_id:
        raise MessageRejected(
            Reason.INVALID_MESSAGE,
            "device_id differs from the topic's device.",
            errors={"device_id": [f"Must be {device.device_id}, the device of the topic."]},
        )


def telemetry_normalize(device: Device, body: dict | list, *, received_at: datetime) -> NormalizedBatch:
    """The readings of one telemetry message, through the same adapters as HTTP ingest. Every item must be
    the topic's device's own (a datagram or flat record naming it); bare sensor keys are refused, because
    a micro-batch mixes devices and could not tell whose sensors they are."""
    try:
        items = request_items(body)
    except ApplicationError as exc:
        raise MessageRejected(Reason.INVALID_MESSAGE, exc.message, errors=exc.errors) from None
    for index, item in enumerate(items):
        if isinstance(item, dict) and "sensor" in item:
            raise MessageRejected(
                Reason.INVALID_MESSAGE,
                "MQTT telemetry names its device: send a device datagram or a flat record, not sensor keys.",
                errors={f"readings[{index}].sensor": ["Not accepted over MQTT."]},
            )
    try:
        return normalize_request(body, received_at=received_at, device_id=device.device_id)
    except ApplicationError as exc:
        raise MessageRejected(Reason.INVALID_MESSAGE, exc.message, errors=exc.errors) from None


def _object(body: dict | list) -> dict:
    if not isinstance(body, dict):
        raise MessageRejected(Reason.INVALID_MESSAGE, "Expected a JSON object.")
    return body


def hello_record(device: Device, body: dict | list, *, at: datetime) -> None:
    """{"fw_version": ...}: the device is there; it gets the commands that waited for it."""
    body = _object(body)
    _check_device_field(device, body)
    fw_version = body.get("fw_version")
    if fw_version is not None and (not isinstance(fw_version, str) or len(fw_version) > 64 or "\x00" in fw_version):
        raise MessageRejected(
            Reason.INVALID_MESSAGE, "Invalid fw_version.", errors={"fw_version": ["At most 64 characters."]}
        )
    with transaction.atomic():
        device_record_heartbeat(device=device, fw_version=fw_version or None, seen_at=at)
        commands_dispatch_pending(device=device)


def status_record(device: Device, body: dict | list, *, at: datetime) -> str:
    """{"status": "online" | "offline"}, also fit for the device's last will: the connection status changes
    at once. Returns the status."""
    body = _object(body)
    _check_device_field(device, body)
    status = body.get("status")
    if status not in (Device.ConnectionStatus.ONLINE, Device.ConnectionStatus.OFFLINE):
        raise MessageRejected(
            Reason.INVALID_MESSAGE, "Invalid status.", errors={"status": ["Must be 'online' or 'offline'."]}
        )
    with transaction.atomic():
        if status == Device.ConnectionStatus.ONLINE:
            fw_version = body.get("fw_version")
            device_record_heartbeat(
                device=device, fw_version=fw_version if isinstance(fw_version, str) else None, seen_at=at
            )
            commands_dispatch_pending(device=device)
        else:
            device_mark_offline(device=device, at=at)
    return status


def command_ack_record(device: Device, body: dict | list, *, at: datetime) -> bool:
    """{"cmd_id", "status": "accepted" | "rejected" | "completed", "detail", "result"}. Returns whether the
    command changed; an answer the command is past (late, repeated, or contradicting a final one) is
    counted by the bridge, not kept as a dead letter."""
    body = _object(body)
    _check_device_field(device, body)
    try:
        command_id = str(uuid.UUID(str(body.get("cmd_id"))))
    except ValueError:
        raise MessageRejected(
            Reason.INVALID_MESSAGE, "Invalid cmd_id.", errors={"cmd_id": ["Must be the UUID of a command."]}
        ) from None
    try:
        _, changed = command_record_ack(command_id=command_id, ack=ack_parse(body), source="mqtt", device=device, at=at)
    except ApplicationError as exc:
        if exc.status_code == 409:
            return False
        if exc.status_code in (403, 404):
            raise MessageRejected(Reason.UNKNOWN_COMMAND, f"No command {command_id} of this device.") from None
        raise MessageRejected(Reason.INVALID_MESSAGE, exc.message, errors=exc.errors) from None
    return changed


def ota_status_record(device: Device, body: dict | list, *, at: datetime) -> None:
    body = _object(body)
    _check_device_field(device, body)
    try:
        device_record_ota_status(device=device, report=body, at=at)
    except ApplicationError as exc:
        raise MessageRejected(Reason.INVALID_MESSAGE, exc.message, errors=exc.errors) from None


HANDLERS = {
    topics.HELLO: hello_record,
    topics.STATUS: status_record,
    topics.COMMAND_ACK: command_ack_record,
    topics.OTA_STATUS: ota_status_record,
}


def request_connectivity_check() -> None:
    """Ask for a connectivity sweep now (it reports changes to alerting) rather than at its next beat."""
    current_app.send_task(CHECK_CONNECTIVITY_TASK)


def dead_letter_record(
    message: Inbound, *, reason: str, detail: str, errors: dict | None = None, traceback: str = ""
) -> DeadLetter:
    """Keep a message the bridge could not use, with why, for staff to look at in the admin."""
    text = message.payload.decode("utf-8", errors="replace").replace("\x00", "\ufffd")
    return deadletter_record(
        # By reason, so the admin's filter on task name sorts them: mqtt.invalid_json, mqtt.unknown_device...
        task_name=f"mqtt.{reason}",
        source="mqtt",
        payload={
            "topic": message.topic,
            "received_at": message.received_at.isoformat(),
            "text": text[:DEAD_LETTER_TEXT_LIMIT],
            "truncated": len(text) > DEAD_LETTER_TEXT_LIMIT,
            "errors": errors or {},
        },
        error=f"{reason}: {detail}".replace("\x00", "\ufffd"),
        traceback=traceback,
    )
