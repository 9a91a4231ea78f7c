"""/api/v1/alerts/: filters, the lifecycle actions and who may call them."""

from __future__ import annotations

import pytest
from django.utils import timezone

from apps.alerts.models import Alert, AlertEvent, ThresholdState
from apps.thresholds.models import Threshold
from tests.alerts.helpers import evaluate, readings
from tests.factories import API, assert_error_shape

pytestmark = pytest.mark.django_db

ALERTS = f"{API}/alerts/"


@pytest.fixture
def alerts(world) -> dict[str, Alert]:
    """Three alerts: env-001/temperature critical (open), env-002/temperature warning (acknowledged, opened an
    hour later), dc-meter-001/voltage_dc (resolved)."""
    Threshold.objects.filter(pk=world.thresholds["temperature"].pk).update(min_duration_s=0)
    evaluate(
        readings("env-001/temperature", (0, 45))
        + readings("env-002/temperature", (3600, 37))
        + readings("dc-meter-001/voltage_dc", (0, 820), (60, 750))
    )
    by_sensor = {alert.sensor.key: alert for alert in Alert.objects.select_related("sensor")}
    env2 = by_sensor["env-002/temperature"]
    Alert.objects.filter(pk=env2.pk).update(state="acknowledged")
    return by_sensor


def ids(response) -> set[str]:
    assert response.status_code == 200, response.content
    return {row["sensor"] for row in response.json()["results"]}


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("", {"env-001/temperature", "env-002/temperature", "dc-meter-001/voltage_dc"}),
        ("?state=open", {"env-001/temperature"}),
        ("?state=open&state=acknowledged", {"env-001/temperature", "env-002/temperature"}),
        ("?active=true", {"env-001/temperature", "env-002/temperature"}),
        ("?active=false", {"dc-meter-001/voltage_dc"}),
        ("?severity=warning", {"env-002/temperature", "dc-meter-001/voltage_dc"}),
        ("?sensor=env-001/temperature", {"env-001/temperature"}),
        ("?sensor_type=voltage_dc", {"dc-meter-001/voltage_dc"}),
        ("?device_id=env-002", {"env-002/temperature"}),
        ("?opened_after=2026-02-12T16:30:00Z", {"env-002/temperature"}),
        ("?opened_before=2026-02-12T16:30:00%2B00:00", {"env-001/temperature", "dc-meter-001/voltage_dc"}),
        ("?opened_after=20260213", set()),
        # An offset PostgreSQL itself would refuse (beyond ±15:59) is compared in UTC.
        (
            "?opened_after=2026-02-12T16:00:00%2B16:35",
            {"env-001/temperature", "env-002/temperature", "dc-meter-001/voltage_dc"},
        ),
        ("?active_at=2026-02-12T16:30:00Z", {"env-001/temperature"}),
        ("?kind=device_offline", set()),
    ],
)
def test_alerts_filter_by_state_severity_sensor_device_type_and_time(alerts, viewer_api, query, expected):
    assert ids(viewer_api.get(ALERTS + query)) == expected


def test_alerts_filter_by_device_id_and_location_subtree(world, alerts, viewer_api):
    assert ids(viewer_api.get(ALERTS, {"device": world.devices["env-001"].pk})) == {"env-001/temperature"}
    assert ids(viewer_api.get(ALERTS, {"location": world.building_a.pk})) == {
        "env-001/temperature",
        "dc-meter-001/voltage_dc",
    }
    assert ids(viewer_api.get(ALERTS, {"location": world.floor_b1.pk})) == {"env-002/temperature"}
    assert ids(viewer_api.get(ALERTS, {"location": 999999})) == set()


def test_bad_filter_values_are_answered_in_the_error_shape(alerts, viewer_api):
    response = viewer_api.get(
        ALERTS, {"state": "exploded", "opened_after": "yesterday", "active_at": "0001-01-01T00:00:00+01:00"}
    )

    assert response.status_code == 400
    assert_error_shape(response, "state", "opened_after", "active_at")


def test_an_alert_shows_the_fields_consumers_rely_on(alerts, viewer_api):
    alert = alerts["env-001/temperature"]

    body = viewer_api.get(f"{ALERTS}{alert.pk}/").json()

    assert body["id"] == alert.pk
    assert (body["sensor"], body["threshold"], body["severity"], body["state"]) == (
        "env-001/temperature",
        alert.threshold_id,
        "critical",
        "open",
    )
    assert (body["value"], body["peak_value"], body["acknowledged_by"], body["resolved_at"]) == (45.0, 45.0, None, None)
    assert body["opened_at"] == "2026-02-12T16:00:00Z"
    assert (body["device_id"], body["unit"], body["location_path"]) == (
        "env-001",
        "°C",
        "Plant 1 / Building A / Floor A1 / A1 South",
    )
    assert [(e["kind"], e["severity"], e["value"]) for e in body["events"]] == [("opened", "critical", 45.0)]


