"""Counts and rates for a dashboard, each read with a query or two whatever the size of the plant.

The alerting side (apps.alerts, apps.notifications) is read through the app registry, so this app works,
answering null for those parts, where those apps or their tables are not there.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.apps import apps
from django.db import DatabaseError, transaction
from django.db.models import Count
from django.utils import timezone

from apps.aggregates.models import RollupState
from apps.aggregates.selectors import AggregateQuery, aggregate_rows
from apps.devices.models import Device, Sensor
from apps.ingest.selectors import (
    RealtimeFilters,
    RealtimeStatus,
    batches_received_since,
    batches_stored_within,
    batches_unfinished_since,
    realtime_rows,
)

RATE_WINDOWS_S = (60, 300)


def _counts(queryset, field: str, choices) -> dict[str, int]:
    found = dict(queryset.values_list(field).annotate(n=Count("pk")).values_list(field, "n"))
    return {value: found.get(value, 0) for value in choices}


def device_stats() -> dict:
    devices = Device.objects.order_by()
    by_status = _counts(devices, "status", Device.Status.values)
    return {
        "total": sum(by_status.values()),
        "by_status": by_status,
        "by_connection_status": _counts(devices, "connection_status", Device.ConnectionStatus.values),
    }


def sensor_stats(now: datetime) -> dict:
    """Sensors by their real-time status (the latest value against thresholds, or stale)."""
    total = Sensor.objects.count()
    rows, _ = realtime_rows(RealtimeFilters(), limit=max(total, 1), offset=0, now=now)
    by_status = dict.fromkeys(RealtimeStatus.values, 0)
    for row in rows:
        by_status[row["status"]] += 1
    return {"total": total, "by_status": by_status}


def reading_stats(now: datetime) -> dict:
    """Readings with timestamps in the last hour and the last day, counted from rollups where they are
    complete and from raw readings for the rest."""
    sensor_ids = tuple(Sensor.objects.order_by("pk").values_list("pk", flat=True))
    counts = {}
    for name, span in (("last_hour", timedelta(hours=1)), ("last_day", timedelta(days=1))):
        query = AggregateQuery(
            sensor_ids=sensor_ids,
            interval="day",
            tz="UTC",
            start=now - span,
            end=now,
            functions=("count",),
            group_by="all",
        )
        counts[name] = sum(row[5] for row in aggregate_rows(query))
    return counts


def ingest_stats(now: datetime) -> dict:
    """Readings stored per second over the last minute and five minutes, and batches waiting or failed."""
    stored = batches_stored_within(now, RATE_WINDOWS_S)
    return {
        **{f"readings_per_s_{seconds // 60}m": round(stored[seconds] / seconds, 2) for seconds in RATE_WINDOWS_S},
        "last_hour": batches_received_since(now - timedelta(hours=1)),
        "batches_last_day": batches_unfinished_since(now - timedelta(days=1)),
    }


def _model(label: str):
    try:
        return apps.get_model(label)
    except LookupError:
        return None


def _alerting_counts(read) -> dict | None:
    """What `read` returns, or None where the alerting tables are not there (yet)."""
    try:
        with transaction.atomic():
            return read()
    except DatabaseError:
        return None


def alert_stats() -> dict | None:
    """Unresolved alerts by severity: open (unacknowledged) and acknowledged."""
    alert = _model("alerts.Alert")
    if alert is None:
        return None
    severities = [value for value, _ in alert._meta.get_field("severity").choices]

    def read() -> dict:
        counts = {state: dict.fromkeys(severities, 0) for state in ("open", "acknowledged")}
        rows = (
            alert.objects.filter(state__in=list(counts))
            .order_by()
            .values_list("state", "severity")
            .annotate(n=Count("pk"))
        )
        for state, severity, n in rows:
            counts[state][severity] = n
        return counts

    return _alerting_counts(read)


def notification_stats(now: datetime) -> dict | None:
    """Deliveries created in the last day by status (the outcomes), and by channel."""
    notification = _model("notifications.Notification")
    if notification is None:
        return None
    statuses = [value for value, _ in notification._meta.get_field("status").choices]
    channels = [value for value, _ in notification._meta.get_field("channel").choices]

    def read() -> dict:
        last_day = notification.objects.filter(created_at__gte=now - timedelta(days=1)).order_by()
        return {
            "last_day_by_status": _counts(last_day, "status", statuses),
            "last_day_by_channel": _counts(last_day, "channel", channels),
        }

    return _alerting_counts(read)


def rollup_stats() -> dict:
    state = RollupState.objects.filter(pk=RollupState.SINGLETON).first()
    fields = [
        "watermark",
        "backfilled",
        "last_refresh_at",
        "last_refresh_ms",
        "last_refresh_batches",
        "last_purge_at",
        "last_purge_readings",
        "last_purge_rollups",
    ]
    return {name: getattr(state, name, None) for name in fields}


def dashboard_stats(*, now: datetime | None = None) -> dict:
    now = now or timezone.now()
    return {
        "generated_at": now,
        "devices": device_stats(),
        "sensors": sensor_stats(now),
        "readings": reading_stats(now),
        "ingest": ingest_stats(now),
        "alerts": alert_stats(),
        "notifications": notification_stats(now),
        "rollups": rollup_stats(),
    }
