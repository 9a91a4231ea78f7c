"""The aggregation tasks' registration, routing and beat entries (Celery ignores typos silently)."""

from celery.schedules import crontab
from django.conf import settings

from workers.celery import app


def test_tasks_are_registered_and_routed_to_default_and_export_jobs_to_their_own_queue():
    app.loader.import_default_modules()
    for name, queue in (
        ("aggregates.refresh_rollups", "default"),
        ("aggregates.purge_retention", "default"),
        ("aggregates.run_export", "exports"),
        ("aggregates.sweep_exports", "default"),
    ):
        assert name in app.tasks
        assert app.amqp.router.route({}, name)["queue"].name == queue


def test_beat_runs_the_refresh_every_minute_and_the_purge_daily():
    schedule = settings.CELERY_BEAT_SCHEDULE
    refresh = schedule["aggregates-refresh-rollups"]
    assert (refresh["task"], refresh["schedule"]) == ("aggregates.refresh_rollups", 60.0)
    assert refresh["options"]["expires"] == 60.0
    purge = schedule["aggregates-purge-retention"]
    assert purge["task"] == "aggregates.purge_retention"
    assert purge["schedule"] == crontab(hour=3, minute=30)
    assert schedule["aggregates-sweep-exports"]["task"] == "aggregates.sweep_exports"


def test_retention_defaults():
    assert settings.READINGS_RETENTION_DAYS == 90
    assert settings.ROLLUPS_RETENTION_DAYS == 730


def test_the_export_task_may_run_longer_than_ordinary_tasks():
    task = app.tasks["aggregates.run_export"]
    assert task.soft_time_limit == settings.EXPORTS_TASK_TIME_LIMIT_S > settings.CELERY_TASK_SOFT_TIME_LIMIT
    assert task.acks_late and task.reject_on_worker_lost
