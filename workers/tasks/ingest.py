import logging
from datetime import timedelta

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.utils import timezone

from apps.aggregates.selectors import rollup_source
from apps.core.tasks import (
    COMPACT_READING_PARTITIONS_TASK,
    CREATE_READING_PARTITIONS_TASK,
    PROCESS_BATCH_TASK,
    PURGE_BATCHES_TASK,
    REQUEUE_STALE_BATCHES_TASK,
)
from apps.ingest.idempotency import idempotency_keys_purge
from apps.ingest.partitions import partitions_compact, partitions_ensure_ahead
from apps.ingest.pipeline import batch_mark_failed, batch_process, enqueue_evaluation
from apps.ingest.services import batch_purge_finished, batch_requeue_stale
from workers.base import TelemetryTask, drop_interrupted_connections
from workers.celery import app
from workers.tasks.alerts import evaluate_and_fan_out

logger = logging.getLogger(__name__)


class IngestTask(TelemetryTask):
    def dead_lettered(self, exc, args, kwargs) -> None:
        batch_id = kwargs.get("batch_id") or (args[0] if args else None)
        if batch_id:
            batch_mark_failed(batch_id=str(batch_id), error=f"{type(exc).__name__}: {exc}")


@app.task(base=IngestTask, name=PROCESS_BATCH_TASK)
def process_batch(batch_id: str) -> dict | None:
    """Store one ingest batch (its own transaction), then evaluate it here, in the same process, unless
    INGEST_EVALUATE_INLINE is off (then the store step queues alerts.evaluate_batch). A done or deleted batch
    is a no-op; so is its evaluation once done, and a redelivered message whose batch was stored but not
    evaluated (the process died in between) evaluates it."""
    inline = settings.INGEST_EVALUATE_INLINE
    outcome = batch_process(batch_id=batch_id, queue_evaluation=not inline)
    # A batch that stored nothing was stamped evaluated by the store step.
    evaluation = _evaluate_stored(batch_id) if inline and (outcome is None or outcome.stored) else None
    if outcome is None and evaluation is None:
        return None
    result = {"evaluation": evaluation}
    if outcome is not None:
        result.update(stored=outcome.stored, duplicates=outcome.duplicates, rejected=outcome.rejected)
    return result


def _evaluate_stored(batch_id: str) -> dict | None:
    """Evaluate a batch whose readings are committed. Should that fail, for whatever reason, the batch is
    handed to alerts.evaluate_batch on the `alerts` queue, which retries and dead-letters it as it does any
    evaluation: a retry of this ingest task would find nothing to store, and a dead letter of it would name
    the wrong step (and be replayed as one)."""
    try:
        return evaluate_and_fan_out(batch_id)
    except Exception as exc:
        if isinstance(exc, SoftTimeLimitExceeded):
            drop_interrupted_connections()
        logger.warning("ingest batch %s: evaluation failed (%s: %s); queued to alerts.evaluate_batch",
                       batch_id, type(exc).__name__, exc)  # fmt: skip
        enqueue_evaluation(batch_id=batch_id)
        return None


@app.task(base=TelemetryTask, name=REQUEUE_STALE_BATCHES_TASK)
def requeue_stale_batches() -> int:
    """Beat: queue again batches the broker lost or whose worker vanished."""
    return batch_requeue_stale(older_than_s=settings.CELERY_TASK_TIME_LIMIT + settings.CELERY_VISIBILITY_TIMEOUT_S)


@app.task(base=TelemetryTask, name=CREATE_READING_PARTITIONS_TASK)
def create_reading_partitions() -> list[str]:
    """Beat (hourly): the readings partitions of today and the next READINGS_PARTITIONS_AHEAD_DAYS days, so the
    store step seldom has to make one; returns the names of those it created."""
    return partitions_ensure_ahead(days=settings.READINGS_PARTITIONS_AHEAD_DAYS)


class CompactionTask(TelemetryTask):
    # Rebuilding a large day's primary key takes minutes: longer limits than the default. A copy of the message
    # delivered again after the broker's visibility timeout finds the compaction lock taken and returns.
    soft_time_limit = settings.READINGS_COMPACT_TIME_LIMIT_S
    time_limit = settings.READINGS_COMPACT_TIME_LIMIT_S + 30


@app.task(base=CompactionTask, name=COMPACT_READING_PARTITIONS_TASK)
def compact_reading_partitions() -> list[str]:
    """Beat (hourly): rebuild packed the primary keys of the day partitions that are over; returns their names."""
    return partitions_compact()


# Rollups learn what changed from done batches that finished after their watermark: keep those a while longer.
ROLLUP_MARGIN = timedelta(hours=1)


@app.task(base=TelemetryTask, name=PURGE_BATCHES_TASK)
def purge_batches() -> int:
    """Beat (daily): delete ingest batches older than INGEST_BATCH_RETENTION_DAYS that everything is done
    with, in chunks, never one the rollups have not taken in yet; and the Idempotency-Keys past their day."""
    idempotency_keys_purge(now=timezone.now())
    cutoff = timezone.now() - timedelta(days=settings.INGEST_BATCH_RETENTION_DAYS)
    source = rollup_source()
    if source.tracks_batches:
        if source.watermark is None:
            return 0  # rollups have not run yet: every batch may still matter to them
        cutoff = min(cutoff, source.watermark - ROLLUP_MARGIN)
    total = 0
    while deleted := batch_purge_finished(finished_before=cutoff):
        total += deleted
    logger.info("purged %d ingest batches finished before %s", total, cutoff.isoformat())
    return total
