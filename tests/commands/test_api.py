"""The commands API: create per device, list and filter, acknowledge by the device or an operator."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from apps.commands.models import Command
from apps.commands.services import command_create
from apps.devices.models import Device
from tests.factories import API, assert_error_shape, device_client

pytestmark = pytest.mark.django_db


def _commands_url(device: Device) -> str:
    return f"{API}/devices/{device.pk}/commands/"


def _ack_url(command: Command) -> str:
    return f"{API}/commands/{command.pk}/ack/"


def test_an_operator_sends_a_command_which_waits_pending_with_an_expiry(world, operator_api):
    meter = world.devices["dc-meter-001"]
    before = timezone.now()

    response = operator_api.post(
        _commands_url(meter), {"cmd": "set_interval", "params": {"interval_s": 5}, "ttl_s": 120}, format="json"
    )

    assert response.status_code == 201, response.content
    body = response.json()
    assert {key: body[key] for key in ("device", "device_external_id", "cmd", "params", "status", "ttl_s")} == {
        "device": meter.pk,
        "device_external_id": "dc-meter-001",
        "cmd": "set_interval",
        "params": {"interval_s": 5},
        "status": "pending",
        "ttl_s": 120,
    }
    assert body["created_by"] == "operator"
    command = Command.objects.get(pk=body["cmd_id"])
    assert before + timedelta(seconds=119) < command.expires_at <= timezone.now() + timedelta(seconds=120)


def test_the_default_time_to_live_applies(world, operator_api, settings):
    settings.COMMAND_DEFAULT_TTL_S = 900
    response = operator_api.post(_commands_url(world.devices["env-001"]), {"cmd": "reboot"}, format="json")

    assert (response.status_code, response.json()["ttl_s"], response.json()["params"]) == (201, 900, {})


@pytest.mark.parametrize(
    ("principal", "expected"), [("anonymous", 401), ("viewer", 403), ("device", 403), ("operator", 201), ("admin", 201)]
)
def test_who_may_send_commands(world, api_as, principal, expected):
    response = api_as(principal).post(_commands_url(world.devices["env-001"]), {"cmd": "ping"}, format="json")

    assert response.status_code == expected, response.content


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "cmd"),
        ({"cmd": "has space"}, "cmd"),
        ({"cmd": "x" * 65}, "cmd"),
        ({"cmd": "ping", "params": [1, 2]}, "params"),
        ({"cmd": "ping", "params": "text"}, "params"),
        ({"cmd": "ping", "params": {"a": "nul\u0000"}}, "params"),
        ({"cmd": "ping", "params": {"blob": "x" * 20_000}}, "params"),
        ({"cmd": "ping", "ttl_s": 0}, "ttl_s"),
        ({"cmd": "ping", "ttl_s": 10**9}, "ttl_s"),
        ({"cmd": "ping", "ttl_s": "soon"}, "ttl_s"),
    ],
)
def test_bad_commands_are_a_400_naming_the_field(world, operator_api, body, field):
    response = operator_api.post(_commands_url(world.devices["env-001"]), body, format="json")

    assert response.status_code == 400
    assert_error_shape(response, field)
    assert not Command.objects.exists()


def test_unknown_and_inactive_devices(world, operator_api):
    assert operator_api.post(f"{API}/devices/999999/commands/", {"cmd": "ping"}, format="json").status_code == 404
    assert operator_api.post(f"{API}/devices/nope/commands/", {"cmd": "ping"}, format="json").status_code == 404
    inactive = world.devices["env-002"]
    Device.objects.filter(pk=inactive.pk).update(status="inactive")

    response = operator_api.post(_commands_url(inactive), {"cmd": "ping"}, format="json")

    assert response.status_code == 409
    assert_error_shape(response, "device")


def test_commands_are_listed_per_device_and_filtered(world, viewer_api):
    meter, sensor = world.devices["dc-meter-001"], world.devices["env-001"]
    first = command_create(device=meter, cmd="ping")
    command_create(device=meter, cmd="reboot")
    command_create(device=sensor, cmd="ping")
    Command.objects.filter(pk=first.pk).update(status="completed")

    per_device = viewer_api.get(_commands_url(meter)).json()
    every = viewer_api.get(f"{API}/commands/", {"cmd": "ping"}).json()
    completed = viewer_api.get(f"{API}/commands/", {"status": "completed"}).json()
    by_external_id = viewer_api.get(f"{API}/commands/", {"device_external_id": "env-001"}).json()
    tomorrow = (timezone.now() + timedelta(days=1)).strftime("%Y%m%d")
    none_yet = viewer_api.get(f"{API}/commands/", {"created_after": tomorrow}).json()

    assert [row["cmd"] for row in per_device["results"]] == ["reboot", "ping"]
    assert every["count"] == 2
    assert [row["cmd_id"] for row in completed["results"]] == [str(first.pk)]
    assert [row["device_external_id"] for row in by_external_id["results"]] == ["env-001"]
    assert none_yet["count"] == 0
    detail = viewer_api.get(f"{API}/commands/{first.pk}/")
    assert (detail.status_code, detail.json()["status"]) == (200, "completed")


def test_bad_filters_and_ids_are_4xx(world, viewer_api):
    assert viewer_api.get(f"{API}/commands/", {"status": "lost"}).status_code == 400
    assert_error_shape(viewer_api.get(f"{API}/commands/", {"created_after": "yesterday"}), "created_after")
    assert viewer_api.get(f"{API}/commands/{uuid.uuid4()}/").status_code == 404
    assert viewer_api.get(f"{API}/commands/not-a-uuid/").status_code == 404


def test_the_device_acknowledges_its_command_forward_only(world):
    command = command_create(device=world.devices["env-001"], cmd="ping")
    device_api = device_client(world.device_keys["env-001"])

    accepted = device_api.put(_ack_url(command), {"status": "accepted"}, format="json")
    completed = device_api.put(
        _ack_url(command), {"status": "completed", "detail": "done", "result": {"pong": 1}}, format="json"
    )
    repeated = device_api.put(_ack_url(command), {"status": "completed"}, format="json")
    late = device_api.put(_ack_url(command), {"status": "accepted"}, format="json")
    contradicting = device_api.put(_ack_url(command), {"status": "rejected"}, format="json")

    assert (accepted.status_code, accepted.json()["status"]) == (200, "accepted")
    assert (completed.status_code, completed.json()["status"]) == (200, "completed")
    assert completed.json()["result"] == {"pong": 1} and completed.json()["ack_detail"] == "done"
    assert (repeated.status_code, late.status_code) == (200, 200)
    assert late.json()["status"] == "completed"
    assert contradicting.status_code == 409
    assert_error_shape(contradicting, "status")
    command.refresh_from_db()
    assert (command.status, command.ack_source) == ("completed", "http")
    assert command.finished_at is not None and command.acked_at is not None


def test_who_may_acknowledge(world, viewer_api, operator_api):
    command = command_create(device=world.devices["env-001"], cmd="ping")
    other_device = device_client(world.device_keys["env-002"])

    assert other_device.put(_ack_url(command), {"status": "accepted"}, format="json").status_code == 403
    assert viewer_api.put(_ack_url(command), {"status": "accepted"}, format="json").status_code == 403
    response = operator_api.put(_ack_url(command), {"status": "rejected", "detail": "not now"}, format="json")
    assert (response.status_code, response.json()["status"]) == (200, "rejected")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "status"),
        ({"status": "sent"}, "status"),
        ({"status": "accepted", "detail": "x" * 1001}, "detail"),
        ({"status": "accepted", "result": [1]}, "result"),
        ({"status": "accepted", "result": {"k": "\u0000"}}, "result"),
    ],
)
def test_bad_acknowledgements_are_a_400_naming_the_field(world, operator_api, body, field):
    command = command_create(device=world.devices["env-001"], cmd="ping")

    response = operator_api.put(_ack_url(command), body, format="json")

    assert response.status_code == 400
    assert_error_shape(response, field)


def test_acknowledging_an_unknown_command_is_a_404(world, operator_api):
    assert (
        operator_api.put(f"{API}/commands/{uuid.uuid4()}/ack/", {"status": "accepted"}, format="json").status_code
        == 404
    )
    assert operator_api.put(f"{API}/commands/zzz/ack/", {"status": "accepted"}, format="json").status_code == 404


def test_the_command_list_takes_a_fixed_number_of_queries(world, viewer_api, django_assert_max_num_queries):
    for device in world.devices.values():
        for _ in range(5):
            command_create(device=device, cmd="ping")

    with django_assert_max_num_queries(6):
        response = viewer_api.get(f"{API}/commands/")

    assert response.json()["count"] == 15
