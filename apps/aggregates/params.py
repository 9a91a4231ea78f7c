"""Query parameters of the aggregates and export endpoints, checked into typed queries.

Every refusal is an ApplicationError naming the parameter, so a bad query is a 400 that says what to fix,
never a database error.
"""

from __future__ import annotations

import zoneinfo
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache

from django.conf import settings
from django.db import connection
from django.db.models import Q
from django.utils import timezone

from apps.aggregates.buckets import INTERVALS, bucket_count_bound
from apps.aggregates.selectors import FUNCTIONS, GROUP_BY, AggregateQuery
from apps.core.errors import ApplicationError
from apps.core.timeparams import parse_time_param
from apps.devices.models import Sensor, SensorType
from apps.locations.selectors import location_subtree_prefix

# Readings and rollups live well inside these years; outside them a date is a typo.
EARLIEST = datetime(1970, 1, 2, tzinfo=UTC)
LATEST_YEAR = 2200
DEFAULT_SPAN = timedelta(days=1)


def refuse(field: str, message: str):
    raise ApplicationError(message, errors={field: [message]})


@dataclass(frozen=True)
class SensorInfo:
    id: int
    key: str
    sensor_type: str
    unit: str
    location_id: int | None
    location_path: str | None


@dataclass(frozen=True)
class Selection:
    sensors: dict[int, SensorInfo]
    tz: str
    start: datetime
    end: datetime

    @property
    def sensor_ids(self) -> tuple[int, ...]:
        return tuple(self.sensors)


