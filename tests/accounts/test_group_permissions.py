"""The role groups carry the admin permissions matching what each role may do in the API."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group

from apps.accounts.group_permissions import sync_role_permissions
from apps.accounts.roles import Role
from tests.factories import make_user

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def synced():
    sync_role_permissions()


def codenames(group: str) -> set[str]:
    return set(Group.objects.get(name=group).permissions.values_list("codename", flat=True))


def test_viewers_only_view():
    viewer = codenames("viewer")
    assert {"view_device", "view_threshold", "view_alert", "view_location"} <= viewer
    assert not {code for code in viewer if not code.startswith("view_")}


def test_operators_manage_thresholds_and_alerting_but_not_the_plant():
    operator = codenames("operator")
    assert {"change_threshold", "add_sensorthresholdmapping", "change_alert", "add_subscription"} <= operator
    assert not {"change_device", "add_location", "delete_sensor", "change_user"} & operator
    assert "view_device" in operator


def test_admins_manage_everything_including_users():
    admin = codenames("admin")
    assert {"change_device", "add_location", "delete_sensor", "change_user", "change_threshold"} <= admin


def test_an_operator_can_use_the_threshold_admin_but_not_the_device_admin(client):
    user, _ = make_user("ops", Role.OPERATOR, password="a-long-test-password")
    client.force_login(user)
    assert client.get("/admin/thresholds/threshold/").status_code == 200
    assert client.get("/admin/thresholds/threshold/add/").status_code == 200
    assert client.get("/admin/devices/device/add/").status_code == 403
    assert client.get("/admin/devices/device/").status_code == 200  # viewing is allowed


def test_operators_run_the_alert_and_command_lifecycles_but_never_delete_their_history():
    operator = codenames("operator")
    assert {"change_alert", "change_command", "delete_maintenancewindow"} <= operator
    assert not {"delete_alert", "add_alert", "delete_command", "add_command"} & operator


def test_operators_hold_no_permission_that_changes_the_beat_schedule_or_replays_work():
    operator = codenames("operator")
    assert "view_periodictask" in operator
    assert not {code for code in operator if code.endswith(("periodictask", "deadletter", "ingestbatch"))} - {
        "view_periodictask",
        "view_deadletter",
        "view_ingestbatch",
    }


def test_the_ingest_group_holds_no_admin_permission():
    assert codenames("ingest") == set()
