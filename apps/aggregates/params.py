"""The query serializers of the aggregates and export endpoints, and the typed queries they become.

Every refusal names the parameter, so a bad query is a 400 that says what to fix, never a database error:
the serializers check each parameter (apps/core/fields.py) and how they fit together; `selection_of` and
`aggregate_query_of` then look up the sensors they name and bound the size of the answer.
"""

from __future__ import annotations

import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache

from django.conf import settings
from django.db import connection
from django.utils import timezone
from rest_framework import serializers

from apps.aggregates.buckets import INTERVALS, bucket_count_bound
from apps.aggregates.formats import FORMATS
from apps.aggregates.selectors import FUNCTIONS, GROUP_BY, AggregateQuery
from apps.core.errors import ApplicationError
from apps.core.fields import (
    SENSOR_HELP,
    SENSOR_TYPE_HELP,
    ChoiceField,
    ChoiceListField,
    FlexibleTimeField,
    IdOrKeyListField,
    IdsAndKeys,
    QueryTextField,
)
from apps.core.timeparams import is_date, parse_time_param
from apps.devices.models import Sensor, SensorType
from apps.locations.api import SubtreeField

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
    sensor_type_id: int
    sensor_type_code: str
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


class TimeZoneField(QueryTextField):
    """An IANA time zone name that Python and PostgreSQL both know; absent, TIME_ZONE."""

    def __init__(self, **kwargs):
        kwargs.setdefault(
            "help_text", "IANA time zone for day, week and month buckets, YYYYMMDD dates and the timestamps out."
        )
        super().__init__(**kwargs)

    def get_default(self):
        return settings.TIME_ZONE

    def to_internal_value(self, data) -> str:
        name = str(data).strip()
        if name not in _known_time_zones():
            raise serializers.ValidationError(
                f"'{data}' is not a known time zone; use an IANA name such as Europe/Berlin or UTC."
            )
        return name


class SelectionQuery(serializers.Serializer):
    """Which sensors and which time range, shared by every endpoint here. Without `start`, a day before `end`;
    without `end`, a day after `start`, or now when both are missing. YYYYMMDD dates are midnight in `tz`."""

    sensor = IdOrKeyListField(help_text=SENSOR_HELP)
    sensor_type = IdOrKeyListField(help_text=SENSOR_TYPE_HELP + " All their sensors (within `location`).")
    location = SubtreeField(help_text="Location id: only sensors in its subtree (an unknown id is a 400).")
    start = FlexibleTimeField(
        help_text="From (inclusive): ISO 8601, or YYYYMMDD for midnight in `tz`. Default: a day before `end`."
    )
    end = FlexibleTimeField(
        help_text="To (exclusive): ISO 8601, or YYYYMMDD for midnight in `tz`. Default: a day after `start`, or now."
    )
    tz = TimeZoneField()

    def validate(self, attrs):
        if not attrs["sensor"] and not attrs["sensor_type"]:
            raise serializers.ValidationError(
                {"sensor": ["Name sensors (sensor=key,key or ids) or sensor types (sensor_type=code), or both."]}
            )
        tz = attrs["tz"]
        for name in ("start", "end"):
            raw = self.initial_data.get(name)
            if attrs[name] is not None and is_date(raw):
                attrs[name] = parse_time_param(raw, tz=tz)
            if attrs[name] is not None and not EARLIEST <= attrs[name] < EARLIEST.replace(year=LATEST_YEAR):
                raise serializers.ValidationError({name: [f"'{raw}' is outside the years 1970 to {LATEST_YEAR - 1}."]})
        start, end = attrs["start"], attrs["end"]
        if end is None:
            end = start + DEFAULT_SPAN if start else timezone.now()
        if start is None:
            start = end - DEFAULT_SPAN
        if end <= start:
            raise serializers.ValidationError({"end": ["end must be after start."]})
        return {**attrs, "start": start, "end": end}


class AggregatesQuery(SelectionQuery):
    interval = ChoiceField(choices=INTERVALS, default="hour", help_text="Bucket length.")
    functions = ChoiceListField(
        choices=FUNCTIONS, default=FUNCTIONS, help_text=f"Comma-separated, any of {', '.join(FUNCTIONS)}. Default all."
    )
    group_by = ChoiceField(
        choices=GROUP_BY,
        default="sensor",
        help_text="One series per sensor (default), per location of the sensors, or one for all of them.",
    )


