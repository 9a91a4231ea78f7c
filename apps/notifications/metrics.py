"""Scrape-time notification counts for GET /metrics, added to operations' collectors by
NotificationsConfig.ready."""

from __future__ import annotations

from django.db.models import Count
from prometheus_client.core import CounterMetricFamily

from apps.notifications.models import Channel, Notification


class NotificationsCollector:
    """Notifications by channel and outcome, counted from their table whichever process sent them."""

    def collect(self):
        notifications = CounterMetricFamily(
            "telemetry_notifications", "Notifications by channel and status", labels=["channel", "status"]
        )
        # Every pair is present, zeros included: a rule comparing a count with its value a while ago would miss
        # the first failure of a channel whose series did not exist yet.
        counts = dict.fromkeys(
            ((channel, status) for channel in Channel.values for status in Notification.Status.values), 0
        )
        grouped = Notification.objects.order_by().values_list("channel", "status").annotate(total=Count("id"))
        for channel, status, total in grouped:
            counts[(channel, status)] = total
        for (channel, status), total in counts.items():
            notifications.add_metric([channel, status], total)
        yield notifications
