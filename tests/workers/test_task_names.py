"""The task names in apps/core/tasks.py are the contract between the apps that queue tasks by name and the
worker modules that register them: every name must be registered, and every registered task named there."""

from __future__ import annotations

from django.conf import settings

from apps.core import tasks as names
from workers.celery import app
from workers.schedule import beat_schedule


def _contract() -> set[str]:
    return {value for key, value in vars(names).items() if key.endswith("_TASK")}


def test_every_named_task_is_registered_and_every_registered_task_is_named():
    app.loader.import_default_modules()
    # Celery's own tasks, and those some tests register for themselves, are not the project's.
    registered = {name for name in app.tasks if not name.startswith(("celery.", "tests."))}
    assert _contract() == registered


def test_every_beat_entry_runs_a_named_task():
    assert {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()} <= _contract()


def test_the_broker_accounts_are_reconciled_only_when_managed():
    unmanaged = beat_schedule(
        notify_requeue_after_s=30, aggregates_refresh_interval_s=60, mqtt_accounts_sync_interval_s=None
    )
    managed = beat_schedule(
        notify_requeue_after_s=30, aggregates_refresh_interval_s=60, mqtt_accounts_sync_interval_s=45
    )
    assert set(managed) - set(unmanaged) == {"mqtt-reconcile-broker-accounts"}
    assert managed["mqtt-reconcile-broker-accounts"]["schedule"] == 45.0
