"""Every acknowledgement records who sent it: the device itself, or the user who answered for it."""

from __future__ import annotations

import pytest
from django.contrib import admin

from apps.accounts.roles import Role
from apps.commands.models import Command
from apps.commands.services import Ack, command_create, command_record_ack
from tests.factories import API, device_client, make_user

pytestmark = pytest.mark.django_db


def ack(client, command: Command, status: str):
    return client.put(f"{API}/commands/{command.pk}/ack/", {"status": status}, format="json")


def test_a_devices_own_answer_names_the_device(world):
    command = command_create(device=world.devices["env-001"], cmd="ping")

    response = ack(device_client(world.device_keys["env-001"]), command, "accepted")

    assert response.status_code == 200, response.content
    assert (response.json()["acked_by_device"], response.json()["acked_by"]) == ("env-001", None)
    command.refresh_from_db()
    assert (command.acked_by_device_id, command.acked_by_id) == (world.devices["env-001"].pk, None)


def test_an_operators_answer_names_the_operator_and_the_next_device_answer_replaces_it(world, operator_api):
    command = command_create(device=world.devices["env-001"], cmd="reboot")

    by_operator = ack(operator_api, command, "accepted")
    by_device = ack(device_client(world.device_keys["env-001"]), command, "completed")

    assert (by_operator.json()["acked_by"], by_operator.json()["acked_by_device"]) == ("operator", None)
    assert (by_device.json()["acked_by"], by_device.json()["acked_by_device"]) == (None, "env-001")
    listed = operator_api.get(f"{API}/commands/", {"device": world.devices["env-001"].pk}).json()["results"]
    assert listed[0]["acked_by_device"] == "env-001"


def test_an_answer_over_mqtt_names_its_device(world):
    command = command_create(device=world.devices["env-002"], cmd="ping")

    command_record_ack(command_id=str(command.pk), ack=Ack(status="completed"), source="mqtt", device=command.device)

    command.refresh_from_db()
    assert (command.ack_source, command.acked_by_device_id, command.acked_by_id) == ("mqtt", command.device_id, None)


def test_the_admin_shows_who_answered(world):
    user, _ = make_user("shift-lead", Role.OPERATOR)
    command = command_create(device=world.devices["env-001"], cmd="ping")
    command_record_ack(command_id=str(command.pk), ack=Ack(status="accepted"), source="http", user=user)
    command_admin = admin.site._registry[Command]

    assert command_admin.answered_by(Command.objects.get(pk=command.pk)) == "user shift-lead"
    command_record_ack(command_id=str(command.pk), ack=Ack(status="completed"), source="mqtt", device=command.device)
    assert command_admin.answered_by(Command.objects.get(pk=command.pk)) == "device env-001"
