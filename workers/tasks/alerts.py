"""Tasks of the alerts side; see workers/celery.py for how modules are registered. All run on the `alerts`
queue (routes `alerts.*` and `notifications.*`). A batch's evaluation normally runs in its ingest task
(workers/tasks/ingest.py, through evaluate_and_fan_out); evaluate_batch is for the others."""

from django.conf import settings

from apps.alerts.services import batch_evaluate, batches_requeue_unevaluated
from apps.core.tasks import (
    DELIVER_TASK,
    EVALUATE_BATCH_TASK,
    FAN_OUT_TASK,
    RENOTIFY_TASK,
    REQUEUE_STALLED_TASK,
    REQUEUE_UNEVALUATED_BATCHES_TASK,
    SEND_DIGESTS_TASK,
)
from apps.notifications.services import (
    notification_deliver,
    notifications_fan_out,
    notifications_renotify,
    notifications_requeue_stalled,
    notifications_send_digests,
)
from workers.base import TelemetryTask
from workers.celery import app


@app.task(base=TelemetryTask, name=EVALUATE_BATCH_TASK)
def evaluate_batch(batch_id: str) -> dict | None:
    """Evaluate a stored batch queued on its own: by the requeue beat, a replay, an ingest task whose own
    evaluation failed, or every batch when INGEST_EVALUATE_INLINE is off."""
    return evaluate_and_fan_out(batch_id)


def evaluate_and_fan_out(batch_id: str) -> dict | None:
    """Evaluate a stored batch, then fan its alert events out at once (no second hop before delivery). If
    this process dies between the two, the requeue beat fans the events out."""
    result = batch_evaluate(batch_id=batch_id)
    if result is None:
        return None
    queued = notifications_fan_out(event_ids=result.event_ids or [])
    return {
        "readings": result.readings,
        "opened": result.opened,
        "events": len(result.event_ids or []),
        "queued": len(queued),
    }


@app.task(base=TelemetryTask, name=REQUEUE_UNEVALUATED_BATCHES_TASK)
def requeue_unevaluated_batches() -> int:
    """Beat: queue evaluation again for stored batches whose evaluation message was lost."""
    return batches_requeue_unevaluated(older_than_s=settings.ALERT_REQUEUE_AFTER_S)


@app.task(base=TelemetryTask, name=FAN_OUT_TASK)
def fan_out(event_ids: list[int]) -> int:
    """Create and queue the notifications of alert events recorded outside evaluation (acknowledge, resolve,
    device offline and back)."""
    return len(notifications_fan_out(event_ids=event_ids))


@app.task(base=TelemetryTask, name=DELIVER_TASK)
def deliver(notification_id: int) -> str:
    """Send one notification; a transient failure queues the next attempt with backoff and jitter."""
    outcome = notification_deliver(notification_id=notification_id)
    if outcome.retry_in_s is not None:
        deliver.apply_async(kwargs={"notification_id": notification_id}, countdown=outcome.retry_in_s)
    return outcome.status


@app.task(base=TelemetryTask, name=RENOTIFY_TASK)
def renotify() -> int:
    """Beat: remind subscriptions of alerts still unacknowledged after their re-notify interval."""
    return len(notifications_renotify())


@app.task(base=TelemetryTask, name=SEND_DIGESTS_TASK)
def send_digests() -> int:
    """Beat: send the digests of what storm control held back."""
    return len(notifications_send_digests())


@app.task(base=TelemetryTask, name=REQUEUE_STALLED_TASK)
def requeue_stalled() -> dict:
    """Beat: fan out events left without notifications; queue again overdue or abandoned deliveries."""
    return notifications_requeue_stalled()
