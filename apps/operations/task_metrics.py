"""Celery signal receivers that count task outcomes, time task runs and date each task's last success (in
each pool process; summed by the multiprocess collector)."""

from __future__ import annotations

import time

from apps.operations.exposition import serve_metrics
from apps.operations.metrics import TASK_LAST_SUCCESS, TASK_SECONDS, TASKS

# task_postrun's state for a task that ended in one of these; a retry ends its run with state RETRY, so it is
# counted here and not again from task_retry.
OUTCOMES = ("success", "failure", "retry")

_started: dict[str, float] = {}


def task_started(task_id=None, **kwargs) -> None:
    _started[task_id] = time.monotonic()


def task_finished(task_id=None, task=None, state=None, **kwargs) -> None:
    began = _started.pop(task_id, None)
    name = getattr(task, "name", "unknown")
    if began is not None:
        TASK_SECONDS.labels(name).observe(time.monotonic() - began)
    outcome = (state or "unknown").lower()
    TASKS.labels(name, outcome).inc()
    if outcome == "success":
        TASK_LAST_SUCCESS.labels(name).set(time.time())


def count_from_zero(sender=None, **kwargs) -> None:
    """worker_ready: every outcome of every task of ours exists from the start at 0, so the first failure of a
    task is an increase for the alerting rules rather than the birth of a series."""
    for name in sender.app.tasks:
        if not name.startswith("celery."):
            for outcome in OUTCOMES:
                TASKS.labels(name, outcome)


def serve_worker_metrics(**kwargs) -> None:
    """worker_ready and beat_init: the worker's main process serves its pool's metrics, and the beat its own
    (so a scraper sees it is up), when METRICS_PORT is set."""
    serve_metrics()
