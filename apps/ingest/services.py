"""The API side of ingest: check a request's structure, keep it as a batch, queue it after commit."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from celery import current_app
from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from apps.core.errors import ApplicationError
from apps.core.redis_outage import best_effort
from apps.core.tasks import PROCESS_BATCH_TASK
from apps.ingest.adapters import IngestContext, ItemErrors, adapter_for
from apps.ingest.models import IngestBatch
from apps.ingest.payload import NormalizedBatch
from apps.operations import metrics

MAX_REPORTED_ERRORS = 1000


def request_items(body: Any) -> list:
    """The items of a request: a single object, a JSON array, or {"readings": [...]}."""
    if isinstance(body, list):
        return body
    if isinstance(body, dict):
        readings = body.get("readings")
        if isinstance(readings, list) and not ({"sensor", "device_id", "measurements"} & body.keys()):
            return readings
        return [body]
    raise ApplicationError(
        'The body must be a reading object, a JSON array of them, or {"readings": [...]}.',
        errors={"non_field_errors": ["Expected an object or an array."]},
    )


def count_readings(body: Any) -> int:
    """How many readings a request body carries (for rate limits and the size limit)."""
    return _count_readings(request_items(body))


def _count_readings(items: list) -> int:
    """How many readings the items carry, counted cheaply, so an oversized request is refused before any
    per-reading work."""
    count = 0
    for item in items:
        if isinstance(item, dict):
            measurements = item.get("measurements")
            if isinstance(measurements, list):
                count += len(measurements)
            elif "sensor" in item:
                count += 1
            else:
                count += max(len(item) - 2, 1)
        else:
            count += 1
    return count


def normalize_request(
    body: Any, *, received_at: datetime, device_id: str | None, max_readings: int | None = None
) -> NormalizedBatch:
    """Check every item's structure and normalise the readings. Any structural error refuses the whole
    request (400) with every bad item's index and field; too many readings is a 413."""
    items = request_items(body)
    limit = max_readings or settings.INGEST_MAX_READINGS_PER_REQUEST
    if not items:
        raise ApplicationError("The request carries no readings.", errors={"readings": ["Must not be empty."]})
    if _count_readings(items) > limit:
        raise ApplicationError(
            f"Too many readings in one request: at most {limit} are accepted; split the request.",
            errors={"readings": [f"At most {limit} readings per request."]},
            status_code=413,
        )
    context = IngestContext(received_at=received_at, device_id=device_id, field_maps=settings.INGEST_FLAT_FIELD_MAPS)
    errors: dict[str, list[str]] = {}
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            errors[f"readings[{index}]"] = ["Must be an object."]
            continue
        adapter = adapter_for(item)
        if adapter is None:
            errors[f"readings[{index}]"] = [
                "Unrecognised reading: give 'sensor' and 'value', or 'device_id' with 'measurements' or measurement fields."
            ]
            continue
        item_errors = ItemErrors()
        adapter.normalize(item, index, context, item_errors)
        for field, messages in item_errors.items():
            if len(errors) < MAX_REPORTED_ERRORS:
                errors[f"readings[{index}].{field}"] = messages
    if errors:
        bad_items = len({key.split("]")[0] for key in errors})
        raise ApplicationError(f"{bad_items} item(s) of the request are malformed; nothing was queued.", errors=errors)
    if len(context.batch) > limit:
        raise ApplicationError(
            f"Too many readings in one request: at most {limit} are accepted; split the request.",
            errors={"readings": [f"At most {limit} readings per request."]},
            status_code=413,
        )
    return context.batch


def batch_create(
    *,
    normalized: NormalizedBatch,
    received_at: datetime,
    source: str = IngestBatch.Source.HTTP,
    device_pk: int | None = None,
    user_pk: int | None = None,
    request_id: str = "",
) -> IngestBatch:
    """Keep the batch and queue its processing once the row is committed (never before: the worker
    would not find it). If the broker cannot be reached the batch stays queued in the database and the
    requeue beat (`batch_requeue_stale`) sends it later, so an accepted request is never lost."""
    with transaction.atomic():
        batch = IngestBatch.objects.create(
            source=source,
            device_id=device_pk,
            user_id=user_pk,
            received_at=received_at,
            received=len(normalized),
            payload=normalized.dumps(),
            request_id=request_id,
        )
        transaction.on_commit(lambda: enqueue_batch(batch_id=str(batch.pk)), robust=True)
        transaction.on_commit(lambda: metrics.READINGS_RECEIVED.labels(source).inc(len(normalized)))
    return batch


def enqueue_batch(*, batch_id: str) -> bool:
    """Send the batch's task; False when the broker cannot be reached (the batch stays queued in PostgreSQL
    for the requeue beat). Nobody waits for its result (the batch row is the result), so the publish does not
    subscribe to one either: that would be one more Redis round trip per request."""
    return best_effort(
        "enqueue_batch",
        lambda: bool(current_app.send_task(PROCESS_BATCH_TASK, args=[batch_id], ignore_result=True)),
        False,
    )


def batch_requeue_stale(*, older_than_s: int) -> int:
    """Queue again the batches that should have been processed by now: still queued (the broker was down
    when they arrived) or processing for longer than a task may run (their worker vanished). Processing is
    idempotent, so a batch that is merely slow is not harmed by a second message."""
    cutoff = timezone.now() - timedelta(seconds=older_than_s)
    stale = list(
        IngestBatch.objects.filter(
            Q(status=IngestBatch.Status.QUEUED, received_at__lt=cutoff)
            | Q(status=IngestBatch.Status.PROCESSING, started_at__lt=cutoff)
        ).values_list("pk", flat=True)[:1000]
    )
    return sum(enqueue_batch(batch_id=str(batch_id)) for batch_id in stale)


def batch_purge_finished(*, finished_before: datetime, limit: int = 10_000) -> int:
    """Delete batches that are finished with: done, evaluated, and finished before `finished_before`. Failed
    and unevaluated batches stay (a person or a beat still has work with them). At most `limit` per call, so
    the delete never holds locks for long; returns how many went."""
    doomed = IngestBatch.objects.filter(
        status=IngestBatch.Status.DONE, evaluated_at__isnull=False, finished_at__lt=finished_before
    ).values_list("pk", flat=True)[:limit]
    deleted, _ = IngestBatch.objects.filter(pk__in=list(doomed)).delete()
    return deleted
