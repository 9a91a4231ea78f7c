"""The beat schedule, whole: every periodic task and when it runs. Settings sets CELERY_BEAT_SCHEDULE from
beat_schedule() once every value it reads is known; django_celery_beat copies it into its tables at start."""

from __future__ import annotations

from celery.schedules import crontab

from apps.core.tasks import (
    CHECK_CONNECTIVITY_TASK,
    COMPACT_READING_PARTITIONS_TASK,
    CREATE_READING_PARTITIONS_TASK,
    PURGE_BATCHES_TASK,
    PURGE_RETENTION_TASK,
    RECONCILE_BROKER_ACCOUNTS_TASK,
    REFRESH_ROLLUPS_TASK,
    RENOTIFY_TASK,
    REQUEUE_STALE_BATCHES_TASK,
    REQUEUE_STALLED_TASK,
    REQUEUE_UNEVALUATED_BATCHES_TASK,
    SEND_DIGESTS_TASK,
    SWEEP_COMMANDS_TASK,
    SWEEP_EXPORTS_TASK,
)


def _every(seconds: float, *, superseded: bool = False) -> dict:
    # A superseded run (one that waited out its interval in the queue) expires: the next one does its work.
    entry: dict = {"schedule": float(seconds)}
    if superseded:
        entry["options"] = {"expires": float(seconds)}
    return entry


def beat_schedule(
    *,
    notify_requeue_after_s: int,
    aggregates_refresh_interval_s: int,
    mqtt_accounts_sync_interval_s: int | None,
) -> dict:
    """The schedule for these settings; mqtt_accounts_sync_interval_s None when the broker's accounts are not
    managed (no MQTT admin account)."""
    schedule = {
        # ingest
        "ingest-requeue-stale-batches": {"task": REQUEUE_STALE_BATCHES_TASK, **_every(60)},
        "ingest-purge-batches": {"task": PURGE_BATCHES_TASK, "schedule": crontab(hour=3, minute=10)},
        # Today's partition and the days ahead (apps/ingest/partitions.py), hourly.
        "ingest-create-reading-partitions": {"task": CREATE_READING_PARTITIONS_TASK, **_every(3600)},
        # The primary keys of the day partitions that are over, rebuilt packed.
        "ingest-compact-reading-partitions": {"task": COMPACT_READING_PARTITIONS_TASK, "schedule": crontab(minute=20)},
        # devices
        "devices-check-connectivity": {"task": CHECK_CONNECTIVITY_TASK, **_every(30)},
        "devices-expire-commands": {"task": SWEEP_COMMANDS_TASK, **_every(30)},
        # alerts and notifications
        "alerts-requeue-unevaluated-batches": {"task": REQUEUE_UNEVALUATED_BATCHES_TASK, **_every(60)},
        "notifications-renotify": {"task": RENOTIFY_TASK, **_every(60)},
        "notifications-send-digests": {"task": SEND_DIGESTS_TASK, **_every(30)},
        # Each run looks at everything overdue.
        "notifications-requeue-stalled": {
            "task": REQUEUE_STALLED_TASK,
            **_every(notify_requeue_after_s, superseded=True),
        },
        # aggregates
        "aggregates-refresh-rollups": {
            "task": REFRESH_ROLLUPS_TASK,
            **_every(aggregates_refresh_interval_s, superseded=True),
        },
        "aggregates-purge-retention": {"task": PURGE_RETENTION_TASK, "schedule": crontab(hour=3, minute=30)},
        "aggregates-sweep-exports": {"task": SWEEP_EXPORTS_TASK, **_every(300)},
    }
    if mqtt_accounts_sync_interval_s is not None:
        schedule["mqtt-reconcile-broker-accounts"] = {
            "task": RECONCILE_BROKER_ACCOUNTS_TASK,
            **_every(mqtt_accounts_sync_interval_s, superseded=True),
        }
    return schedule
