"""Celery signal receivers that count task outcomes and time task runs (in each pool process; summed by
the multiprocess collector)."""

from __future__ import annotations

import logging
import os
import time

from django.conf import settings
from prometheus_client import CollectorRegistry, start_http_server

from apps.operations.metrics import TASK_SECONDS, TASKS

logger = logging.getLogger(__name__)

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
    """worker_ready: with WORKER_METRICS_PORT set, the worker's main process serves its pool's metrics (all
    pool processes count into PROMETHEUS_MULTIPROC_DIR) for a scraper, when the worker runs on a host where
    no web process shares that directory."""
    port = settings.WORKER_METRICS_PORT
    if not port:
        return
    from prometheus_client import multiprocess

    registry = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.MultiProcessCollector(registry)
    start_http_server(port, addr="0.0.0.0", registry=registry)
    logger.info("worker metrics served on port %d", port)
