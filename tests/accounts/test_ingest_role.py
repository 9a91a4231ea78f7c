"""The ingest role of gateways: sends readings and heartbeats, follows its own batches, and reads nothing else
(every other route is checked in test_permissions.py)."""

from __future__ import annotations

from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command

from apps.accounts.roles import Role, role_of
from apps.devices.models import Device
from tests.factories import API, make_user, token_client
from tests.ingest.helpers import ingest

pytestmark = pytest.mark.django_db


def test_a_gateway_sends_readings_and_follows_its_own_batches_only(world, ingest_api, operator_api):
    own = ingest(ingest_api, {"sensor": "env-001/temperature", "value": 20.0})
    foreign = ingest(operator_api, {"sensor": "env-002/temperature", "value": 21.0})

    assert ingest_api.get(f"{API}/ingest/batches/{own.pk}/").json()["stored"] == 1
    assert ingest_api.get(f"{API}/ingest/batches/{foreign.pk}/").status_code == 404
    assert operator_api.get(f"{API}/ingest/batches/{own.pk}/").status_code == 200


def test_a_gateway_records_heartbeats_for_any_device_but_cannot_read_it(world, ingest_api):
    device = world.devices["env-002"]

    response = ingest_api.post(f"{API}/devices/{device.pk}/heartbeat/", {"fw_version": "2.1"}, format="json")

    assert response.status_code == 200, response.content
    assert Device.objects.get(pk=device.pk).fw_version == "2.1"
    assert ingest_api.get(f"{API}/devices/{device.pk}/").status_code == 403
    assert ingest_api.get(f"{API}/realtime/").status_code == 403


def test_create_api_user_makes_a_gateway_that_is_not_staff(world):
    out = StringIO()

    call_command("create_api_user", "line-3-gateway", "--role", "ingest", stdout=out)

    user = get_user_model().objects.get(username="line-3-gateway")
    assert role_of(user) == Role.INGEST
    assert not user.is_staff
    client = token_client(out.getvalue().strip())
    sent = client.post(f"{API}/ingest/", {"sensor": "env-001/humidity", "value": 40.0}, format="json")
    assert sent.status_code == 202, sent.content
    assert client.get(f"{API}/locations/").status_code == 403


def test_the_plant_overview_is_closed_to_gateways(world, client):
    user, _ = make_user("gateway", Role.INGEST, password="a-long-test-password")
    client.force_login(user)

    assert client.get("/ops/").status_code == 403
    assert client.get("/admin/").status_code == 302  # not staff: the admin's login page
