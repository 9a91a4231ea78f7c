"""Writes of alerting: batch evaluation, the manual lifecycle steps, device-offline alerts.

Lock order, the same everywhere so that two writers never wait on each other in a circle: ingest batch →
threshold states (sensor, threshold order) → alerts (id order). Acknowledging touches only the alert row.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from celery import current_app
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from apps.alerts.evaluation import AlertFactory, Outcome, PairState, walk
from apps.alerts.models import NORMAL, Alert, AlertEvent, MaintenanceWindow, ThresholdState
from apps.alerts.selectors import readings_after
from apps.alerts.sql import binary_cursor
from apps.core.errors import ApplicationError
from apps.deadletters.models import DeadLetter
from apps.devices.models import Device
from apps.ingest.models import IngestBatch
from apps.ingest.pipeline import EVALUATE_BATCH_TASK, enqueue_evaluation
from apps.thresholds.selectors import effective_thresholds

logger = logging.getLogger(__name__)

# The notifications side picks events up by task name, so alerting never imports it (the data flows one way).
FAN_OUT_TASK = "notifications.fan_out"


def enqueue_fan_out(*, event_ids: list[int]) -> None:
    if event_ids:
        current_app.send_task(FAN_OUT_TASK, kwargs={"event_ids": event_ids})


def _fan_out_on_commit(events: list[AlertEvent]) -> None:
    event_ids = [event.pk for event in events]
    if event_ids:
        transaction.on_commit(lambda: enqueue_fan_out(event_ids=event_ids), robust=True)


# Sets of ids are joined through unnest() rather than matched with "= ANY(array)": with a prepared (generic)
# plan PostgreSQL searches the array linearly for every row, which costs milliseconds per batch at 1,000 ids.
_SENSORS = """
SELECT s.id, s.sensor_type_id, s.device_id, s.location_id
  FROM unnest(%s::bigint[]) AS wanted(id) JOIN devices_sensor s ON s.id = wanted.id
"""

_CREATE_STATES = f"""
INSERT INTO {ThresholdState._meta.db_table}
       (sensor_id, threshold_id, level, breach_max_level, updated_at)
SELECT s, t, 'normal', 'normal', now() FROM unnest(%s::bigint[], %s::bigint[]) AS u(s, t) ORDER BY s, t
ON CONFLICT (sensor_id, threshold_id) DO NOTHING
"""

# The states of the sensors, locked in (sensor, threshold) order.
_LOCK_STATES = f"""
SELECT s.id, s.sensor_id, s.threshold_id, s.level, s.breach_started_at, s.breach_first_value,
       s.breach_peak_value, s.breach_peak_at, s.breach_max_level, s.last_ts, s.last_value
  FROM unnest(%s::bigint[]) AS wanted(id)
  JOIN {ThresholdState._meta.db_table} s ON s.sensor_id = wanted.id
 ORDER BY s.sensor_id, s.threshold_id
   FOR UPDATE OF s
"""

# Their unresolved alerts, found through the partial unique index so an alert never goes unseen whatever the
# state row says. A statement of its own, run after the locks are held: under READ COMMITTED it then sees an
# alert that a concurrent evaluation of the same sensors committed while this one waited for the locks (a
# join inside the locking statement would keep the snapshot from before the wait, and open a second alert).
_UNRESOLVED_ALERTS = f"""
SELECT a.sensor_id, a.threshold_id, a.id
  FROM unnest(%s::bigint[]) AS wanted(id) JOIN {Alert._meta.db_table} a ON a.sensor_id = wanted.id
 WHERE a.kind = 'threshold' AND NOT (a.state = 'resolved')
"""


def _lock_states(cursor, sensor_ids: list[int]) -> list[tuple]:
    """State rows locked, each with its unresolved alert's id appended (or None)."""
    cursor.execute(_LOCK_STATES, [sensor_ids])
    states = cursor.fetchall()
    cursor.execute(_UNRESOLVED_ALERTS, [sensor_ids])
    alert_of = {(sensor_id, threshold_id): alert_id for sensor_id, threshold_id, alert_id in cursor.fetchall()}
    return [(*row, alert_of.get((row[1], row[2]))) for row in states]


