"""The anomaly pass of a batch's evaluation, beside the threshold pass and in the same transaction: the
detector states of the batch's sensors that have an enabled anomaly rule, locked and loaded in one query,
the batch's readings walked through them as numpy arrays (apps/anomaly/detectors.py), the states written
back in one statement, and the episodes the detectors open or resolve turned into `anomaly` alerts through
the Alert model's lifecycle methods.

Late data and replays are the detectors' business: a reading at or before a sensor's newest learned reading
time is scored but moves neither the baseline nor the episode, so a replayed batch, or old readings that
arrive after newer ones, never open or resolve an alert twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
from django.db.models.expressions import RawSQL

from apps.alerts.evaluation import Outcome, SensorRow
from apps.alerts.models import Alert, Severity
from apps.alerts.selectors import ReadingsAfter, readings_after
from apps.anomaly.detectors import OPEN, OPENED, RESOLVED, detect, params_matrix
from apps.anomaly.selectors import any_rule_enabled, effective_anomaly_rules
from apps.anomaly.states import states_load, states_save
from apps.core.sql import binary_cursor
from apps.ingest.models import IngestBatch, Reading

_BATCH_READINGS = f"""
SELECT r.sensor_id, (extract(epoch FROM r.ts) * 1000000)::bigint, r.value
  FROM unnest(%s::bigint[]) AS wanted(id)
  JOIN {Reading._meta.db_table} r ON r.sensor_id = wanted.id AND r.ts >= %s AND r.ts <= %s
