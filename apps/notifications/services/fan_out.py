"""Fan-out: the notifications of recorded alert events, one per (event, subscription, channel target), each
pending, or held back (storm control) or suppressed (maintenance window, quiet hours) with the reason."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import Min
from django.utils import timezone

from apps.alerts.models import AlertEvent
from apps.notifications.matching import StormCounter, in_maintenance, location_path_of, quiet_now, wants
from apps.notifications.models import Notification, Subscription
from apps.notifications.selectors import last_notified, maintenance_windows_covering
from apps.notifications.services import queueing
from apps.notifications.services.subscriptions import channels_of

# Notifications counted as told for storm control (held and suppressed ones reached nobody).
_DELIVERING = [
    Notification.Status.PENDING,
    Notification.Status.SENDING,
    Notification.Status.SENT,
    Notification.Status.FAILED,
]


def notifications_fan_out(*, event_ids: list[int], now: datetime | None = None) -> list[int]:
    """Create the notifications of alert events that have none yet; returns the ids queued for delivery.

    Idempotent: events are locked and stamped fanned_out_at in the transaction that creates their
    notifications, and a notification is unique per (event, subscription, channel, target).

    1. Lock the events not yet fanned out.
    2. Load enabled subscriptions, maintenance windows over the events' times, what each subscription was
       told recently (storm control) and when it last heard of each alert (reminders): four queries.
    3. For every event and matching subscription, one notification per channel: pending, or held (storm
       control), or suppressed (maintenance window, quiet hours) with the reason in `detail`.
    4. Insert them, stamp the events, queue the pending ones for delivery after commit.
    """
    if not event_ids:
        return []
    now = now or timezone.now()
    with transaction.atomic():
        events = list(
            AlertEvent.objects.select_for_update(of=("self",))
            .filter(pk__in=event_ids, fanned_out_at__isnull=True)
            .select_related("alert", "alert__location")
            .order_by("pk")
        )
        if not events:
            return []
        notifications = _plan(events, now=now)
        Notification.objects.bulk_create(notifications)
        AlertEvent.objects.filter(pk__in=[event.pk for event in events]).update(fanned_out_at=now)
        due = [n.pk for n in notifications if n.status == Notification.Status.PENDING]
        queueing.deliver_on_commit(due)
    return due


def _recently_told(subscriptions: list[Subscription], now: datetime) -> dict[int, list[datetime]]:
    limited = [s for s in subscriptions if s.effective_storm_limit > 0]
    if not limited:
        return {}
    since = now - timedelta(seconds=max(s.effective_storm_window_s for s in limited))
    rows = (
        Notification.objects.filter(
            subscription_id__in=[s.pk for s in limited],
            kind=Notification.Kind.EVENT,
            status__in=_DELIVERING,
            created_at__gte=since,
        )
        .values("subscription_id", "event_id")
        .annotate(first=Min("created_at"))
    )
    recent: dict[int, list[datetime]] = defaultdict(list)
    for row in rows:
        recent[row["subscription_id"]].append(row["first"])
    return recent


def _plan(events: list[AlertEvent], *, now: datetime) -> list[Notification]:
    subscriptions = list(Subscription.objects.filter(enabled=True).select_related("location"))
    if not subscriptions:
        return []
    windows = maintenance_windows_covering(start=min(e.at for e in events), end=max(e.at for e in events))
    notified = last_notified({e.alert_id for e in events if e.kind == AlertEvent.Kind.REMINDER})
    storm = StormCounter(_recently_told(subscriptions, now), now)
    # `now` decides (quiet hours, storm windows, reminders); delivery is due on the real clock.
    due_at = timezone.now()
    planned: list[Notification] = []
    for event in events:
        alert = event.alert
        location_path = location_path_of(alert)
        window = in_maintenance(windows, device_id=alert.device_id, location_path=location_path, at=event.at)
        for subscription in subscriptions:
            if not wants(subscription, event, alert, location_path=location_path, last_notified=notified, now=now):
                continue
            status, detail = Notification.Status.PENDING, ""
            if window is not None:
                status, detail = Notification.Status.SUPPRESSED, f"Maintenance window: {window.name}."
            elif quiet_now(subscription, event.severity, now):
                status, detail = Notification.Status.SUPPRESSED, "Quiet hours."
            elif storm.over_limit(subscription):
                status = Notification.Status.HELD
                detail = (
                    f"Storm control: more than {subscription.effective_storm_limit} notifications within "
                    f"{subscription.effective_storm_window_s} s; goes out in a digest."
                )
            else:
                storm.count(subscription)
            for channel, target in channels_of(subscription):
                planned.append(
                    Notification(
                        kind=Notification.Kind.EVENT,
                        event=event,
                        alert=alert,
                        subscription=subscription,
                        channel=channel,
                        target=target,
                        status=status,
                        detail=detail,
                        next_attempt_at=due_at,
                    )
                )
    return planned
