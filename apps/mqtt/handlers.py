"""What a message of each kind other than telemetry does: hello, status (and last wills), command answers and
OTA reports. Each runs in the transaction that also claims the message's nonce (services.state_apply)."""

from __future__ import annotations

import uuid
from datetime import datetime

from apps.commands.services import ack_parse, command_record_ack, commands_dispatch_pending
from apps.core.errors import ApplicationError
from apps.devices.connectivity import device_mark_offline, device_record_heartbeat
from apps.devices.models import Device
from apps.devices.services import device_record_ota_status
from apps.mqtt import topics
from apps.mqtt.envelope import NONCE_PATTERN
from apps.mqtt.messages import MessageRejected, Reason
from apps.mqtt.models import AnnouncedWill


def _check_device_field(device: Device, body: dict) -> None:
    claimed = body.get("device_id")
    if claimed is not None and claimed != device.device_id:
        raise MessageRejected(
            Reason.INVALID_MESSAGE,
            "device_id differs from the topic's device.",
            errors={"device_id": [f"Must be {device.device_id}, the device of the topic."]},
        )


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
    will_nonce = body.get("will_nonce")
    if will_nonce is not None and not (isinstance(will_nonce, str) and NONCE_PATTERN.match(will_nonce)):
        raise MessageRejected(
            Reason.INVALID_MESSAGE,
            "Invalid will_nonce.",
            errors={"will_nonce": ["The nonce of this connection's will."]},
        )
    if status == Device.ConnectionStatus.ONLINE:
        fw_version = body.get("fw_version")
        device_record_heartbeat(
            device=device, fw_version=fw_version if isinstance(fw_version, str) else None, seen_at=at
        )
        if will_nonce is not None:
            AnnouncedWill.objects.update_or_create(device=device, defaults={"nonce": will_nonce, "announced_at": at})
        commands_dispatch_pending(device=device)
    else:
        device_mark_offline(device=device, at=at)
        # A will counts once: sent again later, it is stale like any other old message.
        AnnouncedWill.objects.filter(device=device, nonce=str(body.get("nonce"))).delete()
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
