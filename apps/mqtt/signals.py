"""Device changes that concern the broker's accounts queue their sync once committed (apps/mqtt/broker_accounts.py).

Django's own model signals, so the configuration app (apps/devices) knows nothing of MQTT. Only queueing
happens here; a change the task misses (Redis or the broker down) is made by the next reconciliation.
"""

from __future__ import annotations

from functools import partial

from celery import current_app
from django.conf import settings
from django.db import transaction

from apps.core.tasks import SYNC_DEVICE_ACCOUNT_TASK

# What a device's account is made of: its name, its key (the password) and whether it may log in.
ACCOUNT_FIELDS = frozenset({"device_id", "ingest_key_hash", "status"})


def _queue_sync(device_id: str) -> None:
    current_app.send_task(SYNC_DEVICE_ACCOUNT_TASK, args=[device_id])


def device_saved(sender, instance, update_fields=None, **kwargs) -> None:
    if not settings.MQTT_ADMIN_USERNAME:
        return
    if update_fields is not None and not ACCOUNT_FIELDS & set(update_fields):
        return  # heartbeats, OTA reports and the like
    transaction.on_commit(partial(_queue_sync, instance.device_id), robust=True)


def device_deleted(sender, instance, **kwargs) -> None:
    if settings.MQTT_ADMIN_USERNAME:
        transaction.on_commit(partial(_queue_sync, instance.device_id), robust=True)