_UPDATE_STATES = f"""
UPDATE {ThresholdState._meta.db_table} AS s
   SET level = u.level, breach_started_at = u.breach_started_at, breach_first_value = u.breach_first_value,
       breach_peak_value = u.breach_peak_value, breach_peak_at = u.breach_peak_at,
       breach_max_level = u.breach_max_level, alert_id = u.alert_id, last_ts = u.last_ts,
       last_value = u.last_value, updated_at = now()
  FROM unnest(%s::bigint[], %s::text[], %s::timestamptz[], %s::float8[], %s::float8[], %s::timestamptz[],
              %s::text[], %s::bigint[], %s::timestamptz[], %s::float8[])
       AS u(id, level, breach_started_at, breach_first_value, breach_peak_value, breach_peak_at,
            breach_max_level, alert_id, last_ts, last_value)
 WHERE s.id = u.id
"""


_ALERT_UPDATE_FIELDS = [
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
    "updated_at",
]


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
    2. Load the batch's sensors and their effective thresholds (three queries for any number of sensors).
    3. Lock the sensors' (sensor, threshold) states, each with its unresolved alert; pairs seen for the first
       time get their state created first.
    4. Read every sensor's readings newer than what its evaluation has reached, in one query.
    5. Walk each pair through its readings (apps.alerts.evaluation); resolve alerts whose threshold no longer
       applies to the sensor.
    6. Write new and changed alerts, events and states set-wise; stamp the batch.
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
            outcome = _evaluate_sensors(sensor_ids, batch=batch, now=now, result=result)
            _write(outcome)
            result.event_ids = [event.pk for event in outcome.events]
            result.opened = len(outcome.new_alerts)
        IngestBatch.objects.filter(pk=batch_id).update(evaluated_at=now)
    return result


@dataclass
class _BatchOutcome(Outcome):
    pairs: list[PairState] = field(default_factory=list)
    sensor_rows: dict[int, dict] = field(default_factory=dict)


def _evaluate_sensors(
    sensor_ids: list[int], *, batch: IngestBatch, now: datetime, result: EvaluationResult
) -> _BatchOutcome:
    outcome = _BatchOutcome()
    with binary_cursor() as cursor:
        cursor.execute(_SENSORS, [sensor_ids])
        outcome.sensor_rows = {
            row[0]: {"id": row[0], "sensor_type_id": row[1], "device_id": row[2], "location_id": row[3]}
            for row in cursor.fetchall()
        }
        thresholds = effective_thresholds([(row["id"], row["sensor_type_id"]) for row in outcome.sensor_rows.values()])
        effective = {(t.sensor_id, t.threshold_id): t for ts in thresholds.values() for t in ts}
        rows = _lock_states(cursor, sensor_ids)
        missing = sorted(set(effective) - {(row[1], row[2]) for row in rows})
        if missing:
            # New pairs (a new sensor or threshold): create their states, then lock all again in order.
            cursor.execute(_CREATE_STATES, [[s for s, _ in missing], [t for _, t in missing]])
            rows = _lock_states(cursor, sensor_ids)
    alert_ids = sorted(row[11] for row in rows if row[11] is not None)
    alerts = (
        {alert.pk: alert for alert in Alert.objects.select_for_update().filter(pk__in=alert_ids).order_by("pk")}
        if alert_ids
        else {}
    )
    pairs = [_pair_of(row, alerts.get(row[11])) for row in rows]

    # Each sensor is read from the oldest point any of its pairs has reached, but never further back than
    # the lookback before the batch's first reading: a long-silent sensor does not rescan its history.
    floor = batch.stored_ts_min - timedelta(seconds=settings.ALERT_EVALUATION_LOOKBACK_S)
    first = batch.stored_ts_min - timedelta(microseconds=1)
    after_by_sensor: dict[int, datetime] = {}
    for pair in pairs:
        if (pair.sensor_id, pair.threshold_id) not in effective:
            continue
        reached = max(floor, pair.last_ts or first)
        after_by_sensor[pair.sensor_id] = min(reached, after_by_sensor.get(pair.sensor_id, reached))
    readings_by_sensor = readings_after(after_by_sensor, until=batch.stored_ts_max)
    result.readings = sum(len(readings) for readings in readings_by_sensor.values())

    factory = AlertFactory(outcome.sensor_rows)
    for pair in pairs:
        threshold = effective.get((pair.sensor_id, pair.threshold_id))
        if threshold is None:
            if pair.alert is not None:
                _resolve_for_removed_threshold(pair, at=now, outcome=outcome)
            continue
        walk(pair, threshold, readings_by_sensor.get(pair.sensor_id, []), factory=factory, outcome=outcome)
        if pair.changed:
            outcome.pairs.append(pair)
    return outcome


