"""Recorded alert events on their way to the notifications side."""

from __future__ import annotations

from celery import current_app
from django.db import transaction

from apps.alerts.models import AlertEvent
from apps.core.tasks import FAN_OUT_TASK


def enqueue_fan_out(*, event_ids: list[int]) -> None:
    if event_ids:
        current_app.send_task(FAN_OUT_TASK, kwargs={"event_ids": event_ids})


def events_save(events: list[AlertEvent]) -> list[AlertEvent]:
    """Save events recorded outside evaluation (whose task fans its events out itself) and queue their
    fan-out once the caller's transaction commits."""
    saved = AlertEvent.objects.bulk_create(events)
    event_ids = [event.pk for event in saved]
    if event_ids:
        transaction.on_commit(lambda: enqueue_fan_out(event_ids=event_ids), robust=True)
    return saved
