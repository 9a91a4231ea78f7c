"""Celery signal receivers that count task outcomes and time task runs (in each pool process; summed by
the multiprocess collector)."""

from __future__ import annotations

import time

from apps.operations.exposition import serve_metrics
from apps.operations.metrics import TASK_SECONDS, TASKS

_started: dict[str, float] = {}


def task_started(task_id=None, **kwargs) -> None:
    _started[task_id] = time.monotonic()


def task_finished(task_id=None, task=None, state=None, **kwargs) -> None:
    began = _started.pop(task_id, None)
    name = getattr(task, "name", "unknown")
    if began is not None:
        TASK_SECONDS.labels(name).observe(time.monotonic() - began)
    TASKS.labels(name, (state or "unknown").lower()).inc()


def task_retried(request=None, **kwargs) -> None:
    TASKS.labels(getattr(request, "task", "unknown"), "retry").inc()


def serve_worker_metrics(**kwargs) -> None:
    """worker_ready: the worker's main process serves its pool's metrics when METRICS_PORT is set."""
    serve_metrics()
