"""Sending and expiring commands, with the transport replaced by a recording publish function (the edge)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.commands.models import Command
from apps.commands.services import command_create, command_send, commands_dispatch_pending, commands_expire
from apps.devices.models import Device
from workers.tasks.devices import sweep_commands

pytestmark = pytest.mark.django_db


class Recorder:
    def __init__(self, fail: Exception | None = None) -> None:
        self.sent: list[tuple[str, dict, int]] = []
        self.fail = fail

    def __call__(self, device: Device, message: dict, expiry_s: int) -> None:
        if self.fail is not None:
            raise self.fail
        self.sent.append((device.device_id, message, expiry_s))


def test_a_pending_command_is_published_once_and_marked_sent(world):
    command = command_create(device=world.devices["env-001"], cmd="set_interval", params={"interval_s": 5}, ttl_s=60)
    publish = Recorder()

    assert command_send(command_id=str(command.pk), publish=publish) == "sent"
    assert command_send(command_id=str(command.pk), publish=publish) == "skipped"

    [(device_id, message, expiry_s)] = publish.sent
    assert device_id == "env-001" and 55 <= expiry_s <= 60
    assert {key: message[key] for key in ("msg_type", "cmd_id", "cmd", "params", "device_id")} == {
        "msg_type": "command",
        "cmd_id": str(command.pk),
        "cmd": "set_interval",
        "params": {"interval_s": 5},
        "device_id": "env-001",
    }
    command.refresh_from_db()
    assert (command.status, command.send_count) == ("sent", 1) and command.sent_at is not None


def test_a_command_for_an_offline_device_waits_and_an_expired_one_is_never_sent(world):
    Device.objects.filter(device_id="env-001").update(connection_status="offline")
    waiting = command_create(device=world.devices["env-001"], cmd="ping")
    late = command_create(device=world.devices["env-002"], cmd="ping")
    Command.objects.filter(pk=late.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    publish = Recorder()

    assert command_send(command_id=str(waiting.pk), publish=publish) == "held"
    assert command_send(command_id=str(late.pk), publish=publish) == "expired"

    assert publish.sent == []
    assert Command.objects.get(pk=waiting.pk).status == "pending"
    assert Command.objects.get(pk=late.pk).status == "expired"


def test_a_failed_publish_leaves_the_command_pending(world):
    command = command_create(device=world.devices["env-001"], cmd="ping")

    with pytest.raises(ConnectionError):
        command_send(command_id=str(command.pk), publish=Recorder(fail=ConnectionError("broker down")))

    assert Command.objects.get(pk=command.pk).status == "pending"


def test_the_sweep_expires_what_ran_out_and_queues_sends_for_reachable_devices(
    world, django_capture_on_commit_callbacks, monkeypatch
):
    queued: list[str] = []
    monkeypatch.setattr("apps.commands.services.enqueue_send", lambda *, command_id: queued.append(command_id))
    Device.objects.filter(device_id="env-002").update(connection_status="offline")
    overdue = command_create(device=world.devices["env-001"], cmd="ping")
    unanswered = command_create(device=world.devices["env-001"], cmd="reboot")
    ready = command_create(device=world.devices["dc-meter-001"], cmd="ping")
    held = command_create(device=world.devices["env-002"], cmd="ping")
    Command.objects.filter(pk__in=[overdue.pk, unanswered.pk]).update(expires_at=timezone.now() - timedelta(seconds=1))
    Command.objects.filter(pk=unanswered.pk).update(status="sent")

    with django_capture_on_commit_callbacks(execute=True):
        assert sweep_commands() == {"expired": 2, "queued": 1}

    assert queued == [str(ready.pk)]
    assert set(Command.objects.filter(status="expired").values_list("pk", flat=True)) == {overdue.pk, unanswered.pk}
    assert Command.objects.get(pk=held.pk).status == "pending"


def test_dispatch_for_one_device_queues_only_its_commands(world, django_capture_on_commit_callbacks, monkeypatch):
    queued: list[str] = []
    monkeypatch.setattr("apps.commands.services.enqueue_send", lambda *, command_id: queued.append(command_id))
    mine = command_create(device=world.devices["env-001"], cmd="ping")
    command_create(device=world.devices["env-002"], cmd="ping")

    with django_capture_on_commit_callbacks(execute=True):
        assert commands_dispatch_pending(device=world.devices["env-001"]) == 1

    assert queued == [str(mine.pk)]


def test_expiry_leaves_answered_commands_alone(world):
    command = command_create(device=world.devices["env-001"], cmd="ping")
    Command.objects.filter(pk=command.pk).update(status="accepted", expires_at=timezone.now() - timedelta(hours=1))

    assert commands_expire() == 0
    assert Command.objects.get(pk=command.pk).status == "accepted"
