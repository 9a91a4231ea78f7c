"""Evaluation of a stored batch: the one write that turns a batch's readings into alert changes, and the beat
that queues it again when its message was lost.

Each kind of alert evaluated from readings is a pass over the batch's sensors that adds its alert changes
to one shared Outcome and keeps its own state rows: thresholds (thresholds.py), then anomalies
(anomalies.py), which locks its own states after the threshold pass (the lock order of
apps/alerts/services/__init__.py), with the alerts and events of both written together.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from apps.alerts.evaluation import Outcome, SensorRow
from apps.alerts.models import Alert, AlertEvent
from apps.alerts.services.anomalies import batch_anomalies_evaluate
from apps.alerts.services.thresholds import thresholds_evaluate
from apps.core.generation_cache import GenerationCache
from apps.core.sql import binary_cursor
from apps.core.tasks import EVALUATE_BATCH_TASK
from apps.deadletters.models import DeadLetter
from apps.ingest.models import IngestBatch
from apps.ingest.pipeline import enqueue_evaluation
from apps.ingest.resolution import GENERATION_KEY
from apps.ingest.selectors import batches_unevaluated

# Sets of ids are joined through unnest() rather than matched with "= ANY(array)": with a prepared (generic)
# plan PostgreSQL searches the array linearly for every row, which costs milliseconds per batch at 1,000 ids.
# The columns are SensorRow's fields.
_SENSORS = """
SELECT s.id AS sensor_id, s.sensor_type_id, s.device_id, s.location_id
  FROM unnest(%s::bigint[]) AS wanted(id) JOIN devices_sensor s ON s.id = wanted.id
"""
# What an alert copies of its sensor, by sensor id, dropped with the store step's cache of sensors (the same
# generation, bumped by every save and delete of a sensor): every batch of a plant names the same sensors, and
# loading them cost a query and a row object per sensor each time.
SENSORS = GenerationCache(GENERATION_KEY, ttl_s=settings.INGEST_SENSOR_CACHE_S)

# What evaluation may change on an alert already stored (the lifecycle methods it calls), written for all the
# changed alerts in one statement: bulk_update's CASE expression per field and row cost the worker more than
# the whole threshold walk.
_UPDATE_ALERTS = f"""
UPDATE {Alert._meta.db_table} AS a
   SET severity = u.severity, max_severity = u.max_severity, state = u.state, value = u.value,
       value_at = u.value_at, peak_value = u.peak_value, peak_at = u.peak_at, resolved_at = u.resolved_at,
       resolution = u.resolution, resolution_reason = u.resolution_reason, updated_at = %s
  FROM unnest(%s::bigint[], %s::text[], %s::text[], %s::text[], %s::float8[], %s::timestamptz[], %s::float8[],
              %s::timestamptz[], %s::timestamptz[], %s::text[], %s::text[])
       AS u(id, severity, max_severity, state, value, value_at, peak_value, peak_at, resolved_at, resolution,
            resolution_reason)
 WHERE a.id = u.id
"""
_ALERT_UPDATE_FIELDS = (
    "pk",
    "severity",
    "max_severity",
    "state",
    "value",
    "value_at",
    "peak_value",
    "peak_at",
    "resolved_at",
    "resolution",
    "resolution_reason",
)


@dataclass
class EvaluationResult:
    readings: int = 0
    opened: int = 0
    event_ids: list[int] | None = None


def batch_evaluate(*, batch_id: str) -> EvaluationResult | None:
    """Evaluate the readings a stored batch brought against their sensors' thresholds. Idempotent: the batch
    row is locked and stamped evaluated_at in the same transaction as every state, alert and event written,
    so a redelivered task finds it done. Returns None when there is nothing (more) to do.

    1. Lock the batch; skip it unless it is done and not yet evaluated.
    2. Load the batch's sensors (one query for any number).
    3. Run the threshold pass (thresholds_evaluate): states locked, readings walked, alert changes decided.
    4. Write new and changed alerts and their events set-wise, then the pass's states; stamp the batch.
    """
    with transaction.atomic():
        batch = (
            IngestBatch.objects.select_for_update()
            .filter(pk=batch_id)
            .only("id", "status", "stored_sensor_ids", "stored_ts_min", "stored_ts_max", "evaluated_at")
            .first()
        )
        if batch is None or batch.status != IngestBatch.Status.DONE or batch.evaluated_at is not None:
            return None
        now = timezone.now()
        result = EvaluationResult(event_ids=[])
        sensor_ids = sorted(batch.stored_sensor_ids or [])
        if sensor_ids and batch.stored_ts_max is not None:
            # Device-offline alerts are left to the connectivity sweep, which knows whether data is a real
            # return or readings that were in flight when the device went away.
            outcome = Outcome()
            sensors = _sensors(sensor_ids)
            threshold_pass = thresholds_evaluate(sensors, batch=batch, now=now, outcome=outcome)
            batch_anomalies_evaluate(sensors, batch=batch, outcome=outcome, read=threshold_pass.read)
            _save(outcome)
            threshold_pass.save()
            result.readings = threshold_pass.readings
            result.event_ids = [event.pk for event in outcome.events]
            result.opened = len(outcome.new_alerts)
        IngestBatch.objects.filter(pk=batch_id).update(evaluated_at=now)
    return result


def _sensors(sensor_ids: list[int]) -> dict[int, SensorRow]:
    return SENSORS.get_many(sensor_ids, _load_sensors)


def _load_sensors(sensor_ids: list[int]) -> dict[int, SensorRow]:
    with binary_cursor() as cursor:
        cursor.execute(_SENSORS, [sensor_ids])
        return {row.sensor_id: row for row in cursor.fetchall(row=SensorRow)}


def _save(outcome: Outcome) -> None:
    # Changed alerts first: one resolved in this batch must be resolved before its successor for the same
    # pair is inserted, or the partial unique constraint would see two unresolved alerts.
    if outcome.changed_alerts:
        now = timezone.now()
        alerts = sorted(outcome.changed_alerts.values(), key=lambda alert: alert.pk)
        for alert in alerts:
            alert.updated_at = now
        columns = [[getattr(alert, name) for alert in alerts] for name in _ALERT_UPDATE_FIELDS]
        with binary_cursor() as cursor:
            cursor.execute(_UPDATE_ALERTS, [now, *columns])
    if outcome.new_alerts:
        Alert.objects.bulk_create(outcome.new_alerts)
    if outcome.events:
        AlertEvent.objects.bulk_create(outcome.events)


def batches_requeue_unevaluated(*, older_than_s: int, limit: int = 1000) -> int:
    """Queue evaluation again for batches stored more than `older_than_s` ago and still not evaluated (the
    broker lost the message, or the worker died and the message expired). Evaluation is idempotent."""
    cutoff = timezone.now() - timedelta(seconds=older_than_s)
    batch_ids = batches_unevaluated(finished_before=cutoff, limit=limit)
    # A batch whose evaluation failed for good is a dead letter for staff to replay, not a message to send
    # again every minute.
    dead = set(
        DeadLetter.objects.filter(task_name=EVALUATE_BATCH_TASK, kwargs__batch_id__in=batch_ids).values_list(
            "kwargs__batch_id", flat=True
        )
    )
    requeued = [batch_id for batch_id in batch_ids if batch_id not in dead]
    for batch_id in requeued:
        enqueue_evaluation(batch_id=batch_id)
    return len(requeued)
