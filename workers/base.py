"""The base class of every task: late acks, time limits, retries of transient errors, dead letters."""

from __future__ import annotations

import contextlib
import logging
import signal

import psycopg
from billiard.pool import SIG_SOFT_TIMEOUT, soft_timeout_sighandler
from celery import Task, signals
from celery.exceptions import Retry, SoftTimeLimitExceeded, TimeLimitExceeded
from celery.utils.time import get_exponential_backoff_interval
from celery.worker.request import Request
from django.conf import settings
from django.db import InterfaceError, OperationalError, close_old_connections, connections
from psycopg.pq import TransactionStatus

logger = logging.getLogger(__name__)

# Errors worth another try: the database restarted, a connection dropped, a lock timed out, or the run took
# longer than its soft time limit (a slow database, a receiver that answers slowly): every task is
# idempotent and its writes commit together, so the next attempt starts clean.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    OperationalError,
    InterfaceError,
    ConnectionError,
    TimeoutError,
    SoftTimeLimitExceeded,
)


def _cancel_statements_then_stop(signum, frame) -> None:
    """The soft time limit's signal handler: cancel the statements in flight, then raise
    SoftTimeLimitExceeded as billiard's own handler does. Interrupted without a cancel, a statement goes on
    in the server, holding its locks (a batch row locked FOR UPDATE would block every later attempt) until it
    ends by itself; psycopg cancels on Ctrl-C, but this exception is not one it knows."""
    for connection in connections.all(initialized_only=True):
        raw = connection.connection
        if raw is not None and raw.pgconn.transaction_status == TransactionStatus.ACTIVE:
            with contextlib.suppress(psycopg.Error, OSError):
                raw.cancel_safe(timeout=settings.REDIS_TIMEOUT_S)
    soft_timeout_sighandler(signum, frame)


def _cancel_statements_at_the_soft_limit() -> None:
    """Put _cancel_statements_then_stop in the place of billiard's handler (a pool process installs that one
    after its initializer, so it is swapped here, when the process runs its first task)."""
    if SIG_SOFT_TIMEOUT is not None and signal.getsignal(SIG_SOFT_TIMEOUT) is soft_timeout_sighandler:
        signal.signal(SIG_SOFT_TIMEOUT, _cancel_statements_then_stop)


def drop_interrupted_connections() -> None:
    """A connection whose statement the soft limit interrupted is left mid-protocol ("another command is
    already in progress"): the dead letter, the failed mark and the next task of this process would fail on
    it. Drop it; the next query connects afresh."""
    for connection in connections.all(initialized_only=True):
        connection.close()


@signals.task_prerun.connect(weak=False, dispatch_uid="workers-check-connections")
@signals.task_postrun.connect(weak=False, dispatch_uid="workers-check-connections-after")
def check_connections(sender=None, **_signal_kwargs) -> None:
    """What Django does around every request, around every task: drop a connection that saw an error and no
    longer answers, or that is older than CONN_MAX_AGE. Celery no longer closes them all each task
    (CELERY_DB_REUSE_MAX): opening one cost the worker about 2.6 ms a batch, and the server a new backend
    with cold caches. Not for a task run eagerly, inside the caller's transaction."""
    if sender is not None and not getattr(sender.request, "is_eager", False):
        close_old_connections()


class TelemetryRequest(Request):
    """A task message as the main worker process handles it."""

    def on_timeout(self, soft: bool, timeout: float) -> None:
        # At the hard limit Celery kills the pool process, acknowledges the message and calls the task's
        # on_failure here, in the main process, where the task's request is not this message's: make it so,
        # so that on_failure knows the attempt number and can send the next attempt.
        self.task.push_request(
            {**self.request_dict, "delivery_info": self.delivery_info, "args": self.args, "kwargs": self.kwargs},
            called_directly=False,
        )
        try:
            super().on_timeout(soft, timeout)
        finally:
            self.task.pop_request()


class TelemetryTask(Task):
    """Every task is idempotent, so it is acknowledged only after it ran and is redelivered if its worker
    dies. Transient errors, the soft time limit included, are retried with exponential backoff and jitter; so
    is a run killed at the hard time limit. What still fails after the last retry, or fails permanently, is
    kept as a dead letter that staff can replay from the admin."""

    Request = TelemetryRequest
    acks_late = True
    reject_on_worker_lost = True
    autoretry_for = TRANSIENT_ERRORS
    retry_backoff = 1
    retry_jitter = True
    typing = False
    max_retries = settings.TASK_MAX_RETRIES
    retry_backoff_max = settings.TASK_RETRY_BACKOFF_MAX_S

    def __call__(self, *args, **kwargs):
        _cancel_statements_at_the_soft_limit()
        try:
            return super().__call__(*args, **kwargs)
        except BaseException as exc:
            cause = exc.exc if isinstance(exc, Retry) else exc
            if isinstance(cause, SoftTimeLimitExceeded):
                drop_interrupted_connections()
            raise

    def on_failure(self, exc, task_id, args, kwargs, einfo) -> None:
        if isinstance(exc, TimeLimitExceeded) and self._retry_after_hard_limit(exc):
            return
        from apps.deadletters.services import deadletter_record

        try:
            deadletter_record(
                task_name=self.name,
                task_id=task_id,
                args=list(args or ()),
                kwargs=dict(kwargs or {}),
                queue=(self.request.delivery_info or {}).get("routing_key") or "",
                error=f"{type(exc).__name__}: {exc}",
                traceback=str(einfo),
                attempts=self.request.retries + 1,
            )
        except Exception:  # the database may be what failed; the broker log then is the record
            logger.exception("could not record dead letter for %s[%s]", self.name, task_id)
        self.dead_lettered(exc, args, kwargs)

    def _retry_after_hard_limit(self, exc: TimeLimitExceeded) -> bool:
        """Send the next attempt of a run killed at the hard time limit, as autoretry does for a transient
        error; False once the retries are spent (then it becomes a dead letter)."""
        retries = self.request.retries or 0
        if self.max_retries is not None and retries >= self.max_retries:
            return False
        countdown = get_exponential_backoff_interval(
            factor=self.retry_backoff, retries=retries, maximum=self.retry_backoff_max, full_jitter=self.retry_jitter
        )
        self.retry(exc=exc, countdown=countdown, throw=False)
        logger.warning("%s[%s] killed at the hard time limit; attempt %s in %s s", self.name, self.request.id,
                       retries + 2, countdown)  # fmt: skip
        return True

    def dead_lettered(self, exc, args, kwargs) -> None:
        """Hook for tasks that mark their own rows failed when they give up."""
