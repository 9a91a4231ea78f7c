"""Driving readings through storage and evaluation in-process, the way the worker does, for alerting tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from apps.alerts.models import Alert, AlertEvent
from apps.alerts.services import batch_evaluate
from apps.ingest.models import IngestBatch
from apps.ingest.pipeline import batch_process
from apps.ingest.services import batch_create, normalize_request
from apps.notifications.models import Subscription
from apps.notifications.services import notifications_fan_out, subscription_save

T0 = datetime(2026, 2, 12, 16, 0, tzinfo=UTC)


def at(seconds: float) -> str:
    """An ISO timestamp `seconds` after T0."""
    return (T0 + timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z")


def readings(sensor: str, *points: tuple[float, float]) -> list[dict]:
    """[(seconds after T0, value), ...] as single-reading items for one sensor."""
    return [{"sensor": sensor, "ts": at(seconds), "value": value} for seconds, value in points]


def store(items: Any, *, received_at: datetime | None = None) -> IngestBatch:
    """Store readings as the ingest worker would (no HTTP); returns the done batch, not yet evaluated."""
    received_at = received_at or datetime.now(UTC)
    normalized = normalize_request(items, received_at=received_at, device_id=None)
    batch = batch_create(normalized=normalized, received_at=received_at)
    batch_process(batch_id=str(batch.pk))
    return IngestBatch.objects.get(pk=batch.pk)


def evaluate(items: Any, *, fan_out: bool = True) -> IngestBatch:
    """Store and evaluate readings, and (like the evaluate task) fan the events out."""
    batch = store(items)
    result = batch_evaluate(batch_id=str(batch.pk))
    if fan_out and result is not None:
        notifications_fan_out(event_ids=result.event_ids or [])
    return IngestBatch.objects.get(pk=batch.pk)


def events_of(alert: Alert) -> list[tuple[str, str]]:
    return list(AlertEvent.objects.filter(alert=alert).order_by("at", "id").values_list("kind", "severity"))


def make_subscription(*, channels: list[dict] | None = None, secret: str = "s" * 32, **fields: Any) -> Subscription:
    subscription = Subscription(
        name=fields.pop("name", "ops"), channels=channels or [{"type": "email", "target": "ops@example.com"}], **fields
    )
    return subscription_save(subscription=subscription, secret=secret)[0]
