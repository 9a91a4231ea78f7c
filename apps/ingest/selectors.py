"""Reads of stored readings: real-time status from the latest-value table, and raw history."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection
from django.db.models import F, QuerySet
from django.utils import timezone

from apps.core.fields import IdsAndKeys
from apps.ingest.models import Reading
from apps.thresholds.severity import severity_label_sql, severity_rank_sql


class RealtimeStatus:
    NORMAL = "normal"
    WARNING = "warning"
    CRITICAL = "critical"
    STALE = "stale"
    choices = [(NORMAL, "normal"), (WARNING, "warning"), (CRITICAL, "critical"), (STALE, "stale")]
    values = [NORMAL, WARNING, CRITICAL, STALE]


@dataclass(frozen=True)
class RealtimeFilters:
    """All given filters hold together; within one, a row matches any of its ids or keys."""

    location_prefix: str | None = None
    sensors: IdsAndKeys | None = None  # ids or keys
    devices: IdsAndKeys | None = None  # ids or external ids
    sensor_types: IdsAndKeys | None = None  # ids or codes
    statuses: tuple[str, ...] | None = None


# Status per sensor in SQL, so filtering by status and paging stay in the database: the latest value
# against every enabled threshold of the sensor's type, each with the sensor's mapping laid over it
# (a disabled mapping removes that threshold). The worst band wins; an old or missing value is stale. The
# classification is generated from the thresholds' own definition, the one evaluation applies in Python.
_SEVERITY_SQL = {
    "severity": severity_rank_sql(value="lr.value", band=lambda field: f"COALESCE(m.{field}, th.{field})"),
    "status": severity_label_sql("ev.severity"),
}
_REALTIME_SQL = """
SELECT * FROM (
    SELECT s.id AS sensor_id, s.key AS sensor, d.id AS device, d.device_id AS device_id, t.id AS sensor_type,
           t.code AS sensor_type_code, t.unit AS unit, s.location_id AS location, l.full_path AS location_path, lr.ts, lr.value,
           CASE WHEN lr.ts IS NULL OR lr.ts < %(stale_before)s THEN 'stale' ELSE {status} END AS status
      FROM devices_sensor s
      JOIN devices_device d ON d.id = s.device_id
      JOIN devices_sensortype t ON t.id = s.sensor_type_id
      LEFT JOIN locations_location l ON l.id = s.location_id
      LEFT JOIN ingest_latestreading lr ON lr.sensor_id = s.id
      LEFT JOIN LATERAL (
          SELECT max({severity}) AS severity
            FROM thresholds_threshold th
            LEFT JOIN thresholds_sensorthresholdmapping m ON m.threshold_id = th.id AND m.sensor_id = s.id
           WHERE th.sensor_type_id = s.sensor_type_id AND th.enabled AND COALESCE(m.enabled, true)
      ) ev ON lr.sensor_id IS NOT NULL
     WHERE {where}
) rows
{status_filter}
ORDER BY sensor
LIMIT %(limit)s OFFSET %(offset)s
"""


def realtime_rows(
    filters: RealtimeFilters, *, limit: int, offset: int, now: datetime | None = None
) -> tuple[list[dict], int]:
    """(rows of one page, total matching) in two queries whatever the number of sensors."""
    now = now or timezone.now()
    params: dict = {
        "stale_before": now - timedelta(seconds=settings.REALTIME_STALE_AFTER_S),
        "limit": limit,
        "offset": offset,
    }
    conditions = ["true"]
    if filters.location_prefix is not None:
        conditions.append("l.tree_path LIKE %(location_prefix)s")
        params["location_prefix"] = filters.location_prefix + "%"
    for table, key_column, named in (
        ("s", "key", filters.sensors),
        ("d", "device_id", filters.devices),
        ("t", "code", filters.sensor_types),
    ):
        if named is not None:
            conditions.append(f"({table}.id = ANY(%({table}_ids)s) OR {table}.{key_column} = ANY(%({table}_keys)s))")
            params[f"{table}_ids"], params[f"{table}_keys"] = list(named.ids), list(named.keys)
    status_filter = ""
    if filters.statuses is not None:
        status_filter = "WHERE status = ANY(%(statuses)s)"
        params["statuses"] = list(filters.statuses)
    sql = _REALTIME_SQL.format(where=" AND ".join(conditions), status_filter=status_filter, **_SEVERITY_SQL)
    count_sql = "SELECT count(*) FROM (" + sql.split("ORDER BY sensor")[0] + ") counted"
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        columns = [column.name for column in cursor.description]
        rows = [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]
        if offset == 0 and len(rows) < limit:
            total = len(rows)
        else:
            cursor.execute(count_sql, params)
            total = cursor.fetchone()[0]
    return rows, total


def readings_queryset(*, sensor_ids: list[int], start: datetime | None, end: datetime | None) -> QuerySet:
    """Raw readings of some sensors in [start, end), with the sensor key; ordered by the caller."""
    queryset = Reading.objects.filter(sensor_id__in=sensor_ids)
    if start is not None:
        queryset = queryset.filter(ts__gte=start)
    if end is not None:
        queryset = queryset.filter(ts__lt=end)
    return queryset.annotate(sensor_key=F("sensor__key"))
