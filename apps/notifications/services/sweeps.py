"""The safety net for lost messages: events left without notifications, and deliveries overdue or claimed by
a worker that never came back, are queued again; work whose task failed for good is left to staff."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone

from apps.alerts.models import AlertEvent
from apps.alerts.services import enqueue_fan_out
from apps.core.tasks import DELIVER_TASK, FAN_OUT_TASK
from apps.deadletters.models import DeadLetter
from apps.notifications.models import Notification
from apps.notifications.services import queueing


def notifications_requeue_stalled(*, now: datetime | None = None, limit: int = 1000) -> dict[str, int]:
    """Beat safety net for lost messages: queue the fan-out of events left without notifications, and the
    delivery of notifications overdue or claimed under a lease that ran out. Work whose task failed for good
    (a dead letter, for staff to replay) is left alone rather than failing again every run."""
    now = now or timezone.now()
    grace = timedelta(seconds=settings.NOTIFY_REQUEUE_AFTER_S)
    stalled = list(
        AlertEvent.objects.filter(fanned_out_at__isnull=True, created_at__lt=now - grace)
        .order_by("created_at")
        .values_list("pk", "created_at", named=True)[:limit]
    )
    dead_events: set[int] = set()
    if stalled:
        for kwargs in DeadLetter.objects.filter(
            task_name=FAN_OUT_TASK, created_at__gte=stalled[0].created_at
        ).values_list("kwargs", flat=True):
            dead_events.update((kwargs or {}).get("event_ids") or [])
    events = [event.pk for event in stalled if event.pk not in dead_events]
    for event_id in events:
        enqueue_fan_out(event_ids=[event_id])
    # Claims whose worker never came back (killed, or stopped at its hard time limit): pending again, or failed
    # once their attempts are spent, so no row stays `sending`.
    abandoned = Notification.objects.filter(status=Notification.Status.SENDING, lease_until__lt=now)
    gone = "Abandoned while sending: its worker stopped before recording an outcome."
    abandoned.filter(attempts__gte=settings.NOTIFY_MAX_ATTEMPTS).update(
        status=Notification.Status.FAILED, last_error=gone, lease_until=None, updated_at=now
    )
    released = list(abandoned.values_list("pk", flat=True)[:limit])
    abandoned.filter(pk__in=released).update(
        status=Notification.Status.PENDING,
        last_error=gone,
        next_attempt_at=timezone.now(),
        lease_until=None,
        updated_at=now,
    )
    overdue = released + list(
        Notification.objects.filter(status=Notification.Status.PENDING, next_attempt_at__lt=now - grace)
        .exclude(pk__in=released)
        .order_by("next_attempt_at")
        .values_list("pk", flat=True)[:limit]
    )
    dead_deliveries = set(
        DeadLetter.objects.filter(task_name=DELIVER_TASK, kwargs__notification_id__in=overdue).values_list(
            "kwargs__notification_id", flat=True
        )
    )
    deliveries = [notification_id for notification_id in overdue if notification_id not in dead_deliveries]
    for notification_id in deliveries:
        queueing.enqueue_delivery(notification_id=notification_id)
    return {"events": len(events), "deliveries": len(deliveries)}
