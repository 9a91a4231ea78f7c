"""What a notification says: a subject and text for people, a JSON document for webhooks and gateways."""

from __future__ import annotations

from datetime import datetime

from django.conf import settings

from apps.alerts.models import Alert, AlertEvent
from apps.notifications.channels import Message
from apps.notifications.models import Notification
from apps.thresholds.selectors import EffectiveThreshold, effective_thresholds

DIGEST_MAX_ITEMS = 100

_HEADLINES = {
    AlertEvent.Kind.OPENED: "Alert",
    AlertEvent.Kind.ESCALATED: "Escalated",
    AlertEvent.Kind.DEESCALATED: "De-escalated",
    AlertEvent.Kind.ACKNOWLEDGED: "Acknowledged",
    AlertEvent.Kind.RESOLVED: "Resolved",
    AlertEvent.Kind.REMINDER: "Still unacknowledged",
}


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat().replace("+00:00", "Z") if moment else None


def _subject_of(alert: Alert) -> str:
    if alert.kind == Alert.Kind.DEVICE_OFFLINE:
        return f"device {alert.device.device_id} offline"
    if alert.kind == Alert.Kind.ANOMALY and alert.sensor_id:
        return f"{alert.sensor.key} anomaly"
    return alert.sensor.key if alert.sensor_id else f"alert {alert.pk}"


def _unit(alert: Alert) -> str:
    return alert.sensor_type.unit if alert.sensor_type_id and alert.sensor_type else ""