def test_the_alert_list_costs_the_same_queries_for_one_alert_or_many(
    world, alerts, viewer_api, django_assert_max_num_queries
):
    with django_assert_max_num_queries(6):
        assert viewer_api.get(ALERTS).status_code == 200
    evaluate(readings("dc-meter-001/voltage_dc", *[(120 + 20 * i, 900 if i % 2 == 0 else 750) for i in range(40)]))
    assert Alert.objects.count() > 20
    with django_assert_max_num_queries(6):
        assert viewer_api.get(ALERTS).status_code == 200


@pytest.mark.parametrize(
    ("principal", "status"),
    [("anonymous", 401), ("device", 403), ("viewer", 403), ("operator", 200), ("admin", 200)],
)
@pytest.mark.parametrize("step", ["acknowledge", "resolve"])
def test_acknowledging_and_resolving_needs_an_operator(alerts, api_as, principal, status, step):
    alert = alerts["env-001/temperature"]

    response = api_as(principal).post(f"{ALERTS}{alert.pk}/{step}/", {"comment": "x", "reason": "y"}, format="json")

    assert response.status_code == status, response.content
    alert.refresh_from_db()
    if status == 200:
        assert alert.state == ("acknowledged" if step == "acknowledge" else "resolved")
    else:
        assert_error_shape(response)
        assert alert.state == "open"


def test_acknowledging_records_who_when_and_why_as_an_event(alerts, operator_api):
    alert = alerts["env-001/temperature"]
    before = timezone.now()

    response = operator_api.post(f"{ALERTS}{alert.pk}/acknowledge/", {"comment": "Checking the chiller"}, format="json")

    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["state"], body["acknowledged_by"], body["acknowledge_comment"]) == (
        "acknowledged",
        "operator",
        "Checking the chiller",
    )
    alert.refresh_from_db()
    assert alert.acknowledged_at >= before
    assert body["events"][-1] == {
        **body["events"][-1],
        "kind": "acknowledged",
        "user": "operator",
        "comment": "Checking the chiller",
    }

    again = operator_api.post(f"{ALERTS}{alert.pk}/acknowledge/", {}, format="json")
    assert again.status_code == 409
    assert "Already acknowledged by operator" in assert_error_shape(again, "state")["detail"]


def test_resolving_by_hand_needs_a_reason_and_restarts_the_sensors_evaluation(world, alerts, operator_api):
    alert = alerts["env-001/temperature"]

    missing = operator_api.post(f"{ALERTS}{alert.pk}/resolve/", {"reason": "  "}, format="json")
    assert missing.status_code == 400
    assert_error_shape(missing, "reason")

    response = operator_api.post(f"{ALERTS}{alert.pk}/resolve/", {"reason": "Sensor was in the oven"}, format="json")

    body = response.json()
    assert (body["state"], body["resolution"], body["resolution_reason"], body["resolved_by"]) == (
        "resolved",
        "manual",
        "Sensor was in the oven",
        "operator",
    )
    assert body["events"][-1]["kind"] == "resolved" and body["events"][-1]["user"] == "operator"
    state = ThresholdState.objects.get(sensor__key="env-001/temperature")
    assert (state.level, state.alert_id, state.breach_started_at) == ("normal", None, None)
    assert operator_api.post(f"{ALERTS}{alert.pk}/resolve/", {"reason": "again"}, format="json").status_code == 409
    assert operator_api.post(f"{ALERTS}{alert.pk}/acknowledge/", {}, format="json").status_code == 409

    # Still too hot: a new alert opens for the new breach (here at once: no minimum duration).
    evaluate(readings("env-001/temperature", (120, 46)))
    assert Alert.objects.filter(sensor__key="env-001/temperature").exclude(state="resolved").count() == 1


def test_an_unknown_alert_is_a_404_in_the_error_shape(alerts, operator_api):
    response = operator_api.post(f"{ALERTS}999999/acknowledge/", {}, format="json")

    assert response.status_code == 404
    assert_error_shape(response)


def test_events_are_listed_oldest_first_on_the_alert(alerts, viewer_api):
    alert = alerts["dc-meter-001/voltage_dc"]

    events = viewer_api.get(f"{ALERTS}{alert.pk}/").json()["events"]

    assert [(e["kind"], e["at"]) for e in events] == [
        ("opened", "2026-02-12T16:00:00Z"),
        ("resolved", "2026-02-12T16:01:00Z"),
    ]
    assert AlertEvent.objects.filter(alert=alert).count() == 2
