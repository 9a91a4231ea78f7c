"""Maintenance windows: planned through /api/v1/maintenance-windows/ and the admin, with the same rules (a
scope, an end after the start, at most MAINTENANCE_WINDOW_MAX_DAYS). What they do to notifications is in
test_fan_out.py; their move from the alerts app, table and rows kept, in test_maintenance_window_move.py."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import override_settings
from django.urls import reverse

from apps.notifications.models import MaintenanceWindow
from tests.alerts.helpers import T0
from tests.factories import API, assert_error_shape

pytestmark = pytest.mark.django_db


def test_maintenance_windows_are_planned_by_operators_and_read_by_viewers(world, operator_api, viewer_api):
    body = {
        "name": "Hall B shutdown",
        "location": world.building_b.pk,
        "starts_at": T0.isoformat(),
        "ends_at": (T0 + timedelta(hours=8)).isoformat(),
        "reason": "Annual maintenance",
    }

    assert viewer_api.post(f"{API}/maintenance-windows/", body, format="json").status_code == 403
    created = operator_api.post(f"{API}/maintenance-windows/", body, format="json")

    assert created.status_code == 201, created.content
    assert (created.json()["created_by"], created.json()["active"]) == ("operator", False)
    listed = viewer_api.get(f"{API}/maintenance-windows/", {"location": world.factory.pk}).json()
    assert [row["name"] for row in listed["results"]] == ["Hall B shutdown"]
    assert MaintenanceWindow.objects.get().created_by.username == "operator"


def test_a_maintenance_window_needs_a_scope_and_an_end_after_its_start(operator_api):
    response = operator_api.post(
        f"{API}/maintenance-windows/",
        {"name": "?", "starts_at": T0.isoformat(), "ends_at": T0.isoformat()},
        format="json",
    )

    assert response.status_code == 400
    assert_error_shape(response, "location", "ends_at")


@override_settings(MAINTENANCE_WINDOW_MAX_DAYS=7)
def test_a_maintenance_window_may_last_at_most_the_maximum(world, operator_api):
    body = {"name": "Retrofit", "location": world.building_b.pk, "starts_at": T0.isoformat()}

    too_long = operator_api.post(
        f"{API}/maintenance-windows/",
        {**body, "ends_at": (T0 + timedelta(days=7, seconds=1)).isoformat()},
        format="json",
    )
    longest = operator_api.post(
        f"{API}/maintenance-windows/", {**body, "ends_at": (T0 + timedelta(days=7)).isoformat()}, format="json"
    )
    stretched = operator_api.patch(
        f"{API}/maintenance-windows/{longest.json()['id']}/",
        {"ends_at": (T0 + timedelta(days=30)).isoformat()},
        format="json",
    )

    assert too_long.status_code == 400
    assert "at most 7 days" in assert_error_shape(too_long, "ends_at")["errors"]["ends_at"][0]
    assert longest.status_code == 201, longest.content
    assert stretched.status_code == 400
    assert_error_shape(stretched, "ends_at")
    assert MaintenanceWindow.objects.get().ends_at == T0 + timedelta(days=7)


def test_the_admin_refuses_a_maintenance_window_longer_than_the_maximum_on_its_end(admin_client, world):
    add_url = reverse("admin:notifications_maintenancewindow_add")
    form = {
        "name": "Retrofit",
        "device": world.devices["env-001"].pk,
        "starts_at_0": "2026-02-01",
        "starts_at_1": "00:00:00",
        "ends_at_1": "00:00:00",
    }

    with override_settings(MAINTENANCE_WINDOW_MAX_DAYS=7):
        refused = admin_client.post(add_url, {**form, "ends_at_0": "2026-02-09"})
        accepted = admin_client.post(add_url, {**form, "ends_at_0": "2026-02-08"})

    assert refused.status_code == 200
    assert "at most 7 days" in " ".join(refused.context["adminform"].form.errors["ends_at"])
    assert accepted.status_code == 302
    assert MaintenanceWindow.objects.get().name == "Retrofit"
