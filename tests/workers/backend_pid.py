"""A task for the connection tests, imported by their worker (`--include`): which PostgreSQL backend served
it."""

from django.db import connection

from workers.base import TelemetryTask
from workers.celery import app

NAME = "tests.backend_pid"


@app.task(base=TelemetryTask, name=NAME, retry_backoff=False, default_retry_delay=0)
def backend_pid() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return cursor.fetchone()[0]
