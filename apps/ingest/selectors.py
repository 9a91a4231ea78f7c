"""Reads of stored readings (real-time status from the latest-value table, and raw history) and of ingest
batches: the one way other apps read what ingest stored."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection
from django.db.models import Count, F, Q, QuerySet, Sum
from django.utils import timezone

from apps.core.fields import IdsAndKeys
from apps.ingest.models import IngestBatch, Reading
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


# --- Batches, as other apps read them (stats, alerting's requeue) --------------------------------------------
# Every status named where a time range on received_at is read, so the (status, received_at) index serves it.
_UNFINISHED = [IngestBatch.Status.QUEUED, IngestBatch.Status.PROCESSING, IngestBatch.Status.FAILED]


def batches_stored_within(now: datetime, windows_s: tuple[int, ...]) -> dict[int, int]:
    """Readings stored by the batches finished within each window (seconds before now), in one query."""
    totals = IngestBatch.objects.filter(
        status=IngestBatch.Status.DONE, stored__gt=0, finished_at__gte=now - timedelta(seconds=max(windows_s))
    ).aggregate(
        **{
            f"w{seconds}": Sum("stored", filter=Q(finished_at__gte=now - timedelta(seconds=seconds)))
            for seconds in windows_s
        }
    )
    return {seconds: totals[f"w{seconds}"] or 0 for seconds in windows_s}


def batches_received_since(since: datetime) -> dict[str, int]:
    """Batches received since `since` and the readings they stored, repeated and rejected."""
    totals = IngestBatch.objects.filter(status__in=IngestBatch.Status.values, received_at__gte=since).aggregate(
        batches=Count("pk"), stored=Sum("stored"), duplicates=Sum("duplicates"), rejected=Sum("rejected")
    )
    return {name: value or 0 for name, value in totals.items()}


def batches_unfinished_since(since: datetime) -> dict[str, int]:
    """Batches received since `since` still queued, processing or failed, by status (every one named)."""
    found = dict(
        IngestBatch.objects.filter(status__in=_UNFINISHED, received_at__gte=since)
        .order_by()
        .values_list("status")
        .annotate(n=Count("pk"))
        .values_list("status", "n")
    )
    return {status: found.get(status, 0) for status in _UNFINISHED}


def batches_unevaluated(*, finished_before: datetime, limit: int) -> list[str]:
    """Ids of stored batches finished before `finished_before` whose evaluation never ran, oldest first."""
    return [
        str(batch_id)
        for batch_id in IngestBatch.objects.filter(
            status=IngestBatch.Status.DONE, evaluated_at__isnull=True, finished_at__lt=finished_before
        )
        .order_by("finished_at")
        .values_list("pk", flat=True)[:limit]
    ]