@lru_cache(maxsize=1)
def _known_time_zones() -> frozenset[str]:
    """Names both Python and the database resolve the same way (the database does the bucketing)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT name FROM pg_timezone_names")
        database_names = {row[0] for row in cursor.fetchall()}
    return frozenset(zoneinfo.available_timezones() & database_names) | {"UTC"}


def parse_tz(raw: str | None) -> str:
    name = (raw or settings.TIME_ZONE).strip()
    if name not in _known_time_zones():
        refuse("tz", f"'{raw}' is not a known time zone; use an IANA name such as Europe/Berlin or UTC.")
    return name


def _as_id(text: str) -> int | None:
    """A database id, or None for anything that cannot be one (also digits beyond bigint)."""
    return int(text) if text.isdigit() and len(text) < 19 else None


def _list(raw: str | None) -> list[str]:
    return [part.strip() for part in (raw or "").split(",") if part.strip()]


def _sensors(params) -> dict[int, SensorInfo]:
    """The sensors a query names: `sensor` (keys or ids), or `sensor_type` (code or id), optionally within the
    subtree of `location`; all of them filter together."""
    names = _list(params.get("sensor"))
    type_name = (params.get("sensor_type") or "").strip()
    location = (params.get("location") or "").strip()
    if not names and not type_name:
        refuse("sensor", "Name sensors (sensor=key,key or ids) or a sensor type (sensor_type=code), or both.")
    sensors = Sensor.objects.all()
    if names:
        ids = [_as_id(name) for name in names if _as_id(name) is not None]
        keys = [name for name in names if _as_id(name) is None]
        matched = set(Sensor.objects.filter(id__in=ids).values_list("id", flat=True)) | set(
            Sensor.objects.filter(key__in=keys).values_list("key", flat=True)
        )
        unknown = [name for name in names if (_as_id(name) if _as_id(name) is not None else name) not in matched]
        if unknown:
            refuse("sensor", f"Unknown sensor(s): {', '.join(unknown[:20])}.")
        sensors = sensors.filter(Q(id__in=ids) | Q(key__in=keys))
    if type_name:
        lookup = {"id": _as_id(type_name)} if _as_id(type_name) is not None else {"code": type_name}
        sensor_type = SensorType.objects.filter(**lookup).values_list("id", flat=True).first()
        if sensor_type is None:
            refuse("sensor_type", f"Unknown sensor type '{type_name}'.")
        sensors = sensors.filter(sensor_type_id=sensor_type)
    if location:
        prefix = location_subtree_prefix(_as_id(location)) if _as_id(location) is not None else None
        if prefix is None:
            refuse("location", f"Unknown location '{location}'.")
        sensors = sensors.filter(location__tree_path__startswith=prefix)
    rows = sensors.order_by("key").values_list(
        "id", "key", "sensor_type__code", "sensor_type__unit", "location_id", "location__full_path"
    )
    return {row[0]: SensorInfo(*row) for row in rows}


def _time(params, name: str, tz: str) -> datetime | None:
    raw = params.get(name)
    if raw in (None, ""):
        return None
    try:
        moment = parse_time_param(raw, tz=tz)
    except (ValueError, OverflowError) as exc:
        refuse(name, str(exc))
    if not EARLIEST <= moment < EARLIEST.replace(year=LATEST_YEAR):
        refuse(name, f"'{raw}' is outside the years 1970 to {LATEST_YEAR - 1}.")
    return moment


def parse_selection(params) -> Selection:
    """Sensors, time zone and [start, end) shared by every endpoint here. Without `start`, a day before
    `end`; without `end`, a day after `start`, or now when both are missing. YYYYMMDD dates are midnight in
    `tz`."""
    for name, value in params.items():
        if "\x00" in str(value):
            refuse(name, "NUL characters are not allowed.")
    tz = parse_tz(params.get("tz"))
    start = _time(params, "start", tz)
    end = _time(params, "end", tz)
    if end is None:
        end = start + DEFAULT_SPAN if start else timezone.now()
    if start is None:
        start = end - DEFAULT_SPAN
    if end <= start:
        refuse("end", "end must be after start.")
    return Selection(sensors=_sensors(params), tz=tz, start=start, end=end)


def parse_aggregate_query(params, *, limit_size: bool = True) -> tuple[AggregateQuery, Selection]:
    """The aggregate query of a request. With `limit_size`, an answer of more than AGGREGATES_MAX_BUCKETS
    buckets per series or AGGREGATES_MAX_POINTS in all is refused (exports take any size)."""
    interval = (params.get("interval") or "hour").strip()
    if interval not in INTERVALS:
        refuse("interval", f"Unknown interval '{interval}'; use one of {', '.join(INTERVALS)}.")
    functions = tuple(_list(params.get("functions"))) or FUNCTIONS
    unknown = [name for name in functions if name not in FUNCTIONS]
    if unknown:
        refuse("functions", f"Unknown function(s) {', '.join(unknown)}; use any of {', '.join(FUNCTIONS)}.")
    functions = tuple(name for name in FUNCTIONS if name in functions)
    group_by = (params.get("group_by") or "sensor").strip()
    if group_by not in GROUP_BY:
        refuse("group_by", f"Unknown group_by '{group_by}'; use one of {', '.join(GROUP_BY)}.")
    selection = parse_selection(params)
    query = AggregateQuery(
        sensor_ids=selection.sensor_ids,
        interval=interval,
        tz=selection.tz,
        start=selection.start,
        end=selection.end,
        functions=functions,
        group_by=group_by,
    )
    if limit_size:
        buckets = bucket_count_bound(interval=interval, start=selection.start, end=selection.end)
        if buckets > settings.AGGREGATES_MAX_BUCKETS:
            refuse(
                "interval",
                f"Too many buckets: [start, end) spans up to {buckets:,} {interval}s, more than "
                f"{settings.AGGREGATES_MAX_BUCKETS:,}; use a longer interval or a shorter range.",
            )
        points = buckets * series_count(query, selection)
        if points > settings.AGGREGATES_MAX_POINTS:
            refuse(
                "interval",
                f"Too many buckets: up to {points:,} over all series, more than {settings.AGGREGATES_MAX_POINTS:,};"
                " use fewer sensors, group_by=location or all, a longer interval or a shorter range.",
            )
    return query, selection


def series_count(query: AggregateQuery, selection: Selection) -> int:
    if query.group_by == "all":
        return 1
    if query.group_by == "location":
        return len({sensor.location_id for sensor in selection.sensors.values()})
    return len(selection.sensors)
