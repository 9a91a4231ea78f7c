"""Reminders: subscriptions told again of open (unacknowledged) alerts they have heard nothing of for their
re-notify interval."""

from __future__ import annotations

from datetime import datetime

from django.db import transaction
from django.utils import timezone

from apps.alerts.models import Alert, AlertEvent
from apps.alerts.services import alert_record_reminders
from apps.notifications.matching import location_path_of, wants
from apps.notifications.models import Subscription
from apps.notifications.selectors import last_notified
from apps.notifications.services import locks
from apps.notifications.services.fan_out import notifications_fan_out


def notifications_renotify(*, now: datetime | None = None) -> list[int]:
    """Remind subscriptions of open (unacknowledged) alerts they have heard nothing of for their re-notify
    interval: one reminder event per such alert, fanned out to the subscriptions that are due."""
    now = now or timezone.now()
    with transaction.atomic():
        if not locks.try_lock(locks.RENOTIFY):
            return []
        subscriptions = list(
            Subscription.objects.filter(enabled=True, renotify_minutes__gt=0).select_related("location")
        )
        if not subscriptions:
            return []
        alerts = list(Alert.objects.filter(state=Alert.State.OPEN).select_related("location"))
        notified = last_notified({alert.pk for alert in alerts})
        due_alert_ids = []
        for alert in alerts:
            location_path = location_path_of(alert)
            reminder = alert.event(AlertEvent.Kind.REMINDER, at=now)  # what the reminder would be, to match
            if any(
                wants(s, reminder, alert, location_path=location_path, last_notified=notified, now=now)
                for s in subscriptions
            ):
                due_alert_ids.append(alert.pk)
        events = alert_record_reminders(alert_ids=due_alert_ids, at=now)
        return notifications_fan_out(event_ids=[event.pk for event in events], now=now)
