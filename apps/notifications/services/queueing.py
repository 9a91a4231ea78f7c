"""Queueing deliveries: by task name, after the commit of the transaction that made them due."""

from __future__ import annotations

from celery import current_app
from django.db import transaction

from apps.core.tasks import DELIVER_TASK


def enqueue_delivery(*, notification_id: int, countdown: float | None = None) -> None:
    current_app.send_task(DELIVER_TASK, kwargs={"notification_id": notification_id}, countdown=countdown)


def deliver_on_commit(notification_ids: list[int]) -> None:
    def send() -> None:
        for notification_id in notification_ids:
            enqueue_delivery(notification_id=notification_id)

    if notification_ids:
        transaction.on_commit(send, robust=True)