def _pair_of(row: tuple, alert: Alert | None) -> PairState:
    (
        state_id,
        sensor_id,
        threshold_id,
        level,
        started,
        first_value,
        peak_value,
        peak_at,
        max_level,
        last_ts,
        last_value,
        _,
    ) = row
    return PairState(
        state_id=state_id,
        sensor_id=sensor_id,
        threshold_id=threshold_id,
        level=level,
        breach_started_at=started,
        breach_first_value=first_value,
        breach_peak_value=peak_value,
        breach_peak_at=peak_at,
        breach_max_level=max_level,
        alert=alert,
        last_ts=last_ts,
        last_value=last_value,
    )


def _resolve_for_removed_threshold(pair: PairState, *, at: datetime, outcome: _BatchOutcome) -> None:
    alert = pair.alert
    alert.state, alert.resolved_at = Alert.State.RESOLVED, at
    alert.resolution = Alert.Resolution.THRESHOLD_REMOVED
    alert.resolution_reason = "The threshold was disabled or removed for this sensor."
    outcome.touch(alert)
    outcome.events.append(
        AlertEvent(
            alert=alert,
            kind=AlertEvent.Kind.RESOLVED,
            at=at,
            severity=alert.severity,
            value=alert.value,
            comment=alert.resolution_reason,
        )
    )
    pair.alert = None
    pair.level = NORMAL
    pair.clear_breach()
    pair.changed = True
    outcome.pairs.append(pair)


def _write(outcome: _BatchOutcome) -> None:
    # Changed alerts first: one resolved in this batch must be resolved before its successor for the same
    # pair is inserted, or the partial unique constraint would see two unresolved alerts.
    if outcome.changed_alerts:
        now = timezone.now()
        for alert in outcome.changed_alerts.values():
            alert.updated_at = now
        Alert.objects.bulk_update(list(outcome.changed_alerts.values()), _ALERT_UPDATE_FIELDS)
    if outcome.new_alerts:
        Alert.objects.bulk_create(outcome.new_alerts)
    if outcome.events:
        AlertEvent.objects.bulk_create(outcome.events)
    if outcome.pairs:
        pairs = outcome.pairs
        with binary_cursor() as cursor:
            cursor.execute(
                _UPDATE_STATES,
                [
                    [p.state_id for p in pairs],
                    [p.level for p in pairs],
                    [p.breach_started_at for p in pairs],
                    [p.breach_first_value for p in pairs],
                    [p.breach_peak_value for p in pairs],
                    [p.breach_peak_at for p in pairs],
                    [p.breach_max_level for p in pairs],
                    [p.alert.pk if p.alert is not None else None for p in pairs],
                    [p.last_ts for p in pairs],
                    [p.last_value for p in pairs],
                ],
            )


def _mark_resolved(alert: Alert, *, at: datetime, resolution: str, reason: str = "", user=None) -> None:
    alert.state = Alert.State.RESOLVED
    alert.resolved_at = at
    alert.resolution = resolution
    alert.resolution_reason = reason
    alert.resolved_by = user


def _resolution_event(alert: Alert, *, at: datetime, user=None) -> AlertEvent:
    return AlertEvent(
        alert=alert,
        kind=AlertEvent.Kind.RESOLVED,
        at=at,
        severity=alert.severity,
        value=alert.value,
        user=user,
        comment=alert.resolution_reason,
    )