def _value(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    return f"{value:g} {unit}".strip()


def _limits(threshold: EffectiveThreshold | None, unit: str) -> str:
    if threshold is None:
        return ""
    parts = []
    for label, low, high in (
        ("warning", threshold.warning_low, threshold.warning_high),
        ("critical", threshold.critical_low, threshold.critical_high),
    ):
        sides = []
        if low is not None:
            sides.append(f"below {_value(low, unit)}")
        if high is not None:
            sides.append(f"above {_value(high, unit)}")
        if sides:
            parts.append(f"{label} {' or '.join(sides)}")
    return "; ".join(parts)


def _effective(alert: Alert) -> EffectiveThreshold | None:
    if alert.kind != Alert.Kind.THRESHOLD or not alert.sensor_id:
        return None
    for threshold in effective_thresholds([(alert.sensor_id, alert.sensor.sensor_type_id)]).get(alert.sensor_id, []):
        if threshold.threshold_id == alert.threshold_id:
            return threshold
    return None


def alert_document(alert: Alert) -> dict:
    return {
        "id": alert.pk,
        "kind": alert.kind,
        "state": alert.state,
        "severity": alert.severity,
        "max_severity": alert.max_severity,
        "sensor": alert.sensor.key if alert.sensor_id else None,
        "sensor_id": alert.sensor_id,
        "sensor_type": alert.sensor_type_id,
        "sensor_type_code": alert.sensor_type.code if alert.sensor_type_id and alert.sensor_type else None,
        "unit": _unit(alert) or None,
        "threshold": alert.threshold_id,
        "device": alert.device_id,
        "device_id": alert.device.device_id,
        "location": alert.location_id,
        "location_path": alert.location.full_path if alert.location_id and alert.location else None,
        "breach_started_at": _iso(alert.breach_started_at),
        "opened_at": _iso(alert.opened_at),
        "resolved_at": _iso(alert.resolved_at),
        "value": alert.value,
        "first_value": alert.first_value,
        "peak_value": alert.peak_value,
        "expected_low": alert.expected_low,
        "expected_high": alert.expected_high,
        "score": alert.score,
        "peak_score": alert.peak_score,
        "acknowledged_by": alert.acknowledged_by.get_username() if alert.acknowledged_by_id else None,
        "url": f"{settings.NOTIFY_BASE_URL}/api/v1/alerts/{alert.pk}/" if settings.NOTIFY_BASE_URL else None,
    }


def event_document(event: AlertEvent) -> dict:
    return {
        "id": event.pk,
        "kind": event.kind,
        "at": _iso(event.at),
        "severity": event.severity,
        "value": event.value,
        "expected_low": event.expected_low,
        "expected_high": event.expected_high,
        "score": event.score,
        "user": event.user.get_username() if event.user_id else None,
        "comment": event.comment,
    }


def render_event(notification: Notification) -> Message:
    event, alert = notification.event, notification.alert
    unit = _unit(alert)
    headline = _HEADLINES.get(event.kind, event.kind)
    subject = f"[{event.severity.upper()}] {headline}: {_subject_of(alert)}"
    if alert.kind == Alert.Kind.THRESHOLD:
        subject += f" = {_value(event.value if event.value is not None else alert.value, unit)}"
    lines = [subject, ""]
    if alert.location_id and alert.location:
        lines.append(f"Where: {alert.location.full_path}")
    lines.append(f"Device: {alert.device.device_id}")
    if alert.kind == Alert.Kind.THRESHOLD:
        limits = _limits(_effective(alert), unit)
        lines.append(f"Value: {_value(event.value, unit)} at {_iso(event.at)}; peak {_value(alert.peak_value, unit)}")
        if limits:
            lines.append(f"Limits: {limits}")
    if alert.kind == Alert.Kind.ANOMALY and event.expected_low is not None:
        # The score is in units of the detectors' threshold: 1 is where an anomaly starts.
        lines.append(
            f"Value: {_value(event.value, unit)} at {_iso(event.at)}; expected "
            f"{_value(event.expected_low, unit)} to {_value(event.expected_high, unit)}; "
            f"score {event.score:.2f} (peak {alert.peak_score or 0:.2f})"
        )
    lines.append(f"Breach since: {_iso(alert.breach_started_at)}; alert opened {_iso(alert.opened_at)}")
    lines.append(f"State: {alert.state}, severity {alert.severity}")
    if event.user_id:
        lines.append(f"By: {event.user.get_username()}")
    if event.comment:
        lines.append(f"Note: {event.comment}")
    document = alert_document(alert)
    if document["url"]:
        lines.append(f"Details: {document['url']}")
    payload = {
        "type": f"alert.{event.kind}",
        "notification_id": notification.pk,
        "subscription": {"id": notification.subscription_id, "name": notification.subscription.name},
        "event": event_document(event),
        "alert": document,
    }
    return Message(subject=subject, text="\n".join(lines) + "\n", payload=payload, notification_id=notification.pk)


def render_digest(notification: Notification, held: list[Notification]) -> Message:
    """One message for everything storm control held back for this subscription and channel."""
    alerts = {item.alert_id for item in held}
    worst = "critical" if any(item.event.severity == "critical" for item in held) else "warning"
    subject = f"[{worst.upper()}] {len(held)} alert notification(s) held back, {len(alerts)} alert(s)"
    lines = [subject, "", "Storm control held these back (oldest first):"]
    items = []
    for item in held[:DIGEST_MAX_ITEMS]:
        event, alert = item.event, item.alert
        lines.append(
            f"- {_iso(event.at)} [{event.severity}] {_HEADLINES.get(event.kind, event.kind)}: {_subject_of(alert)}"
            + (f" = {_value(event.value, _unit(alert))}" if alert.kind == Alert.Kind.THRESHOLD else "")
        )
        items.append({"event": event_document(event), "alert": alert_document(alert)})
    if len(held) > DIGEST_MAX_ITEMS:
        lines.append(f"... and {len(held) - DIGEST_MAX_ITEMS} more.")
    payload = {
        "type": "digest",
        "notification_id": notification.pk,
        "subscription": {"id": notification.subscription_id, "name": notification.subscription.name},
        "held": len(held),
        "alerts": len(alerts),
        "from": _iso(held[0].created_at) if held else None,
        "to": _iso(held[-1].created_at) if held else None,
        "items": items,
        "truncated": len(held) > DIGEST_MAX_ITEMS,
    }
    return Message(subject=subject, text="\n".join(lines) + "\n", payload=payload, notification_id=notification.pk)
