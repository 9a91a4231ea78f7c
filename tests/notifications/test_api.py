"""/api/v1/subscriptions/ and /api/v1/notifications/: who may do what, validation, the secret shown once,
and the delivery history with its filters."""

from __future__ import annotations

import pytest

from apps.notifications.models import Notification, Subscription
from apps.thresholds.models import Threshold
from tests.alerts.helpers import evaluate, make_subscription, readings
from tests.factories import API, assert_error_shape

pytestmark = pytest.mark.django_db

SUBSCRIPTIONS = f"{API}/subscriptions/"
NOTIFICATIONS = f"{API}/notifications/"


def subscription_body(world, **overrides) -> dict:
    return {
        "name": "Building A night shift",
        "location": world.building_a.pk,
        "sensor_type": world.sensor_types["temperature"].pk,
        "min_severity": "critical",
        "channels": [
            {"type": "email", "target": "night@example.com"},
            {"type": "webhook", "target": "https://scada.example.com/hooks/alerts"},
            {"type": "sms", "target": "+491701234567"},
            {"type": "push", "target": "fcm:abc123"},
        ],
        "notify_on_resolve": True,
        "renotify_minutes": 15,
        "quiet_hours_start": "22:00",
        "quiet_hours_end": "06:00",
        "time_zone": "Europe/Berlin",
        **overrides,
    }


@pytest.mark.parametrize(
    ("principal", "status"), [("anonymous", 401), ("device", 403), ("viewer", 403), ("operator", 201)]
)
def test_operators_create_subscriptions(world, api_as, principal, status):
    response = api_as(principal).post(SUBSCRIPTIONS, subscription_body(world), format="json")

    assert response.status_code == status, response.content
    if status != 201:
        assert_error_shape(response)


def test_viewers_read_subscriptions_but_never_their_secret(world, viewer_api):
    subscription = make_subscription(channels=[{"type": "webhook", "target": "https://example.com/h"}])

    listed = viewer_api.get(SUBSCRIPTIONS).json()["results"]
    detail = viewer_api.get(f"{SUBSCRIPTIONS}{subscription.pk}/").json()

    assert [row["id"] for row in listed] == [subscription.pk]
    assert "secret" not in detail and detail["has_secret"] is True
    assert viewer_api.delete(f"{SUBSCRIPTIONS}{subscription.pk}/").status_code == 403


def test_a_generated_webhook_secret_is_shown_once(world, operator_api):
    created = operator_api.post(SUBSCRIPTIONS, subscription_body(world), format="json")

    body = created.json()
    assert created.status_code == 201
    subscription = Subscription.objects.get(pk=body["id"])
    assert body["secret"] == subscription.secret and len(body["secret"]) >= 32
    assert (body["channels"], body["location"], body["min_severity"], body["renotify_minutes"]) == (
        subscription_body(world)["channels"],
        world.building_a.pk,
        "critical",
        15,
    )
    assert body["created_by"] == "operator"
    assert "secret" not in operator_api.get(f"{SUBSCRIPTIONS}{body['id']}/").json()

    # An update that leaves the secret alone does not show it again; rotating shows the new one.
    updated = operator_api.patch(f"{SUBSCRIPTIONS}{body['id']}/", {"name": "Renamed"}, format="json").json()
    assert updated["secret"] is None and updated["name"] == "Renamed"
    rotated = operator_api.post(f"{SUBSCRIPTIONS}{body['id']}/rotate-secret/").json()
    subscription.refresh_from_db()
    assert rotated["secret"] == subscription.secret != body["secret"]


def test_a_secret_can_be_given_and_is_write_only(world, operator_api):
    created = operator_api.post(
        SUBSCRIPTIONS, subscription_body(world, secret="my-own-secret-0123456789"), format="json"
    ).json()

    assert created["secret"] == "my-own-secret-0123456789"
    assert Subscription.objects.get(pk=created["id"]).secret == "my-own-secret-0123456789"


def test_an_email_channel_without_target_uses_the_subscribed_users_address(world, operator_api):
    from django.contrib.auth import get_user_model

    user = get_user_model().objects.create(username="nina", email="nina@example.com")

    response = operator_api.post(
        SUBSCRIPTIONS,
        {"name": "Nina", "user": user.pk, "channels": [{"type": "email"}]},
        format="json",
    )

    assert response.status_code == 201, response.content
    assert response.json()["channels"] == [{"type": "email", "target": "nina@example.com"}]
    assert response.json()["secret"] is None  # no webhook, no secret