def batches_requeue_unevaluated(*, older_than_s: int, limit: int = 1000) -> int:
    """Queue evaluation again for batches stored more than `older_than_s` ago and still not evaluated (the
    broker lost the message, or the worker died and the message expired). Evaluation is idempotent."""
    cutoff = timezone.now() - timedelta(seconds=older_than_s)
    batch_ids = [
        str(batch_id)
        for batch_id in IngestBatch.objects.filter(
            status=IngestBatch.Status.DONE, evaluated_at__isnull=True, finished_at__lt=cutoff
        )
        .order_by("finished_at")
        .values_list("pk", flat=True)[:limit]
    ]
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


# --- The manual lifecycle --------------------------------------------------------------------------------------


def _conflict(alert: Alert, message: str) -> ApplicationError:
    return ApplicationError(message, errors={"state": [f"The alert is {alert.state}."]}, status_code=409)


def alert_acknowledge(*, alert_id: int, user, comment: str = "") -> Alert:
    """Someone has seen the alert and is on it: records who, when and why, as an event."""
    with transaction.atomic():
        alert = Alert.objects.select_for_update().get(pk=alert_id)
        if alert.state == Alert.State.RESOLVED:
            raise _conflict(alert, "A resolved alert cannot be acknowledged.")
        if alert.state == Alert.State.ACKNOWLEDGED:
            who = alert.acknowledged_by.get_username() if alert.acknowledged_by else "someone"
            raise _conflict(alert, f"Already acknowledged by {who} at {alert.acknowledged_at.isoformat()}.")
        now = timezone.now()
        alert.state = Alert.State.ACKNOWLEDGED
        alert.acknowledged_at = now
        alert.acknowledged_by = user
        alert.acknowledge_comment = comment
        alert.save(update_fields=["state", "acknowledged_at", "acknowledged_by", "acknowledge_comment", "updated_at"])
        event = AlertEvent.objects.create(
            alert=alert,
            kind=AlertEvent.Kind.ACKNOWLEDGED,
            at=now,
            severity=alert.severity,
            value=alert.value,
            user=user,
            comment=comment,
        )
        _fan_out_on_commit([event])
    return alert


def alert_resolve(*, alert_id: int, user, reason: str) -> Alert:
    """Close an alert by hand. Its sensor's state starts afresh: if the value is still out of its band, a
    new alert opens once the breach has lasted its minimum duration again."""
    reason = (reason or "").strip()
    if not reason:
        raise ApplicationError("Say why the alert is resolved.", errors={"reason": ["This field may not be blank."]})
    with transaction.atomic():
        pair = Alert.objects.filter(pk=alert_id).values_list("sensor_id", "threshold_id").first()
        if pair is None:
            raise ApplicationError("Not found.", status_code=404)
        state = None
        if pair[0] is not None and pair[1] is not None:
            state = ThresholdState.objects.select_for_update().filter(sensor_id=pair[0], threshold_id=pair[1]).first()
        alert = Alert.objects.select_for_update().get(pk=alert_id)
        if alert.state == Alert.State.RESOLVED:
            raise _conflict(alert, "The alert is already resolved.")
        now = timezone.now()
        _mark_resolved(alert, at=now, resolution=Alert.Resolution.MANUAL, reason=reason, user=user)
        alert.save(
            update_fields=["state", "resolved_at", "resolution", "resolution_reason", "resolved_by", "updated_at"]
        )
        if state is not None:
            ThresholdState.objects.filter(pk=state.pk).update(
                level=NORMAL,
                alert=None,
                breach_started_at=None,
                breach_first_value=None,
                breach_peak_value=None,
                breach_peak_at=None,
                breach_max_level=NORMAL,
                updated_at=now,
            )
        event = _resolution_event(alert, at=now, user=user)
        event.save()
        _fan_out_on_commit([event])
    return alert


# --- Device offline --------------------------------------------------------------------------------------------


