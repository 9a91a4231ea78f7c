"""Time query parameters: ISO 8601 timestamps (with offset; naive ones are UTC) or YYYYMMDD dates.

The rule of the read APIs' time parameters; apps/core/fields.py and apps/core/filters.py apply it to query
serializers and FilterSets."""

from __future__ import annotations

import re
import zoneinfo
from datetime import UTC, datetime

_DATE_ONLY = re.compile(r"[0-9]{8}")


def is_date(raw: str) -> bool:
    """Whether a time parameter is a YYYYMMDD date (its moment depends on a time zone)."""
    return _DATE_ONLY.fullmatch(raw.strip()) is not None


def parse_time_param(raw: str, *, tz: str | None = None) -> datetime:
    """A datetime for an ISO 8601 string or a YYYYMMDD date (midnight in `tz`, default UTC).
    Raises ValueError with a message fit for the API."""
    text = raw.strip()
    zone = zoneinfo.ZoneInfo(tz) if tz else UTC
    if is_date(text):
        try:
            return datetime.strptime(text, "%Y%m%d").replace(tzinfo=zone)
        except ValueError:
            raise ValueError(f"'{raw}' is not a valid YYYYMMDD date.") from None
    try:
        moment = datetime.fromisoformat(text.replace(" ", "+") if text.count(" ") == 1 and "T" in text else text)
    except ValueError:
        raise ValueError(f"'{raw}' is not an ISO 8601 timestamp (2026-02-12T16:00:00Z) or a YYYYMMDD date.") from None
    moment = moment if moment.tzinfo else moment.replace(tzinfo=zone)
    try:
        # In UTC: Python accepts offsets up to ±23:59, PostgreSQL only up to ±15:59.
        return moment.astimezone(UTC)
    except OverflowError:
        raise ValueError(f"'{raw}' is out of range.") from None
