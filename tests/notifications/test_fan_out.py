"""Which subscriptions hear of which alert events, and when not: scope, severity, event kinds, quiet hours,
maintenance windows, storm control with its digest, and reminders of unacknowledged alerts."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import pytest
from django.core import mail
from django.utils import timezone

from apps.accounts.roles import Role
from apps.alerts.models import Alert, AlertEvent
from apps.alerts.services import alert_acknowledge, alert_resolve
from apps.notifications.models import MaintenanceWindow, Notification
from apps.notifications.services import (
    notification_deliver,
    notifications_fan_out,
    notifications_renotify,
    notifications_send_digests,
)
from apps.thresholds.models import Threshold
from tests.alerts.helpers import T0, evaluate, make_subscription, readings
from tests.factories import make_user

pytestmark = pytest.mark.django_db

TEMP = "env-001/temperature"  # in Plant 1 / Building A / Floor A1 / A1 South


@pytest.fixture
def immediate(world):
    Threshold.objects.filter(pk=world.thresholds["temperature"].pk).update(min_duration_s=0)
    return world


def told(subscription) -> list[tuple[str, str]]:
    """(event kind, status) of the notifications a subscription got, oldest first."""
    return list(
        Notification.objects.filter(subscription=subscription, kind="event")
        .order_by("id")
        .values_list("event__kind", "status")
    )


def test_scope_matches_the_location_subtree_the_sensor_type_and_the_severity(immediate):
    everything = make_subscription(name="everything")
    building_a = make_subscription(name="building A", location=immediate.building_a)
    building_b = make_subscription(name="building B", location=immediate.building_b)
    temperature = make_subscription(name="temperature", sensor_type=immediate.sensor_types["temperature"])
    humidity = make_subscription(name="humidity", sensor_type=immediate.sensor_types["humidity"])
    critical_only = make_subscription(name="critical only", min_severity="critical")

    evaluate(readings(TEMP, (0, 31), (10, 41)))

    opened_and_escalated = [("opened", "pending"), ("escalated", "pending")]
    assert told(everything) == opened_and_escalated
    assert told(building_a) == opened_and_escalated
    assert told(temperature) == opened_and_escalated
    assert told(building_b) == told(humidity) == []
    # A warning is below its minimum; the escalation to critical is its first news of the alert.
    assert told(critical_only) == [("escalated", "pending")]


def test_every_channel_of_a_subscription_gets_its_own_notification(immediate):
    subscription = make_subscription(
        channels=[
            {"type": "email", "target": "a@example.com"},
            {"type": "email", "target": "b@example.com"},
            {"type": "sms", "target": "+491701234567"},
            {"type": "webhook", "target": "https://example.com/hook"},
            {"type": "email", "target": "a@example.com"},
        ]
    )

    evaluate(readings(TEMP, (0, 45)))

    assert sorted(Notification.objects.filter(subscription=subscription).values_list("channel", "target")) == [
        ("email", "a@example.com"),
        ("email", "b@example.com"),
        ("sms", "+491701234567"),
        ("webhook", "https://example.com/hook"),
    ]


def test_resolutions_and_acknowledgements_are_sent_only_to_those_who_asked(immediate):
    operator, _ = make_user("operator", Role.OPERATOR)
    default = make_subscription(name="default")  # notify_on_resolve defaults to true
    quiet_about_endings = make_subscription(name="openings only", notify_on_resolve=False)
    team = make_subscription(name="team", notify_on_acknowledge=True)
    evaluate(readings(TEMP, (0, 45)))
    alert = Alert.objects.get()

    alert_acknowledge(alert_id=alert.pk, user=operator, comment="on my way")
    alert_resolve(alert_id=alert.pk, user=operator, reason="fan replaced")
    notifications_fan_out(event_ids=list(AlertEvent.objects.filter(fanned_out_at=None).values_list("pk", flat=True)))

    assert told(default) == [("opened", "pending"), ("resolved", "pending")]
    assert told(quiet_about_endings) == [("opened", "pending")]
    assert told(team) == [("opened", "pending"), ("acknowledged", "pending"), ("resolved", "pending")]


def test_de_escalations_are_recorded_but_not_notified(immediate):
    subscription = make_subscription()

    evaluate(readings(TEMP, (0, 45), (10, 35)))

    assert told(subscription) == [("opened", "pending")]
    assert AlertEvent.objects.filter(kind="deescalated").count() == 1


def test_fanning_out_again_never_doubles_a_notification(immediate):
    subscription = make_subscription()
    evaluate(readings(TEMP, (0, 45)))
    event_ids = list(AlertEvent.objects.values_list("pk", flat=True))

    again = notifications_fan_out(event_ids=event_ids)

    assert again == []
    assert told(subscription) == [("opened", "pending")]


@pytest.mark.parametrize(
    ("now", "severity", "status"),
    [
        # 23:30 in Berlin, inside 22:00-06:00: a warning waits, a critical passes.
        (datetime(2026, 2, 12, 22, 30, tzinfo=UTC), "warning", "suppressed"),
        (datetime(2026, 2, 12, 22, 30, tzinfo=UTC), "critical", "pending"),
        # 05:30 UTC is 06:30 in Berlin: the quiet hours are over there, though not in UTC.
        (datetime(2026, 2, 13, 5, 30, tzinfo=UTC), "warning", "pending"),
        (datetime(2026, 2, 12, 12, 0, tzinfo=UTC), "warning", "pending"),
    ],
)
def test_quiet_hours_in_the_subscriptions_time_zone_hold_back_all_but_critical(immediate, now, severity, status):
    subscription = make_subscription(
        quiet_hours_start=time(22, 0), quiet_hours_end=time(6, 0), time_zone="Europe/Berlin"
    )
    evaluate(readings(TEMP, (0, 45 if severity == "critical" else 35)), fan_out=False)

    notifications_fan_out(event_ids=list(AlertEvent.objects.values_list("pk", flat=True)), now=now)

    notification = Notification.objects.get(subscription=subscription)
    assert notification.status == status
    if status == "suppressed":
        assert notification.detail == "Quiet hours."


def test_quiet_hours_hold_back_critical_too_when_the_subscription_says_so(immediate):
    subscription = make_subscription(
        quiet_hours_start=time(22, 0), quiet_hours_end=time(6, 0), quiet_hours_bypass_critical=False
    )
    evaluate(readings(TEMP, (0, 45)), fan_out=False)

    notifications_fan_out(
        event_ids=list(AlertEvent.objects.values_list("pk", flat=True)), now=datetime(2026, 2, 12, 23, 0, tzinfo=UTC)
    )

    assert told(subscription) == [("opened", "suppressed")]


def test_maintenance_windows_record_alerts_but_suppress_their_notifications(immediate):
    subscription = make_subscription()
    MaintenanceWindow.objects.create(
        name="Floor A1 retrofit", location=immediate.floor_a1, starts_at=T0, ends_at=T0 + timedelta(hours=1)
    )
    MaintenanceWindow.objects.create(
        name="env-002 calibration",
        device=immediate.devices["env-002"],
        starts_at=T0 + timedelta(minutes=30),
        ends_at=T0 + timedelta(hours=2),
    )

    evaluate(
        readings(TEMP, (60, 45))  # inside the Floor A1 window
        + readings("env-002/temperature", (60, 45))  # before its device's window
        + readings("dc-meter-001/voltage_dc", (4000, 900))  # Floor A1 too, after the window
    )
    evaluate(readings("env-002/temperature", (3600, 20), (3610, 45)))  # inside its device's window

    by_sensor = {
        (n.alert.sensor.key, n.alert.opened_at.isoformat()): (n.status, n.detail)
        for n in Notification.objects.filter(subscription=subscription, event__kind="opened").select_related(
            "alert__sensor"
        )
    }
    assert by_sensor == {
        (TEMP, "2026-02-12T16:01:00+00:00"): ("suppressed", "Maintenance window: Floor A1 retrofit."),
        ("env-002/temperature", "2026-02-12T16:01:00+00:00"): ("pending", ""),
        ("dc-meter-001/voltage_dc", "2026-02-12T17:06:40+00:00"): ("pending", ""),
        ("env-002/temperature", "2026-02-12T17:00:10+00:00"): (
            "suppressed",
            "Maintenance window: env-002 calibration.",
        ),
    }
    assert Alert.objects.count() == 4


def test_storm_control_holds_back_beyond_the_limit_and_sends_one_digest(immediate):
    subscription = make_subscription(storm_limit=2, storm_window_s=60)
    # Five breach episodes in a row: five openings (resolutions are news too, and count against the limit).
    evaluate(readings(TEMP, *[(20 * i + offset, value) for i in range(5) for offset, value in ((0, 45), (10, 20))]))

    statuses = told(subscription)
    assert statuses[:2] == [("opened", "pending"), ("resolved", "pending")]
    assert {status for _, status in statuses[2:]} == {"held"}
    held = len(statuses) - 2
    assert held == 8

    # Not before the window has passed since the first held notification...
    assert notifications_send_digests() == []
    digest_ids = notifications_send_digests(now=timezone.now() + timedelta(seconds=61))

    digest = Notification.objects.get(pk__in=digest_ids)
    assert (digest.kind, digest.status, digest.channel, digest.target) == (
        "digest",
        "pending",
        "email",
        "ops@example.com",
    )
    assert digest.held.count() == held
    assert notifications_send_digests(now=timezone.now() + timedelta(seconds=120)) == []

    assert notification_deliver(notification_id=digest.pk).status == "sent"
    (message,) = mail.outbox[-1:]
    assert message.subject == f"[CRITICAL] {held} alert notification(s) held back, 4 alert(s)"
    assert message.body.count("\n- ") == held


def test_storm_control_can_be_switched_off_per_subscription(immediate):
    subscription = make_subscription(storm_limit=0)

    evaluate(readings(TEMP, *[(20 * i + offset, value) for i in range(12) for offset, value in ((0, 45), (10, 20))]))

    assert {status for _, status in told(subscription)} == {"pending"}


def test_unacknowledged_alerts_are_renotified_after_the_interval(immediate):
    operator, _ = make_user("operator", Role.OPERATOR)
    subscription = make_subscription(renotify_minutes=10)
    no_reminders = make_subscription(name="no reminders")
    evaluate(readings(TEMP, (0, 45)) + readings("env-002/temperature", (0, 45)))
    first, second = Alert.objects.order_by("sensor__key")
    now = timezone.now()

    assert notifications_renotify(now=now + timedelta(minutes=9)) == []

    reminded = notifications_renotify(now=now + timedelta(minutes=11))
    assert len(reminded) == 2
    assert [kind for kind, _ in told(subscription)] == ["opened", "opened", "reminder", "reminder"]
    assert [kind for kind, _ in told(no_reminders)] == ["opened", "opened"]

    # An acknowledged alert is someone's already: no more reminders for it.
    alert_acknowledge(alert_id=first.pk, user=operator)
    reminded = notifications_renotify(now=now + timedelta(minutes=22))
    assert [Notification.objects.get(pk=pk).alert_id for pk in reminded] == [second.pk]
