"""Reads of the notifications side: maintenance windows in force over a span of time, when each subscription
last heard of an alert."""

from __future__ import annotations

from datetime import datetime

from django.db.models import Max

from apps.notifications.models import MaintenanceWindow, Notification


def maintenance_windows_covering(*, start: datetime, end: datetime) -> list[MaintenanceWindow]:
    """Windows overlapping [start, end], with their location's path for subtree checks."""
    return list(MaintenanceWindow.objects.filter(starts_at__lte=end, ends_at__gt=start).select_related("location"))


def last_notified(alert_ids: set[int]) -> dict[tuple[int, int], datetime]:
    """When each (alert, subscription) was last notified of an event of the alert."""
    if not alert_ids:
        return {}
    rows = (
        Notification.objects.filter(alert_id__in=alert_ids, kind=Notification.Kind.EVENT)
        .values("alert_id", "subscription_id")
        .annotate(last=Max("created_at"))
    )
    return {(row["alert_id"], row["subscription_id"]): row["last"] for row in rows}
