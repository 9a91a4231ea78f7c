"""The threshold pass of a batch's evaluation: every (sensor, threshold) pair of the batch's sensors, its state
row locked, walked through its new readings by the database-free state machine (apps/alerts/evaluation.py),
and written back set-wise. Alerts whose threshold no longer applies to their sensor are resolved here too.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings

from apps.alerts.evaluation import Outcome, PairState, SensorRow, walk
from apps.alerts.models import NORMAL, Alert, ThresholdState
from apps.alerts.selectors import ReadingsAfter, readings_after
from apps.core.sql import BinaryCursor, binary_cursor
from apps.ingest.models import IngestBatch
from apps.thresholds.selectors import EffectiveThreshold, effective_thresholds

_CREATE_STATES = f"""
INSERT INTO {ThresholdState._meta.db_table}
       (sensor_id, threshold_id, level, breach_max_level, updated_at)
SELECT s, t, 'normal', 'normal', now() FROM unnest(%s::bigint[], %s::bigint[]) AS u(s, t) ORDER BY s, t
ON CONFLICT (sensor_id, threshold_id) DO NOTHING
"""

# The states of the sensors, locked in (sensor, threshold) order; the columns are PairState's first fields, in order.
_LOCK_STATES = f"""
SELECT s.id AS state_id, s.sensor_id, s.threshold_id, s.level, s.breach_started_at, s.breach_first_value,
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


def _lock_states(cursor: BinaryCursor, sensor_ids: list[int]) -> tuple[list[PairState], dict[tuple[int, int], int]]:
    """The sensors' pairs, their state rows locked, and the id of each pair's unresolved alert (its alert is
    set once the caller has locked it). Built positionally from plain rows: a named row per state, then a copy
    of it with the alert id, then the pair cost about a tenth of the worker's time at 2,000 pairs a batch."""
    cursor.execute(_LOCK_STATES, [sensor_ids])
    pairs = [PairState(*row) for row in cursor.fetchall()]
    cursor.execute(_UNRESOLVED_ALERTS, [sensor_ids])
    alert_of = {(sensor_id, threshold_id): alert_id for sensor_id, threshold_id, alert_id in cursor.fetchall()}
    return pairs, alert_of


@dataclass
class ThresholdPass:
    """What the threshold pass read and changed: the pairs whose state rows are to be written back."""

    readings: int = 0
    pairs: list[PairState] = field(default_factory=list)
    read: ReadingsAfter | None = None  # the readings walked, which the anomaly pass takes over

    def save(self) -> None:
        """Write the changed states back in one statement. After the alerts are saved: a state points at
        the alert its pair opened."""
        if not self.pairs:
            return
        pairs = self.pairs
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


def thresholds_evaluate(
    sensors: dict[int, SensorRow], *, batch: IngestBatch, now: datetime, outcome: Outcome
) -> ThresholdPass:
    """Walk each (sensor, threshold) pair of the batch's sensors through its new readings, adding the alert
    changes to `outcome`; returns the pass with the states to write back once the alerts are saved.

    1. Load the sensors' effective thresholds (two queries for any number of sensors).
    2. Lock the sensors' state rows, each with its unresolved alert; pairs seen for the first time get their
       state created first. Then lock those alerts (id order).
    3. Read every sensor's readings newer than what its evaluation has reached, in one query.
    4. Walk each pair; resolve the alerts whose threshold no longer applies to the sensor.
    """
    sensor_ids = sorted(sensors)
    thresholds = effective_thresholds([(sensor.sensor_id, sensor.sensor_type_id) for sensor in sensors.values()])
    effective = {(t.sensor_id, t.threshold_id): t for ts in thresholds.values() for t in ts}
    with binary_cursor() as cursor:
        pairs, alert_of = _lock_states(cursor, sensor_ids)
        missing = sorted(set(effective) - {(pair.sensor_id, pair.threshold_id) for pair in pairs})
        if missing:
            # New pairs (a new sensor or threshold): create their states, then lock all again in order.
            cursor.execute(_CREATE_STATES, [[s for s, _ in missing], [t for _, t in missing]])
            pairs, alert_of = _lock_states(cursor, sensor_ids)
    if alert_of:
        locked = Alert.objects.select_for_update().filter(pk__in=sorted(alert_of.values())).order_by("pk")
        alerts = {alert.pk: alert for alert in locked}
        for pair in pairs:
            alert_id = alert_of.get((pair.sensor_id, pair.threshold_id))
            if alert_id is not None:
                pair.alert = alerts.get(alert_id)

    result = ThresholdPass()
    result.read = readings_after(_reached(pairs, effective, batch=batch), until=batch.stored_ts_max)
    readings_by_sensor = result.read.by_sensor
    result.readings = sum(len(readings) for readings in readings_by_sensor.values())
    for pair in pairs:
        threshold = effective.get((pair.sensor_id, pair.threshold_id))
        if threshold is None:
            if pair.alert is not None:
                _resolve_for_removed_threshold(pair, at=now, outcome=outcome)
                result.pairs.append(pair)
            continue
        walk(
            pair, threshold, readings_by_sensor.get(pair.sensor_id, []), sensor=sensors[pair.sensor_id], outcome=outcome
        )
        if pair.changed:
            result.pairs.append(pair)
    return result


def _reached(
    pairs: list[PairState], effective: dict[tuple[int, int], EffectiveThreshold], *, batch: IngestBatch
) -> dict[int, datetime]:
    """Where each sensor's readings are read from: the oldest point any of its pairs has reached, but never
    further back than the lookback before the batch's first reading, so a long-silent sensor does not rescan
    its history."""
    floor = batch.stored_ts_min - timedelta(seconds=settings.ALERT_EVALUATION_LOOKBACK_S)
    first = batch.stored_ts_min - timedelta(microseconds=1)
    after_by_sensor: dict[int, datetime] = {}
    for pair in pairs:
        if (pair.sensor_id, pair.threshold_id) not in effective:
            continue
        reached = max(floor, pair.last_ts or first)
        after_by_sensor[pair.sensor_id] = min(reached, after_by_sensor.get(pair.sensor_id, reached))
    return after_by_sensor


def _resolve_for_removed_threshold(pair: PairState, *, at: datetime, outcome: Outcome) -> None:
    reason = "The threshold was disabled or removed for this sensor."
    outcome.record(pair.alert.resolve(Alert.Resolution.THRESHOLD_REMOVED, at=at, reason=reason))
    pair.alert = None
    pair.level = NORMAL
    pair.clear_breach()
    pair.changed = True
