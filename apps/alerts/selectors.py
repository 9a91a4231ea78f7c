"""Reads for alerting: the readings a batch brought, the alerts list."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np
from django.db.models import QuerySet

from apps.alerts.models import Alert
from apps.core.sql import binary_cursor
from apps.ingest.models import Reading

# Each sensor's readings after the point its evaluation has reached, up to the batch's newest: one short range
# scan of the (sensor_id, ts) primary key per sensor. OFFSET 0 keeps the planner from flattening the LATERAL
# subquery into a plain join, for which it picks a merge join that walks the whole index. The constant lower
# bound (the earliest of the sensors' points) lets the planner leave out the day partitions before it: with
# only the per-sensor bound, known at run time, it would plan a scan of every partition (2.7 against 0.2 ms of
# planning per batch with 100 partitions).
_READINGS_SQL = f"""
SELECT s.sensor_id, r.ts, r.value, (extract(epoch FROM r.ts) * 1000000)::bigint
  FROM unnest(%s::bigint[], %s::timestamptz[]) AS s(sensor_id, after)
 CROSS JOIN LATERAL (
       SELECT ts, value FROM {Reading._meta.db_table}
        WHERE sensor_id = s.sensor_id AND ts > s.after AND ts > %s AND ts <= %s
       OFFSET 0
 ) r
 ORDER BY s.sensor_id, r.ts
"""


@dataclass
class ReadingsAfter:
    """What readings_after read: by sensor for the threshold walk, and as columns (sensor id, reading time in
    epoch microseconds, value) for the anomaly detectors, with the sensors it read for (`asked`), those
    without any newer reading included."""

    by_sensor: dict[int, list[tuple[datetime, float]]]
    asked: np.ndarray
    sensor_ids: np.ndarray
    ts_us: np.ndarray
    values: np.ndarray


def readings_after(after_by_sensor: dict[int, datetime], *, until: datetime) -> ReadingsAfter:
    """Readings by sensor (ascending ts) newer than each sensor's `after` and no newer than `until`."""
    sensor_ids = sorted(after_by_sensor)
    read = ReadingsAfter({}, np.array(sensor_ids, dtype=np.int64), *_no_columns())
    if not sensor_ids:
        return read
    with binary_cursor() as cursor:
        afters = [after_by_sensor[s] for s in sensor_ids]
        cursor.execute(_READINGS_SQL, [sensor_ids, afters, min(afters), until])
        rows = cursor.fetchall()
    if not rows:
        return read
    by_sensor = read.by_sensor
    for sensor_id, ts, value, _ in rows:
        by_sensor.setdefault(sensor_id, []).append((ts, value))
    ids, _, values, ts_us = zip(*rows, strict=True)
    read.sensor_ids = np.array(ids, dtype=np.int64)
    read.ts_us = np.array(ts_us, dtype=np.int64)
    read.values = np.array(values, dtype=np.float64)
    return read


def _no_columns() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float64)


def alerts_queryset() -> QuerySet[Alert]:
    return Alert.objects.select_related(
        "sensor", "device", "threshold", "sensor_type", "location", "acknowledged_by", "resolved_by"
    )
