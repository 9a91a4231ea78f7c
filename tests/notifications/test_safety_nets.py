"""The beats that find work a lost message left behind, and leave alone what failed for good (dead letters).
The broker is the edge here: what they queue is recorded instead of sent (tests/alerts/test_end_to_end.py
runs the evaluation requeue through the real worker)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.alerts.models import AlertEvent
from apps.alerts.services import batches_requeue_unevaluated
from apps.deadletters.services import deadletter_record
from apps.ingest.models import IngestBatch
from apps.notifications.models import Notification
from apps.notifications.services import notifications_requeue_stalled
from apps.thresholds.models import Threshold
from tests.alerts.helpers import evaluate, make_subscription, readings, store

pytestmark = pytest.mark.django_db


@pytest.fixture
def queued(monkeypatch) -> dict[str, list]:
    sent: dict[str, list] = {"evaluate": [], "fan_out": [], "deliver": []}
    monkeypatch.setattr(
        "apps.alerts.services.evaluation.enqueue_evaluation", lambda *, batch_id: sent["evaluate"].append(batch_id)
    )
    monkeypatch.setattr(
        "apps.notifications.services.sweeps.enqueue_fan_out", lambda *, event_ids: sent["fan_out"].extend(event_ids)
    )
    monkeypatch.setattr(
        "apps.notifications.services.queueing.enqueue_delivery",
        lambda *, notification_id, countdown=None: sent["deliver"].append(notification_id),
    )
    return sent


def test_batches_left_unevaluated_are_queued_again_unless_their_evaluation_is_a_dead_letter(world, queued):
    _recent, stale, poison = (store(readings("env-001/temperature", (i, 20))) for i in range(3))
    an_hour_ago = timezone.now() - timedelta(hours=1)
    IngestBatch.objects.filter(pk__in=[stale.pk, poison.pk]).update(finished_at=an_hour_ago)
    deadletter_record(task_name="alerts.evaluate_batch", kwargs={"batch_id": str(poison.pk)}, error="ValueError: x")

    assert batches_requeue_unevaluated(older_than_s=60) == 1

    assert queued["evaluate"] == [str(stale.pk)]


def test_events_without_notifications_and_overdue_deliveries_are_queued_again(world, queued):
    Threshold.objects.filter(pk=world.thresholds["temperature"].pk).update(min_duration_s=0)
    make_subscription()
    evaluate(readings("env-001/temperature", (0, 45)), fan_out=False)  # as if the worker died after evaluating
    evaluate(readings("env-002/temperature", (0, 45)))
    unfanned = AlertEvent.objects.get(fanned_out_at=None)
    pending = Notification.objects.get()
    later = timezone.now() + timedelta(minutes=5)

    assert notifications_requeue_stalled() == {"events": 0, "deliveries": 0}  # not overdue yet
    assert notifications_requeue_stalled(now=later) == {"events": 1, "deliveries": 1}
    assert (queued["fan_out"], queued["deliver"]) == ([unfanned.pk], [pending.pk])

    # A sending notification whose worker died is taken up once its lease has run out.
    Notification.objects.filter(pk=pending.pk).update(status="sending", lease_until=later - timedelta(seconds=1))
    assert notifications_requeue_stalled(now=later)["deliveries"] == 1


def test_work_that_failed_for_good_is_left_to_staff(world, queued):
    Threshold.objects.filter(pk=world.thresholds["temperature"].pk).update(min_duration_s=0)
    make_subscription()
    evaluate(readings("env-001/temperature", (0, 45)), fan_out=False)
    evaluate(readings("env-002/temperature", (0, 45)))
    unfanned = AlertEvent.objects.get(fanned_out_at=None)
    pending = Notification.objects.get()
    deadletter_record(task_name="notifications.fan_out", kwargs={"event_ids": [unfanned.pk]}, error="KeyError: x")
    deadletter_record(task_name="notifications.deliver", kwargs={"notification_id": pending.pk}, error="KeyError: x")

    assert notifications_requeue_stalled(now=timezone.now() + timedelta(minutes=5)) == {"events": 0, "deliveries": 0}
