"""Which subscriptions hear of an alert event, and whether now is a time to tell them. No database access:
the fan-out loads what these functions need once per batch of events."""

from __future__ import annotations

import zoneinfo
from datetime import datetime, time, timedelta

from apps.alerts.models import LEVELS, Alert, AlertEvent, Severity
from apps.notifications.models import MaintenanceWindow, Subscription

# Event kinds every matching subscription hears of; resolutions and acknowledgements are opt-in, reminders
# follow the re-notify interval, and de-escalations are not news worth waking anyone for.
_ALWAYS = {AlertEvent.Kind.OPENED, AlertEvent.Kind.ESCALATED}


def location_path_of(alert: Alert) -> str | None:
    """The tree path of the alert's location (loaded with it), for subtree checks."""
    return alert.location.tree_path if alert.location_id and alert.location else None


def in_scope(subscription: Subscription, alert: Alert, location_path: str | None) -> bool:
    """Location subtree, sensor type and alert kind; an empty field matches everything."""
    if alert.kind == Alert.Kind.ANOMALY and not subscription.include_anomalies:
        return False
    if subscription.sensor_type_id is not None and subscription.sensor_type_id != alert.sensor_type_id:
        return False
    if subscription.location_id is not None:
        if not location_path or not location_path.startswith(subscription.location.tree_path):
            return False
    return True


def severe_enough(subscription: Subscription, severity: str) -> bool:
    return LEVELS[severity] >= LEVELS[subscription.min_severity]


def reminder_due(
    subscription: Subscription, alert: Alert, last_notified: dict[tuple[int, int], datetime], now: datetime
) -> bool:
    """An unacknowledged alert is due a reminder once the subscription has heard nothing of it for its
    re-notify interval (counted from the alert's opening if it never heard of it)."""
    if not subscription.renotify_minutes or alert.state != Alert.State.OPEN:
        return False
    since = last_notified.get((alert.pk, subscription.pk), alert.opened_at)
    return now - since >= timedelta(minutes=subscription.renotify_minutes)


def wants(
    subscription: Subscription,
    event: AlertEvent,
    alert: Alert,
    *,
    location_path: str | None,
    last_notified: dict[tuple[int, int], datetime],
    now: datetime,
) -> bool:
    if not in_scope(subscription, alert, location_path):
        return False
    if event.kind in _ALWAYS:
        return severe_enough(subscription, event.severity)
    if event.kind == AlertEvent.Kind.REMINDER:
        return severe_enough(subscription, alert.severity) and reminder_due(subscription, alert, last_notified, now)
    # Those who were (or would have been) told of the alert at its worst hear how it ends.
    if event.kind == AlertEvent.Kind.RESOLVED:
        return subscription.notify_on_resolve and severe_enough(subscription, alert.max_severity)
    if event.kind == AlertEvent.Kind.ACKNOWLEDGED:
        return subscription.notify_on_acknowledge and severe_enough(subscription, alert.max_severity)
    return False


def in_maintenance(
    windows: list[MaintenanceWindow], *, device_id: int, location_path: str | None, at: datetime
) -> MaintenanceWindow | None:
    """The first window covering a device (directly or through its location's subtree) at `at`, or None."""
    for window in windows:
        if not (window.starts_at <= at < window.ends_at):
            continue
        if window.device_id is not None and window.device_id == device_id:
            return window
        if window.location_id is not None and location_path and location_path.startswith(window.location.tree_path):
            return window
    return None


def _within(moment: time, start: time, end: time) -> bool:
    if start <= end:
        return start <= moment < end
    return moment >= start or moment < end  # the quiet hours span midnight


def in_quiet_hours(subscription: Subscription, now: datetime) -> bool:
    if subscription.quiet_hours_start is None or subscription.quiet_hours_end is None:
        return False
    if subscription.quiet_hours_start == subscription.quiet_hours_end:
        return False
    local = now.astimezone(zoneinfo.ZoneInfo(subscription.time_zone or "UTC")).time()
    return _within(local, subscription.quiet_hours_start, subscription.quiet_hours_end)


def quiet_now(subscription: Subscription, severity: str, now: datetime) -> bool:
    """Quiet hours hold this notification back (critical ones pass if the subscription lets them)."""
    if not in_quiet_hours(subscription, now):
        return False
    return not (subscription.quiet_hours_bypass_critical and severity == Severity.CRITICAL)


class StormCounter:
    """Events notified per subscription within its storm window, counted from the database once and kept up
    to date as the fan-out plans more."""

    def __init__(self, recent: dict[int, list[datetime]], now: datetime) -> None:
        self.recent = recent
        self.now = now

    def over_limit(self, subscription: Subscription) -> bool:
        limit = subscription.effective_storm_limit
        if limit <= 0:
            return False
        since = self.now - timedelta(seconds=subscription.effective_storm_window_s)
        return sum(1 for moment in self.recent.get(subscription.pk, ()) if moment >= since) >= limit

    def count(self, subscription: Subscription) -> None:
        self.recent.setdefault(subscription.pk, []).append(self.now)
