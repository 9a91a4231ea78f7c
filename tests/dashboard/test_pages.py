"""The dashboard pages as the server renders them: who may see them, what they are given to draw."""

from __future__ import annotations

import json

import pytest
from django.contrib.auth import get_user_model
from django.contrib.staticfiles import finders
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from apps.accounts.roles import Role
from tests.factories import make_device, make_location, make_sensor, make_user

pytestmark = pytest.mark.django_db

PASSWORD = "dashboard-pw-123"


def page_config(response) -> dict:
    """The JSON the page's script starts from (json_script "dashboard-config")."""
    html = response.content.decode()
    start = html.index('<script id="dashboard-config" type="application/json">') + len(
        '<script id="dashboard-config" type="application/json">'
    )
    return json.loads(html[start : html.index("</script>", start)])


def logged_in(client, role: Role):
    user, _ = make_user(role.name.lower(), role, password=PASSWORD)
    client.force_login(user)
    return user


@pytest.mark.parametrize("name", ["overview", "alerts"])
def test_anonymous_visitors_are_sent_to_the_dashboard_login(client, name):
    response = client.get(reverse(f"dashboard:{name}"))

    assert response.status_code == 302
    assert response["Location"] == f"{reverse('dashboard:login')}?next={reverse(f'dashboard:{name}')}"


def test_a_user_without_a_role_gets_a_forbidden_page(client):
    client.force_login(get_user_model().objects.create_user("nobody", password=PASSWORD, is_staff=True))

    response = client.get(reverse("dashboard:overview"))

    assert response.status_code == 403
    assert b"holds no role" in response.content


def test_a_viewer_logs_in_on_the_dashboard_login_and_sees_the_plant(world, client):
    user, _ = make_user("viewer", Role.VIEWER, password=PASSWORD)
    assert not user.is_staff  # viewers stay out of the model admin

    login = client.post(reverse("dashboard:login"), {"username": "viewer", "password": PASSWORD})
    overview = client.get(login["Location"])

    assert login.status_code == 302 and login["Location"] == reverse("dashboard:overview")
    assert overview.status_code == 200
    html = overview.content.decode()
    for location in world.locations:
        assert f'data-location="{location.pk}" data-path="{location.tree_path}"' in html
    assert 'id="filter-type"' in html and 'id="filter-device"' in html
    assert {t["code"] for t in page_config(overview)["sensor_types"]} == set(world.sensor_types)


def test_the_admin_index_links_the_dashboard_pages(world, admin_client):
    response = admin_client.get(reverse("admin:index"))

    assert response.status_code == 200
    assert f'href="{reverse("dashboard:overview")}"' in response.content.decode()
    assert f'href="{reverse("dashboard:alerts")}"' in response.content.decode()
    assert response.context["site_url"] == reverse("dashboard:overview")  # the admin's "View site"


def test_staff_signed_in_to_the_admin_use_the_dashboard_with_the_same_session(world, client):
    make_user("operator", Role.OPERATOR, password=PASSWORD)

    login = client.post(
        f"{reverse('admin:login')}?next={reverse('dashboard:overview')}",
        {"username": "operator", "password": PASSWORD, "next": reverse("dashboard:overview")},
    )

    assert login.status_code == 302 and login["Location"] == reverse("dashboard:overview")
    assert client.get(reverse("dashboard:overview")).status_code == 200


def test_the_overview_costs_the_same_queries_whatever_the_size_of_the_plant(world, client):
    logged_in(client, Role.VIEWER)

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert client.get(reverse("dashboard:overview")).status_code == 200
        return len(captured)

    before = queries()
    for number in range(10):
        area = make_location(f"Hall {number}", parent=world.floor_b1)
        device, _ = make_device(f"extra-{number}", location=area)
        make_sensor(device, world.sensor_types["temperature"])

    assert queries() == before


def test_the_sensor_page_is_given_the_effective_thresholds(world, client):
    logged_in(client, Role.VIEWER)
    sensor = world.sensors["env-002/temperature"]

    response = client.get(reverse("dashboard:sensor", args=[sensor.pk]))

    assert response.status_code == 200
    config = page_config(response)
    assert config["sensor"] == {"id": sensor.pk, "key": sensor.key, "unit": "°C", "type": "Temperature"}
    # The type's bands with the sensor's mapping laid over them (warning_high 30 -> 35).
    assert config["thresholds"] == [
        {
            "id": world.thresholds["temperature"].pk,
            "warning_low": 5.0,
            "warning_high": 35.0,
            "critical_low": 0.0,
            "critical_high": 40.0,
        }
    ]
    assert config["api"]["readings"] == "/api/v1/readings/"


@pytest.mark.parametrize(("role", "can_act"), [(Role.VIEWER, False), (Role.OPERATOR, True), (Role.ADMIN, True)])
def test_only_operators_and_admins_are_offered_actions(world, client, role, can_act):
    logged_in(client, role)

    board = client.get(reverse("dashboard:alerts"))
    device = client.get(reverse("dashboard:device", args=[world.devices["env-001"].pk]))

    assert page_config(board)["can_act"] is can_act
    assert page_config(device)["can_act"] is can_act
    assert ('id="command-form"' in device.content.decode()) is (
        can_act and page_config(device)["api"]["commands"] is not None
    )


def test_the_device_page_shows_the_device_and_links_its_sensors(world, client):
    logged_in(client, Role.VIEWER)
    device = world.devices["dc-meter-001"]

    response = client.get(reverse("dashboard:device", args=[device.pk]))

    html = response.content.decode()
    assert response.status_code == 200
    for key in ("dc-meter-001/voltage_dc", "dc-meter-001/current_dc"):
        assert f'href="{reverse("dashboard:sensor", args=[world.sensors[key].pk])}"' in html
    assert page_config(response)["sensor_ids"] == sorted(
        [world.sensors["dc-meter-001/current_dc"].pk, world.sensors["dc-meter-001/voltage_dc"].pk],
        key=lambda pk: [s.key for s in world.sensors.values() if s.pk == pk][0],
    )


@pytest.mark.parametrize("name", ["sensor", "device"])
def test_unknown_sensors_and_devices_are_404(world, client, name):
    logged_in(client, Role.VIEWER)

    assert client.get(reverse(f"dashboard:{name}", args=[999_999])).status_code == 404


def test_the_chart_library_is_served_from_the_npm_install():
    assert finders.find("vendor/chart.js/chart.umd.min.js"), "run `npm ci` (make run and make test do)"


def test_logging_out_returns_to_the_dashboard_login(world, client):
    logged_in(client, Role.VIEWER)

    response = client.post(reverse("dashboard:logout"))

    assert response.status_code == 302 and response["Location"] == reverse("dashboard:login")
    assert client.get(reverse("dashboard:overview")).status_code == 302
