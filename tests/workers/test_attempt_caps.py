"""Work that keeps dying ends: attempt caps on the rows tasks claim (ingest batches, notifications, export jobs),
and a delivery interrupted by its soft time limit gives its claim back instead of staying `sending`."""

from __future__ import annotations

import os
import signal
import threading
from datetime import timedelta

import pytest
from billiard.pool import SIG_SOFT_TIMEOUT, soft_timeout_sighandler
from celery.exceptions import SoftTimeLimitExceeded
from django.utils import timezone

from apps.aggregates.exports import export_job_run, exports_sweep
from apps.aggregates.models import ExportJob
from apps.deadletters.models import DeadLetter
from apps.ingest.models import IngestBatch
from apps.ingest.services import normalize_request
from apps.notifications.models import Notification
from apps.notifications.services import notification_deliver, notifications_requeue_stalled
from apps.thresholds.models import Threshold
from tests.alerts.helpers import evaluate, make_subscription, readings
from workers.tasks.ingest import process_batch

pytestmark = pytest.mark.django_db


def test_a_batch_claimed_up_to_its_cap_fails_with_a_dead_letter_and_a_replay_starts_afresh(world, settings):
    settings.INGEST_MAX_ATTEMPTS = 3
    received_at = timezone.now()
    normalized = normalize_request(
        {"sensor": "env-001/temperature", "ts": "2026-02-12T16:00:00Z", "value": 20.0},
        received_at=received_at,
        device_id=None,
    )
    # Three runs claimed it and died (killed at the time limit, out of memory): the next message is refused.
    batch = IngestBatch.objects.create(
        received_at=received_at, received=1, payload=normalized.dumps(), status="processing", attempts=3
    )

    result = process_batch.apply(args=[str(batch.pk)])

    assert result.failed() and "AttemptsExhausted" in repr(result.result)
    batch.refresh_from_db()
    assert (batch.status, batch.attempts, batch.stored) == ("failed", 3, 0)
    dead_letter = DeadLetter.objects.get(task_name="ingest.process_batch")
    assert dead_letter.args == [str(batch.pk)] and dead_letter.error.startswith("AttemptsExhausted")

    # A person's replay (the dead letter's task, sent again) gets a fresh count.
    replayed = process_batch.apply(args=[str(batch.pk)]).get()
    assert (replayed["stored"], replayed["duplicates"], replayed["rejected"]) == (1, 0, 0)
    batch.refresh_from_db()
    assert (batch.status, batch.attempts, batch.stored) == ("done", 1, 1)


@pytest.fixture
def webhook_notification(world, receiver):
    Threshold.objects.filter(pk=world.thresholds["temperature"].pk).update(min_duration_s=0)
    make_subscription(channels=[{"type": "webhook", "target": receiver.url}], secret="a-webhook-secret")
    evaluate(readings("env-001/temperature", (0, 45)))
    return Notification.objects.get()


@pytest.fixture
def soft_limit_in():
    """`soft_limit_in(seconds)`: this process gets the worker's soft-time-limit signal after `seconds`, with
    billiard's handler installed as in a pool process."""
    previous = signal.signal(SIG_SOFT_TIMEOUT, soft_timeout_sighandler)
    timers: list[threading.Timer] = []

    def arm(seconds: float) -> None:
        timer = threading.Timer(seconds, os.kill, args=(os.getpid(), SIG_SOFT_TIMEOUT))
        timers.append(timer)
        timer.start()

    yield arm
    for timer in timers:
        timer.cancel()
    signal.signal(SIG_SOFT_TIMEOUT, previous)


def test_a_delivery_interrupted_by_its_soft_limit_goes_back_to_pending_due_at_once(
    webhook_notification,
    receiver,
    soft_limit_in,
):
    receiver.delay_s = 2.0  # the receiver answers slowly; the soft limit comes first
    soft_limit_in(0.3)

    with pytest.raises(SoftTimeLimitExceeded):
        notification_deliver(notification_id=webhook_notification.pk)

    webhook_notification.refresh_from_db()
    assert (webhook_notification.status, webhook_notification.attempts) == ("pending", 1)
    assert webhook_notification.lease_until is None
    assert webhook_notification.next_attempt_at <= timezone.now()
    assert webhook_notification.last_error.startswith("SoftTimeLimitExceeded")


def test_a_delivery_interrupted_on_its_last_attempt_fails(webhook_notification, receiver, soft_limit_in, settings):
    settings.NOTIFY_MAX_ATTEMPTS = 1
    receiver.delay_s = 2.0
    soft_limit_in(0.3)

    with pytest.raises(SoftTimeLimitExceeded):
        notification_deliver(notification_id=webhook_notification.pk)

    webhook_notification.refresh_from_db()
    assert webhook_notification.status == "failed"


def test_the_sweep_gives_abandoned_claims_back_or_fails_them_once_their_attempts_are_spent(
    webhook_notification, settings, monkeypatch
):
    settings.NOTIFY_MAX_ATTEMPTS = 3
    queued: list[int] = []
    monkeypatch.setattr(
        "apps.notifications.services.queueing.enqueue_delivery",
        lambda *, notification_id, countdown=None: queued.append(notification_id),
    )
    spent = Notification.objects.create(
        kind="event",
        event=webhook_notification.event,
        alert=webhook_notification.alert,
        subscription=webhook_notification.subscription,
        channel="webhook",
        target="http://127.0.0.1:9/other",
    )
    expired = timezone.now() - timedelta(seconds=1)
    Notification.objects.filter(pk=webhook_notification.pk).update(status="sending", attempts=1, lease_until=expired)
    Notification.objects.filter(pk=spent.pk).update(status="sending", attempts=3, lease_until=expired)

    assert notifications_requeue_stalled()["deliveries"] == 1

    assert queued == [webhook_notification.pk]
    statuses = dict(Notification.objects.values_list("pk", "status"))
    assert statuses == {webhook_notification.pk: "pending", spent.pk: "failed"}
    assert "Abandoned while sending" in Notification.objects.get(pk=spent.pk).last_error


def test_an_export_job_that_keeps_dying_fails_instead_of_being_queued_for_ever(world, settings, monkeypatch):
    settings.EXPORTS_MAX_ATTEMPTS = 2
    monkeypatch.setattr("apps.aggregates.exports.enqueue_export", lambda *, export_id: None)
    expired = timezone.now() - timedelta(seconds=1)
    job = ExportJob.objects.create(kind="readings", format="csv", params={}, status="running", lease_until=expired)
    ExportJob.objects.filter(pk=job.pk).update(attempts=2)

    assert export_job_run(export_id=str(job.pk)) is None  # the cap refuses a third claim
    assert exports_sweep() == {"expired": 0, "requeued": 0}

    job.refresh_from_db()
    assert job.status == "failed" and "2 attempts" in job.error