def alert_device_offline(*, device_id: int, since: datetime | None, now: datetime | None = None) -> Alert | None:
    """Open a device-offline alert (the device has sent nothing since `since`), through the same lifecycle
    and subscriptions as threshold alerts. Idempotent: while one is unresolved, it is returned as is. None if
    the device does not exist."""
    now = now or timezone.now()
    with transaction.atomic():
        # The device row lock serializes two detectors racing for the same device; the partial unique
        # constraint would refuse the second alert anyway.
        device = Device.objects.select_for_update().filter(pk=device_id).only("id", "location_id").first()
        if device is None:
            return None
        existing = (
            Alert.objects.filter(kind=Alert.Kind.DEVICE_OFFLINE, device_id=device_id)
            .exclude(state=Alert.State.RESOLVED)
            .first()
        )
        if existing is not None:
            return existing
        severity = settings.ALERT_DEVICE_OFFLINE_SEVERITY
        alert = Alert.objects.create(
            kind=Alert.Kind.DEVICE_OFFLINE,
            device_id=device_id,
            location_id=device.location_id,
            severity=severity,
            max_severity=severity,
            breach_started_at=since or now,
            opened_at=now,
        )
        comment = f"No data since {since.isoformat()}." if since else "The device has never sent data."
        event = AlertEvent.objects.create(
            alert=alert, kind=AlertEvent.Kind.OPENED, at=now, severity=severity, comment=comment
        )
        _fan_out_on_commit([event])
    return alert


def alert_device_online(*, device_id: int, at: datetime | None = None) -> Alert | None:
    """Resolve the device's unresolved offline alert, if it has one (which is returned)."""
    at = at or timezone.now()
    with transaction.atomic():
        alert = (
            Alert.objects.select_for_update()
            .filter(kind=Alert.Kind.DEVICE_OFFLINE, device_id=device_id)
            .exclude(state=Alert.State.RESOLVED)
            .first()
        )
        if alert is None:
            return None
        _mark_resolved(alert, at=at, resolution=Alert.Resolution.DEVICE_ONLINE, reason="The device reported again.")
        alert.save(
            update_fields=["state", "resolved_at", "resolution", "resolution_reason", "resolved_by", "updated_at"]
        )
        event = _resolution_event(alert, at=at)
        event.save()
        _fan_out_on_commit([event])
    return alert


def alert_record_reminders(*, alert_ids: list[int], at: datetime) -> list[AlertEvent]:
    """A reminder event for each of these alerts that is still open (unacknowledged), for the re-notify beat
    to fan out."""
    if not alert_ids:
        return []
    alerts = Alert.objects.filter(pk__in=alert_ids, state=Alert.State.OPEN).only("id", "severity", "value")
    events = [
        AlertEvent(alert=alert, kind=AlertEvent.Kind.REMINDER, at=at, severity=alert.severity, value=alert.value)
        for alert in alerts
    ]
    return AlertEvent.objects.bulk_create(events)


def maintenance_window_errors(window: MaintenanceWindow) -> dict[str, list[str]]:
    """What is wrong with a maintenance window, by field: it needs a scope (a location subtree or a device),
    must end after it starts, and may last at most MAINTENANCE_WINDOW_MAX_DAYS, since it silences every
    notification of its scope (the API and the admin both check this)."""
    errors: dict[str, list[str]] = {}
    if window.location_id is None and window.device_id is None:
        errors["location"] = ["Give a location or a device (the root location covers the whole plant)."]
    if window.starts_at and window.ends_at:
        max_days = settings.MAINTENANCE_WINDOW_MAX_DAYS
        if window.ends_at <= window.starts_at:
            errors["ends_at"] = ["Must be after starts_at."]
        elif window.ends_at - window.starts_at > timedelta(days=max_days):
            errors["ends_at"] = [f"A maintenance window may last at most {max_days} days; plan several."]
    return errors


def maintenance_window_save(*, window: MaintenanceWindow) -> MaintenanceWindow:
    """Create or update a maintenance window (see maintenance_window_errors for the rules)."""
    errors = maintenance_window_errors(window)
    if errors:
        raise ApplicationError("Invalid maintenance window.", errors=errors)
    window.save()
    return window
