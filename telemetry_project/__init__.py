# Load the Celery app with Django so `shared_task`, `current_app.send_task` and on-commit enqueueing use it.
from workers.celery import app as celery_app

__all__ = ("celery_app",)
