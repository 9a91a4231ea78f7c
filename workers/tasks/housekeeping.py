from apps.core.tasks import PING_TASK
from workers.base import TelemetryTask
from workers.celery import app


@app.task(base=TelemetryTask, name=PING_TASK)
def ping() -> str:
    """Answers "pong": lets tests and operators check that a worker consumes the default queue."""
    return "pong"
