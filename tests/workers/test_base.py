"""TelemetryTask: what every task inherits, tested on a real task without a worker."""

import pytest
from billiard.einfo import ExceptionInfo
from django.conf import settings
from django.db import OperationalError

from apps.deadletters.models import DeadLetter
from workers.base import TRANSIENT_ERRORS, TelemetryTask
from workers.celery import app as celery_app
from workers.tasks.housekeeping import ping


def test_tasks_are_acked_late_and_retried_on_transient_errors_only():
    assert isinstance(ping, TelemetryTask)
    assert ping.acks_late and ping.reject_on_worker_lost
    assert OperationalError in TRANSIENT_ERRORS
    assert ping.autoretry_for == TRANSIENT_ERRORS
    assert ping.retry_backoff and ping.retry_jitter
    assert ping.max_retries == settings.TASK_MAX_RETRIES
    assert ping.retry_backoff_max == settings.TASK_RETRY_BACKOFF_MAX_S
    # A retry's countdown must stay below the visibility timeout, or Redis redelivers the message early.
    assert ping.retry_backoff_max < settings.CELERY_VISIBILITY_TIMEOUT_S


def test_the_task_body_runs_in_process():
    assert ping() == "pong"


@pytest.mark.django_db
def test_on_failure_records_a_dead_letter_with_the_attempt_count_and_queue():
    try:
        raise ValueError("boom")
    except ValueError as exc:
        error, einfo = exc, ExceptionInfo()
    ping.push_request(retries=2, delivery_info={"routing_key": "default"})
    try:
        ping.on_failure(error, "task-1", ("a",), {"b": 1}, einfo)
    finally:
        ping.pop_request()

    dead_letter = DeadLetter.objects.get(task_id="task-1")
    assert (dead_letter.task_name, dead_letter.args, dead_letter.kwargs) == ("housekeeping.ping", ["a"], {"b": 1})
    assert (dead_letter.queue, dead_letter.attempts, dead_letter.error) == ("default", 3, "ValueError: boom")
    assert "ValueError" in dead_letter.traceback


class RecordingTask(TelemetryTask):
    """A task class that records what its dead_lettered hook is told."""

    name = "tests.recording"

    def __init__(self) -> None:
        self.dead_lettered_with: list[BaseException] = []

    def dead_lettered(self, exc, args, kwargs) -> None:
        self.dead_lettered_with.append(exc)


# Autocommit, as in a worker: inside a test transaction the failed INSERT would poison the transaction.
@pytest.mark.django_db(transaction=True)
def test_on_failure_calls_the_hook_even_when_the_dead_letter_cannot_be_written(caplog):
    RecordingTask.bind(celery_app)  # bound to the app, not registered: the worker never sees it
    task = RecordingTask()
    error = RuntimeError("boom")
    task.push_request(retries=0, delivery_info=None)
    try:
        # An argument that cannot be stored as JSON makes the dead letter itself fail.
        task.on_failure(error, "task-2", (), {"when": object()}, None)
    finally:
        task.pop_request()

    assert task.dead_lettered_with == [error]
    assert not DeadLetter.objects.filter(task_id="task-2").exists()
    assert "could not record dead letter for tests.recording[task-2]" in caplog.text