FORMAT_FIELD_HELP = "File format. Default csv."


class ReadingsExportQuery(SelectionQuery):
    format = ChoiceField(choices=FORMATS, default="csv", help_text=FORMAT_FIELD_HELP)


class AggregatesExportQuery(AggregatesQuery):
    format = ChoiceField(choices=FORMATS, default="csv", help_text=FORMAT_FIELD_HELP)


def _sensors(query: Mapping) -> dict[int, SensorInfo]:
    """The sensors a query names: `sensor` (keys or ids), or `sensor_type` (codes or ids), optionally within
    the subtree of `location`; all of them filter together. An unknown sensor or type is a 400 naming it."""
    named: IdsAndKeys | None = query["sensor"]
    types: IdsAndKeys | None = query["sensor_type"]
    sensors = Sensor.objects.all()
    if named:
        found = Sensor.objects.filter(named.q(id_field="id", key_field="key")).values_list("id", "key")
        unknown = _unknown(named, found)
        if unknown:
            refuse("sensor", f"Unknown sensor(s): {', '.join(unknown[:20])}.")
        sensors = sensors.filter(named.q(id_field="id", key_field="key"))
    if types:
        found = SensorType.objects.filter(types.q(id_field="id", key_field="code")).values_list("id", "code")
        unknown = _unknown(types, found)
        if unknown:
            refuse("sensor_type", f"Unknown sensor type(s): {', '.join(unknown[:20])}.")
        sensors = sensors.filter(sensor_type_id__in=[pk for pk, _ in found])
    if query["location"] is not None:
        sensors = sensors.filter(location__tree_path__startswith=query["location"].prefix)
    rows = sensors.order_by("key").values_list(
        "id", "key", "sensor_type_id", "sensor_type__code", "sensor_type__unit", "location_id", "location__full_path"
    )
    return {row[0]: SensorInfo(*row) for row in rows}


def _unknown(named: IdsAndKeys, found) -> list[str]:
    """The names of `named` that none of the (id, key) rows `found` answers to."""
    ids, keys = set(), set()
    for pk, key in found:
        ids.add(pk)
        keys.add(key)
    return [str(pk) for pk in named.ids if pk not in ids] + [key for key in named.keys if key not in keys]


def selection_of(query: Mapping) -> Selection:
    """The sensors and the time range of a checked query (a SelectionQuery's validated data)."""
    return Selection(sensors=_sensors(query), tz=query["tz"], start=query["start"], end=query["end"])


def aggregate_query_of(query: Mapping, *, limit_size: bool = True) -> tuple[AggregateQuery, Selection]:
    """The aggregate query of a checked query (an AggregatesQuery's validated data). With
    `limit_size`, an answer of more than AGGREGATES_MAX_BUCKETS buckets per series or AGGREGATES_MAX_POINTS in
    all is refused (exports take any size)."""
    selection = selection_of(query)
    interval = query["interval"]
    aggregate = AggregateQuery(
        sensor_ids=selection.sensor_ids,
        interval=interval,
        tz=selection.tz,
        start=selection.start,
        end=selection.end,
        functions=tuple(name for name in FUNCTIONS if name in query["functions"]),
        group_by=query["group_by"],
    )
    if limit_size:
        buckets = bucket_count_bound(interval=interval, start=selection.start, end=selection.end)
        if buckets > settings.AGGREGATES_MAX_BUCKETS:
            refuse(
                "interval",
                f"Too many buckets: [start, end) spans up to {buckets:,} {interval}s, more than "
                f"{settings.AGGREGATES_MAX_BUCKETS:,}; use a longer interval or a shorter range.",
            )
        points = buckets * series_count(aggregate, selection)
        if points > settings.AGGREGATES_MAX_POINTS:
            refuse(
                "interval",
                f"Too many buckets: up to {points:,} over all series, more than {settings.AGGREGATES_MAX_POINTS:,};"
                " use fewer sensors, group_by=location or all, a longer interval or a shorter range.",
            )
    return aggregate, selection


def series_count(query: AggregateQuery, selection: Selection) -> int:
    if query.group_by == "all":
        return 1
    if query.group_by == "location":
        return len({sensor.location_id for sensor in selection.sensors.values()})
    return len(selection.sensors)
