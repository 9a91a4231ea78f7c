from __future__ import annotations

from celery import current_app
from django.db import transaction
from django.utils import timezone

from apps.core.tasks import REPLAY_DEAD_LETTER_TASK
from apps.deadletters.models import DeadLetter
from apps.operations import metrics


def deadletter_record(*, task_name: str, error: str, **fields) -> DeadLetter:
    dead_letter = DeadLetter.objects.create(task_name=task_name, error=error[:10_000], **fields)
    metrics.DEAD_LETTERS.labels(dead_letter.source).inc()
    return dead_letter


# Dead letters that are not tasks are replayed by a task of their source, given the dead letter's id.
REPLAY_TASKS = {"mqtt": REPLAY_DEAD_LETTER_TASK}
REPLAYABLE_SOURCES = ("task", *REPLAY_TASKS)


def deadletter_replay(*, dead_letter: DeadLetter) -> str:
    """Send the task again with its original arguments (for a message: the task that replays it); safe
    because every task is idempotent."""
    if dead_letter.source in REPLAY_TASKS:
        result = current_app.send_task(REPLAY_TASKS[dead_letter.source], args=[dead_letter.pk])
    else:
        result = current_app.send_task(dead_letter.task_name, args=dead_letter.args, kwargs=dead_letter.kwargs)
    with transaction.atomic():
        DeadLetter.objects.filter(pk=dead_letter.pk).update(
            replay_count=dead_letter.replay_count + 1, replayed_at=timezone.now(), last_replay_task_id=result.id
        )
    return result.id
