"""Bucket arithmetic: which query buckets there are, and which parts of a range rollups can answer.

Query buckets are what `date_trunc(interval, ts, tz)` gives in PostgreSQL: minutes and hours as they are,
days, weeks (from Monday) and months from local midnight, so a day is 23 or 25 hours long across DST.
Rollups hold UTC hours and UTC days. A rollup row can answer for a query bucket only when it lies wholly
inside it, which holds when every bucket edge is a UTC hour (or day) boundary.
"""

from __future__ import annotations

import zoneinfo
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache

INTERVALS = ("minute", "hour", "day", "week", "month")
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
# Shortest length of each interval, so that (end - start) / length never undercounts buckets.
_SHORTEST = {
    "minute": timedelta(minutes=1),
    "hour": HOUR,
    "day": timedelta(hours=23),
    "week": timedelta(days=7) - HOUR,
    "month": timedelta(days=28) - HOUR,
}


def bucket_count_bound(*, interval: str, start: datetime, end: datetime) -> int:
    """At most how many buckets [start, end) spans (the partial buckets at both ends included)."""
    return int((end - start) / _SHORTEST[interval]) + 2


@lru_cache(maxsize=1024)
def _offsets_in_year(zone_name: str, year: int) -> frozenset[timedelta]:
    """The UTC offsets a zone uses in one year, sampled every six hours (DST periods last months, so none
    is missed)."""
    zone = zoneinfo.ZoneInfo(zone_name)
    moment = datetime(year, 1, 1, tzinfo=UTC) - DAY
    stop = datetime(year + 1, 1, 1, tzinfo=UTC) + DAY
    seen: set[timedelta] = set()
    while moment < stop:
        seen.add(moment.astimezone(zone).utcoffset())
        moment += timedelta(hours=6)
    return frozenset(seen)


def _offsets(zone_name: str, start: datetime, end: datetime) -> set[timedelta]:
    offsets: set[timedelta] = set()
    for year in range(start.year, end.year + 1):
        offsets |= _offsets_in_year(zone_name, year)
    return offsets


def hour_rollups_fit(*, interval: str, tz: str, start: datetime, end: datetime) -> bool:
    """True when every query bucket is a union of whole UTC hours (whole-hour UTC offsets)."""
    if interval == "minute":
        return False
    return all(offset % HOUR == timedelta(0) for offset in _offsets(tz, start, end))


def minute_offsets(*, tz: str, start: datetime, end: datetime) -> bool:
    """True when the zone's offsets are whole minutes over the range (local minutes are UTC minutes)."""
    return all(offset % timedelta(minutes=1) == timedelta(0) for offset in _offsets(tz, start, end))


def day_rollups_fit(*, interval: str, tz: str, start: datetime, end: datetime) -> bool:
    """True when every query bucket is a union of whole UTC days (the zone is UTC all year)."""
    if interval not in ("day", "week", "month"):
        return False
    return _offsets(tz, start, end) == {timedelta(0)}


def floor_to(moment: datetime, step: timedelta) -> datetime:
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    return epoch + ((moment - epoch) // step) * step


def ceil_to(moment: datetime, step: timedelta) -> datetime:
    floored = floor_to(moment, step)
    return floored if floored == moment else floored + step


@dataclass(frozen=True)
class Segments:
    """How [start, end) is answered: hourly rollups for [hour_lo, hour_hi), of which daily rollups for
    [day_lo, day_hi); raw readings for the rest. Empty segments have lo == hi."""

    hour_lo: datetime
    hour_hi: datetime
    day_lo: datetime
    day_hi: datetime


def plan_segments(
    *,
    interval: str,
    tz: str,
    start: datetime,
    end: datetime,
    covered_from: datetime | None,
    use_days: bool = True,
) -> Segments:
    """Split a query range between rollups and raw readings. `covered_from` is where complete rollups
    begin (None: nowhere)."""
    empty = Segments(end, end, end, end)
    if covered_from is None or not hour_rollups_fit(interval=interval, tz=tz, start=start, end=end):
        return empty
    hour_lo = ceil_to(max(start, covered_from), HOUR)
    hour_hi = floor_to(end, HOUR)
    if hour_lo >= hour_hi:
        return empty
    day_lo, day_hi = hour_hi, hour_hi
    if use_days and day_rollups_fit(interval=interval, tz=tz, start=start, end=end):
        candidate_lo, candidate_hi = ceil_to(hour_lo, DAY), floor_to(hour_hi, DAY)
        if candidate_lo < candidate_hi:
            day_lo, day_hi = candidate_lo, candidate_hi
    return Segments(hour_lo, hour_hi, day_lo, day_hi)


def iso_in_zone(moment: datetime, zone: zoneinfo.ZoneInfo) -> str:
    """ISO 8601 with the zone's offset at that moment ("Z" for UTC)."""
    text = moment.astimezone(zone).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") and zone.key == "UTC" else text
