"""Commands to devices: create, send (through a publish function the caller provides), acknowledge, expire.

This app knows nothing of MQTT: `command_send` takes the function that puts a message on the wire, so the
transport (apps/mqtt) depends on commands and not the other way round.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import orjson
from celery import current_app
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from apps.commands.models import Command
from apps.core.errors import ApplicationError
from apps.core.tasks import SEND_COMMAND_TASK
from apps.devices.models import Device

MAX_JSON_BYTES = 16 * 1024
MAX_DETAIL_LENGTH = 1000

# publish(device, message, expiry_s): put one command message on the wire, or raise (ConnectionError,
# TimeoutError) when it could not be handed to the broker.
Publish = Callable[[Device, dict, int], None]

# check(device=, cmd=, params=): raises ApplicationError when a transport cannot carry the command to this
# device (Sparkplug devices only take writes of their writable metrics). Transports register theirs at start.
COMMAND_CHECKS: list[Callable[..., None]] = []


def contains_nul(value: Any) -> bool:
    """PostgreSQL text and jsonb cannot hold U+0000; caught here, it is a 400 rather than a database error."""
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(contains_nul(key) or contains_nul(item) for key, item in value.items())
    if isinstance(value, list):
        return any(contains_nul(item) for item in value)
    return False


def json_object_errors(value: Any) -> list[str]:
    """What is wrong with `value` as a small JSON object to store (params, result); empty when nothing."""
    if not isinstance(value, dict):
        return ["Must be a JSON object."]
    if contains_nul(value):
        return ["Strings may not contain the NUL character (\\u0000)."]
    if len(orjson.dumps(value)) > MAX_JSON_BYTES:
        return [f"Must be at most {MAX_JSON_BYTES} bytes as JSON."]
    return []


def command_create(
    *, device: Device, cmd: str, params: dict | None = None, ttl_s: int | None = None, created_by=None
) -> Command:
    """Store a command for a device and queue its sending once committed. It waits as pending while the
    device is offline and is sent when the device is back, unless its time to live has run out."""
    if device.status == Device.Status.INACTIVE:
        raise ApplicationError(
            "The device is inactive: it cannot receive commands.",
            errors={"device": ["Inactive devices cannot receive commands."]},
            status_code=409,
        )
    for check in COMMAND_CHECKS:
        check(device=device, cmd=cmd, params=params or {})
    ttl_s = ttl_s or settings.COMMAND_DEFAULT_TTL_S
    with transaction.atomic():
        command = Command.objects.create(
            device=device,
            cmd=cmd,
            params=params or {},
            ttl_s=ttl_s,
            expires_at=timezone.now() + timedelta(seconds=ttl_s),
            created_by=created_by,
        )
        transaction.on_commit(lambda: enqueue_send(command_id=str(command.pk)), robust=True)
    return command


def enqueue_send(*, command_id: str) -> None:
    current_app.send_task(SEND_COMMAND_TASK, kwargs={"command_id": command_id})


def command_message(command: Command, *, now: datetime) -> dict:
    """What the device receives on its command topic."""
    return {
        "v": 2,
        "msg_type": "command",
        "device_id": command.device.device_id,
        "cmd_id": str(command.pk),
        "cmd": command.cmd,
        "params": command.params,
        "ts": now.isoformat().replace("+00:00", "Z"),
        "expires_at": command.expires_at.isoformat().replace("+00:00", "Z"),
    }


def command_send(*, command_id: str, publish: Publish) -> str:
    """Publish a pending command to its device and mark it sent. Returns what happened: "sent", "held"
    (the device is offline or inactive: it waits), "expired", or "skipped" (gone, or no longer pending).

    The command row stays locked while it is published, so two sends of one command (its own task and a
    sweep, say) publish it once. If the process dies after publishing and before the commit, the command is
    still pending and is published again: devices must treat a repeated cmd_id as the same command, which
    QoS 1 asks of them anyway.
    """
    with transaction.atomic():
        command = Command.objects.select_for_update(of=("self",)).select_related("device").filter(pk=command_id).first()
        if command is None or command.status != Command.Status.PENDING:
            return "skipped"
        now = timezone.now()
        if command.expires_at <= now:
            command.status = Command.Status.EXPIRED
            command.finished_at = now
            command.save(update_fields=["status", "finished_at"])
            return "expired"
        device = command.device
        if device.connection_status == Device.ConnectionStatus.OFFLINE or device.status == Device.Status.INACTIVE:
            return "held"
        remaining_s = max(1, int((command.expires_at - now).total_seconds()))
        publish(device, command_message(command, now=now), remaining_s)
        command.status = Command.Status.SENT
        command.sent_at = now
        command.send_count += 1
        command.save(update_fields=["status", "sent_at", "send_count"])
        return "sent"


@dataclass(frozen=True)
class Ack:
    status: str
    detail: str = ""
    result: dict | None = None


def ack_parse(body: Any) -> Ack:
    """Check a device's answer ({"status", "detail", "result"}) as sent over MQTT; the API's serializer applies
    the same rules."""
    if not isinstance(body, dict):
        raise ApplicationError(
            "An acknowledgement must be a JSON object.", errors={"non_field_errors": ["Not an object."]}
        )
    errors: dict[str, list[str]] = {}
    status = body.get("status")
    if status not in Command.ACK_STATUSES:
        errors["status"] = [f"Must be one of: {', '.join(Command.ACK_STATUSES)}."]
    detail = body.get("detail")
    if detail is None:
        detail = ""
    elif not isinstance(detail, str) or len(detail) > MAX_DETAIL_LENGTH or "\x00" in detail:
        errors["detail"] = [f"Must be a string of at most {MAX_DETAIL_LENGTH} characters."]
    result = body.get("result")
    if result is not None and (problems := json_object_errors(result)):
        errors["result"] = problems
    if errors:
        raise ApplicationError("Invalid command acknowledgement.", errors=errors)
    return Ack(status=status, detail=detail, result=result)


def command_record_ack(
    *,
    command_id: str,
    ack: Ack,
    source: str,
    device: Device | None = None,
    user=None,
    at: datetime | None = None,
) -> tuple[Command, bool]:
    """Record a device's answer, and who sent it (`device`, or the `user` answering for it). Returns the
    command and whether it changed.

    A command only moves forward (pending/sent → accepted → completed or rejected): repeating the current
    status is a harmless no-op (QoS 1 redelivers), an older status arriving late is ignored, and a final
    command (completed, rejected, expired) answers 409 to a different status. `device` is the device that
    answered, when it was a device: it may only answer its own commands.
    """
    at = at or timezone.now()
    with transaction.atomic():
        command = Command.objects.select_for_update().filter(pk=command_id).first()
        if command is None:
            raise ApplicationError("No such command.", errors={"cmd_id": ["Unknown command."]}, status_code=404)
        if device is not None and command.device_id != device.pk:
            raise ApplicationError("A device may only acknowledge its own commands.", status_code=403)
        if ack.status == command.status or (command.is_final and ack.status == Command.Status.ACCEPTED):
            return command, False
        if command.is_final:
            raise ApplicationError(
                f"The command is already {command.status}.",
                errors={"status": [f"The command is already {command.status}; it cannot become {ack.status}."]},
                status_code=409,
            )
        command.status = ack.status
        command.acked_at = at
        command.ack_source = source
        command.acked_by_device = device
        command.acked_by = user if device is None else None
        if ack.detail:
            command.ack_detail = ack.detail
        if ack.result is not None:
            command.result = ack.result
        if command.is_final:
            command.finished_at = at
        command.save(
            update_fields=[
                "status",
                "acked_at",
                "ack_source",
                "acked_by_device",
                "acked_by",
                "ack_detail",
                "result",
                "finished_at",
            ]
        )
        return command, True


def commands_expire(*, now: datetime | None = None) -> int:
    """Pending and sent commands whose time to live ran out become expired; returns how many."""
    now = now or timezone.now()
    return Command.objects.filter(status__in=[Command.Status.PENDING, Command.Status.SENT], expires_at__lte=now).update(
        status=Command.Status.EXPIRED, finished_at=now
    )


def commands_expire_now(*, command_ids: list) -> int:
    """Staff call these commands off: those not answered yet expire now (a device that already has one may
    still answer it; the answer is then refused with 409)."""
    now = timezone.now()
    return Command.objects.filter(pk__in=command_ids, status__in=[Command.Status.PENDING, Command.Status.SENT]).update(
        status=Command.Status.EXPIRED, expires_at=now, finished_at=now
    )


def commands_dispatch_pending(*, device: Device | None = None, limit: int = 1000) -> int:
    """Queue a send for the pending commands of devices that can take them (not offline, not inactive),
    oldest first: after a device came back, and as a sweep for sends that never got queued or kept failing.
    Returns how many sends were queued."""
    pending = Command.objects.filter(status=Command.Status.PENDING, expires_at__gt=timezone.now())
    if device is not None:
        pending = pending.filter(device=device)
    pending = pending.exclude(device__connection_status=Device.ConnectionStatus.OFFLINE).exclude(
        device__status=Device.Status.INACTIVE
    )
    command_ids = [str(pk) for pk in pending.order_by("created_at").values_list("pk", flat=True)[:limit]]
    for command_id in command_ids:
        transaction.on_commit(lambda command_id=command_id: enqueue_send(command_id=command_id), robust=True)
    return len(command_ids)
