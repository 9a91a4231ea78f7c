"""The whole path through a real worker process over Redis (the `celery_worker` fixture)."""

import pytest
from celery.result import AsyncResult

from apps.deadletters.models import DeadLetter
from apps.deadletters.services import deadletter_replay
from workers.celery import app as celery_app
from workers.tasks.housekeeping import ping

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def test_a_real_worker_answers_ping_over_redis(celery_worker):
    result = ping.delay()

    assert result.get(timeout=30) == "pong"


def test_a_failing_task_leaves_a_dead_letter_in_the_database(celery_worker, wait_for):
    # ping takes no arguments: the worker's call fails with a TypeError, which is not retried.
    result = celery_app.send_task("housekeeping.ping", args=["unexpected"])

    dead_letter = wait_for(lambda: DeadLetter.objects.filter(task_id=result.id).first(), timeout=30)

    assert dead_letter.task_name == "housekeeping.ping"
    assert dead_letter.args == ["unexpected"]
    assert dead_letter.queue == "default"
    assert dead_letter.error.startswith("TypeError")
    assert dead_letter.attempts == 1


def test_a_replayed_dead_letter_runs_again(celery_worker):
    dead_letter = DeadLetter.objects.create(task_name="housekeeping.ping", error="WorkerLostError: gone")

    task_id = deadletter_replay(dead_letter=dead_letter)

    assert AsyncResult(task_id, app=celery_app).get(timeout=30) == "pong"
    dead_letter.refresh_from_db()
    assert (dead_letter.replay_count, dead_letter.last_replay_task_id) == (1, task_id)
    assert dead_letter.replayed_at is not None
