"""Reads of the notifications side: when each subscription last heard of an alert."""

from __future__ import annotations

from datetime import datetime

from django.db.models import Max

from apps.notifications.models import Notification


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
