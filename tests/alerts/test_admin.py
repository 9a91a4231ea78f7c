"""The admin side of alerting: acknowledge and resolve actions (with a comment or reason), the alert page with
its history and deliveries, subscriptions with their secret, and retrying deliveries."""

from __future__ import annotations

import pytest
from django.urls import reverse

from apps.alerts.models import Alert
from apps.notifications.models import Notification, Subscription
from apps.thresholds.models import Threshold
from tests.alerts.helpers import evaluate, make_subscription, readings

pytestmark = pytest.mark.django_db

CHANGELIST = "admin:alerts_alert_changelist"


@pytest.fixture
def alert(world) -> Alert:
    Threshold.objects.filter(pk=world.thresholds["temperature"].pk).update(min_duration_s=0)
    make_subscription()
    evaluate(readings("env-001/temperature", (0, 45)))
    return Alert.objects.get()


def run_action(client, action: str, alert: Alert, **extra):
    return client.post(reverse(CHANGELIST), {"action": action, "_selected_action": [alert.pk], **extra})


def test_the_acknowledge_action_asks_for_a_comment_and_records_it(admin_client, admin_user, alert):
    page = run_action(admin_client, "acknowledge", alert)
    assert page.status_code == 200
    assert b"Acknowledge alerts" in page.content and b"env-001/temperature" in page.content

    done = run_action(admin_client, "acknowledge", alert, apply="1", text="Looking into it")

    assert done.status_code == 302
    alert.refresh_from_db()
    assert (alert.state, alert.acknowledged_by, alert.acknowledge_comment) == (
        "acknowledged",
        admin_user,
        "Looking into it",
    )


def test_the_resolve_action_insists_on_a_reason(admin_client, admin_user, alert):
    refused = run_action(admin_client, "resolve", alert, apply="1", text="  ")
    assert refused.status_code == 200 and b"Give a reason." in refused.content
    alert.refresh_from_db()
    assert alert.state == "open"

    done = run_action(admin_client, "resolve", alert, apply="1", text="Door left open")

    assert done.status_code == 302
    alert.refresh_from_db()
    assert (alert.state, alert.resolved_by, alert.resolution_reason) == ("resolved", admin_user, "Door left open")
    # A second resolve is refused per alert with the reason, not with an error page.
    again = run_action(admin_client, "resolve", alert, apply="1", text="again")
    assert again.status_code == 302


def test_the_alert_page_shows_its_events_and_deliveries(admin_client, alert):
    response = admin_client.get(reverse("admin:alerts_alert_change", args=[alert.pk]))

    assert response.status_code == 200
    content = response.content.decode()
    assert "opened" in content and "ops@example.com" in content


def test_the_alert_list_filters_by_state_and_severity(admin_client, alert):
    response = admin_client.get(reverse(CHANGELIST), {"state": "open", "severity": "critical"})

    assert response.status_code == 200
    assert list(response.context["cl"].queryset) == [alert]


def test_a_subscription_added_in_the_admin_shows_its_generated_secret_once(admin_client, world):
    response = admin_client.post(
        reverse("admin:notifications_subscription_add"),
        {
            "name": "SCADA",
            "contact": "Control room",
            "enabled": "on",
            "min_severity": "warning",
            "channels": '[{"type": "webhook", "target": "https://scada.example.com/hook"}]',
            "notify_on_resolve": "on",
            "time_zone": "UTC",
            "quiet_hours_bypass_critical": "on",
        },
        follow=True,
    )

    assert response.status_code == 200
    subscription = Subscription.objects.get(name="SCADA")
    assert subscription.secret and subscription.secret in response.content.decode()
    assert subscription.channels == [{"type": "webhook", "target": "https://scada.example.com/hook"}]


def test_the_admin_refuses_malformed_channels(admin_client, world):
    response = admin_client.post(
        reverse("admin:notifications_subscription_add"),
        {"name": "Bad", "min_severity": "warning", "channels": '[{"type": "sms", "target": "12"}]', "time_zone": "UTC"},
    )

    assert response.status_code == 200
    assert "E.164" in response.content.decode()
    assert not Subscription.objects.exists()


def test_failed_deliveries_are_retried_from_the_admin(admin_client, alert):
    notification = Notification.objects.get()
    Notification.objects.filter(pk=notification.pk).update(status="failed", last_error="HTTP 500")

    response = admin_client.post(
        reverse("admin:notifications_notification_changelist"),
        {"action": "retry", "_selected_action": [notification.pk]},
    )

    assert response.status_code == 302
    notification.refresh_from_db()
    assert (notification.status, notification.attempts) == ("pending", 0)


def test_operators_act_on_alerts_in_the_admin_and_staff_who_only_view_cannot(client, alert):
    from apps.accounts.roles import Role
    from tests.factories import make_user

    operator, _ = make_user("operator", Role.OPERATOR)
    client.force_login(operator)
    assert run_action(client, "acknowledge", alert, apply="1", text="mine").status_code == 302
    alert.refresh_from_db()
    assert (alert.state, alert.acknowledged_by) == ("acknowledged", operator)

    onlooker, _ = make_user("onlooker", Role.VIEWER)
    onlooker.is_staff = True
    onlooker.save()
    client.force_login(onlooker)
    assert client.get(reverse(CHANGELIST)).context["action_form"] is None  # no actions offered
    run_action(client, "resolve", alert, apply="1", text="not mine to close")
    alert.refresh_from_db()
    assert alert.state == "acknowledged"
