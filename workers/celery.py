"""The Celery app. Configuration lives in Django settings (CELERY_*); task modules are listed explicitly."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "telemetry_project.settings")

app = Celery("telemetry")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.include = [
    "workers.tasks.housekeeping",
    "workers.tasks.ingest",
    "workers.tasks.alerts",
    "workers.tasks.aggregates",
    "workers.tasks.devices",
    "workers.tasks.mqtt",
]
