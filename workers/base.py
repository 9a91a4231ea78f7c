"""The base class of every task: late acks, time limits, retries of transient errors, dead letters."""

from __future__ import annotations

import logging

from celery import Task
from django.conf import settings
from django.db import InterfaceError, OperationalError

logger = logging.getLogger(__name__)

# Errors worth another try: the database restarted, a connection dropped, a lock timed out.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (OperationalError, InterfaceError, ConnectionError, TimeoutError)


class TelemetryTask(Task):
    """Every task is idempotent, so it is acknowledged only after it ran and is redelivered if its worker
    dies. Transient errors are retried with exponential backoff and jitter; what still fails after the last
    retry, or fails permanently, is kept as a dead letter that staff can replay from the admin."""

    acks_late = True
    reject_on_worker_lost = True
    autoretry_for = TRANSIENT_ERRORS
    retry_backoff = 1
    retry_jitter = True
    typing = False
    max_retries = settings.TASK_MAX_RETRIES
    retry_backoff_max = settings.TASK_RETRY_BACKOFF_MAX_S

    def on_failure(self, exc, task_id, args, kwargs, einfo) -> None:
        from apps.deadletters.services import deadletter_record

        try:
            deadletter_record(
                task_name=self.name,
                task_id=task_id,
                args=list(args or ()),
                kwargs=dict(kwargs or {}),
                queue=(self.request.delivery_info or {}).get("routing_key", ""),
                error=f"{type(exc).__name__}: {exc}",
                traceback=str(einfo),
                attempts=self.request.retries + 1,
            )
        except Exception:  # the database may be what failed; the broker log then is the record
            logger.exception("could not record dead letter for %s[%s]", self.name, task_id)
        self.dead_lettered(exc, args, kwargs)

    def dead_lettered(self, exc, args, kwargs) -> None:
        """Hook for tasks that mark their own rows failed when they give up."""