"""


@dataclass
class AnomalyPass:
    readings: int = 0
    opened: int = 0
    resolved: int = 0


def batch_anomalies_evaluate(
    sensors: dict[int, SensorRow], *, batch: IngestBatch, outcome: Outcome, read: ReadingsAfter | None = None
) -> AnomalyPass:
    """The one call of batch_evaluate: nothing at all when no rule is enabled, else the batch's readings as
    columns through anomalies_evaluate. The threshold pass's readings (`read`) serve the sensors it read for:
    each sensor's readings after the point its thresholds reached, which are those the detectors learn from
    too (older ones are late for them as well). The batch's readings of the other sensors are read here (one
    query, none when the threshold pass read for all of them)."""
    if not any_rule_enabled() or batch.stored_ts_min is None:
        return AnomalyPass()
    if read is None:
        read = readings_after({}, until=batch.stored_ts_max)
    rest = sorted(set(sensors) - {int(s) for s in read.asked})
    columns = [(read.sensor_ids, read.ts_us, read.values)]
    if rest:
        with binary_cursor() as cursor:
            cursor.execute(_BATCH_READINGS, [rest, batch.stored_ts_min, batch.stored_ts_max])
            rows = cursor.fetchall()
        if rows:
            ids, ts_us, values = zip(*rows, strict=True)
            columns.append((np.array(ids, dtype=np.int64), np.array(ts_us, dtype=np.int64), np.array(values)))
    sensor_ids, ts_us, values = (np.concatenate(parts) for parts in zip(*columns, strict=True))
    if not len(sensor_ids):
        return AnomalyPass()
    return anomalies_evaluate(sensors, sensor_ids, ts_us, values, outcome=outcome)


def _at(ts_us: int | float) -> datetime:
    return datetime.fromtimestamp(float(ts_us) / 1e6, tz=UTC)


def anomalies_evaluate(
    sensors: dict[int, SensorRow],
    sensor_ids: np.ndarray,
    ts_us: np.ndarray,
    values: np.ndarray,
    *,
    outcome: Outcome,
) -> AnomalyPass:
    """Walk these readings (columns: sensor id, reading time in epoch microseconds, value) through the detector
    states of their sensors that have an enabled rule, adding the anomaly alerts opened and resolved to
    `outcome`. Lock order: after the threshold states, the anomaly states (sensor order), then the alerts.

    1. The effective rules of the sensors (two queries); sensors without one are left out.
    2. Their states locked and loaded (one query), detect() over the readings, states saved (one statement).
    3. The unresolved anomaly alerts of the sensors whose episode was open or opens locked (one query, none
       when there are none); each reading's event opens, updates or resolves one.
    """
    result = AnomalyPass()
    rules = effective_anomaly_rules([(s.sensor_id, s.sensor_type_id) for s in sensors.values()])
    if not rules:
        return result
    ruled = np.array(sorted(rules), dtype=np.int64)
    keep = np.isin(sensor_ids, ruled)
    if not keep.any():
        return result
    sensor_ids, ts_us, values = sensor_ids[keep], ts_us[keep], values[keep]
    row_of = np.searchsorted(ruled, sensor_ids)
    ruled_ids = [int(s) for s in ruled]
    states = states_load(ruled_ids, lock=True)
    # An anomaly alert is opened with its sensor's episode and resolved with it: only the sensors whose episode
    # was open before this batch can have one to carry on, and those whose episode opens now are looked up
    # too, in case a state started afresh (a new layout) left an alert open.
    was_open = ruled[states[:, OPEN] > 0]
    params = params_matrix([rules[s].settings for s in ruled_ids])
    detection = detect(states, params, row_of, ts_us / 1e6, values)
    states_save(ruled_ids, states)
    result.readings = int(detection.learned.sum())
    with_alert = [int(s) for s in np.union1d(was_open, sensor_ids[detection.event == OPENED])]

    alerts = (
        {
            alert.sensor_id: alert
            for alert in Alert.objects.select_for_update()
            # The ids as one array parameter: an IN list of every sensor of the batch is a parameter per id
            # for Django and the driver to prepare (an eighth of the anomaly pass at a thousand sensors).
            .filter(kind=Alert.Kind.ANOMALY, sensor_id__in=RawSQL("SELECT unnest(%s::bigint[])", (with_alert,)))
            .exclude(state=Alert.State.RESOLVED)
            .order_by("pk")
        }
        if with_alert
        else {}
    )
    # Per sensor in reading time: the newest learned reading updates an open alert's value, band and score.
    # Only the readings of sensors with an alert, or whose episode opens in this batch, are walked in Python:
    # a plant where nothing is anomalous pays the numpy work and nothing per reading.
    involved = np.array(sorted(set(alerts) | {int(s) for s in sensor_ids[detection.event == OPENED]}), dtype=np.int64)
    walked = detection.learned & np.isin(sensor_ids, involved)
    order = np.lexsort((ts_us, sensor_ids))
    for index in order[walked[order]]:
        sensor_id = int(sensor_ids[index])
        at, value = _at(ts_us[index]), float(values[index])
        low, high = float(detection.low[index]), float(detection.high[index])
        score = float(detection.score[index])
        alert = alerts.get(sensor_id)
        event = int(detection.event[index])
        if event == OPENED and alert is None:
            alert = _open(sensors[sensor_id], detection, index, at=at, value=value)
            outcome.opened(alert, at=at)
            alerts[sensor_id] = alert
            result.opened += 1
        elif alert is not None:
            alert.observe(value, at=at, peak=score >= (alert.peak_score or 0.0))
            alert.expected_low, alert.expected_high, alert.score = low, high, score
            alert.peak_score = max(alert.peak_score or 0.0, float(detection.episode_peak[index]), score)
            outcome.touch(alert)
            if event == RESOLVED:
                outcome.record(alert.resolve(Alert.Resolution.BASELINE, at=at))
                del alerts[sensor_id]
                result.resolved += 1
    return result


def _open(sensor: SensorRow, detection, index: int, *, at: datetime, value: float) -> Alert:
    score = float(detection.score[index])
    started = detection.episode_start[index]
    alert = Alert.opened(
        Alert.Kind.ANOMALY,
        at=at,
        severity=Severity.WARNING,
        sensor_id=sensor.sensor_id,
        device_id=sensor.device_id,
        sensor_type_id=sensor.sensor_type_id,
        location_id=sensor.location_id,
        value=value,
        breach_started_at=None if np.isnan(started) else datetime.fromtimestamp(float(started), tz=UTC),
    )
    alert.expected_low, alert.expected_high = float(detection.low[index]), float(detection.high[index])
    alert.score = score
    alert.peak_score = max(score, float(detection.episode_peak[index]))
    return alert