@pytest.mark.parametrize(
    ("channels", "field"),
    [
        ([], "channels"),
        ([{"type": "email", "target": "not-an-address"}], "channels[0].target"),
        ([{"type": "email"}], "channels"),
        (
            [{"type": "sms", "target": "+491701234567"}, {"type": "webhook", "target": "ftp://example.com/x"}],
            "channels[1].target",
        ),
        ([{"type": "sms", "target": "0170 1234567"}], "channels[0].target"),
        ([{"type": "push", "target": "has spaces"}], "channels[0].target"),
        ([{"type": "pager", "target": "123"}], "channels[0].type"),
    ],
)
def test_channels_are_validated_per_type(world, operator_api, channels, field):
    response = operator_api.post(SUBSCRIPTIONS, subscription_body(world, channels=channels), format="json")

    assert response.status_code == 400, response.content
    assert_error_shape(response, field)


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"quiet_hours_end": None}, "quiet_hours_end"),
        ({"quiet_hours_end": "22:00"}, "quiet_hours_end"),
        ({"time_zone": "Mars/Olympus"}, "time_zone"),
        ({"min_severity": "normal"}, "min_severity"),
        ({"renotify_minutes": 0}, "renotify_minutes"),
        ({"storm_window_s": 0}, "storm_window_s"),
        ({"location": 999999}, "location"),
        ({"secret": "short"}, "secret"),
    ],
)
def test_subscription_options_are_validated(world, operator_api, overrides, field):
    response = operator_api.post(SUBSCRIPTIONS, subscription_body(world, **overrides), format="json")

    assert response.status_code == 400, response.content
    assert_error_shape(response, field)


@pytest.fixture
def history(world, receiver):
    """An opened alert notified by email and to a webhook, the webhook delivery failed for good."""
    Threshold.objects.filter(pk=world.thresholds["temperature"].pk).update(min_duration_s=0)
    email = make_subscription(name="email")
    hook = make_subscription(name="hook", channels=[{"type": "webhook", "target": receiver.url}])
    evaluate(readings("env-001/temperature", (0, 45)))
    Notification.objects.filter(subscription=hook).update(status="failed", attempts=6, last_error="HTTP 500")
    return {"email": email, "hook": hook}


def test_the_delivery_history_filters_by_status_channel_subscription_and_alert(history, viewer_api):
    def channels(**query) -> list[str]:
        response = viewer_api.get(NOTIFICATIONS, query)
        assert response.status_code == 200, response.content
        return sorted(row["channel"] for row in response.json()["results"])

    alert_id = Notification.objects.first().alert_id
    assert channels() == ["email", "webhook"]
    assert channels(status="failed") == ["webhook"]
    assert channels(channel="email") == ["email"]
    assert channels(subscription=history["hook"].pk) == ["webhook"]
    assert channels(alert=alert_id) == ["email", "webhook"]
    assert channels(created_after="20990101") == []
    row = viewer_api.get(NOTIFICATIONS, {"status": "failed"}).json()["results"][0]
    assert {key: row[key] for key in ("alert", "subscription", "status", "attempts", "last_error", "sent_at")} == {
        "alert": alert_id,
        "subscription": history["hook"].pk,
        "status": "failed",
        "attempts": 6,
        "last_error": "HTTP 500",
        "sent_at": None,
    }
    assert row["target"].startswith("http://127.0.0.1:") and row["event_kind"] == "opened"


def test_operators_retry_failed_notifications(history, viewer_api, operator_api, receiver):
    failed = Notification.objects.get(status="failed")
    pending = Notification.objects.get(status="pending")

    assert viewer_api.post(f"{NOTIFICATIONS}{failed.pk}/retry/").status_code == 403
    response = operator_api.post(f"{NOTIFICATIONS}{failed.pk}/retry/")

    assert response.status_code == 200, response.content
    assert (response.json()["status"], response.json()["attempts"]) == ("pending", 0)
    conflict = operator_api.post(f"{NOTIFICATIONS}{pending.pk}/retry/")
    assert conflict.status_code == 409
    assert_error_shape(conflict, "status")


def test_quiet_hours_default_to_the_plants_time_zone(world, operator_api, settings):
    settings.TIME_ZONE = "Europe/Berlin"

    response = operator_api.post(
        SUBSCRIPTIONS,
        {
            "name": "Night",
            "channels": [{"type": "sms", "target": "+491701234567"}],
            "quiet_hours_start": "22:00",
            "quiet_hours_end": "06:00",
        },
        format="json",
    )

    assert response.status_code == 201, response.content
    assert response.json()["time_zone"] == "Europe/Berlin"
