"""Sums that cannot stop a statement: float8 addition fails on overflow, and one sensor's absurd values would
otherwise fail the aggregate of every sensor queried or refreshed with it.

Statements sum in float8 (fast) and, only when PostgreSQL reports an overflow, run again with `exact` sums:
numeric, which cannot overflow, turned back into float8 where they fit and into ±Infinity where they do not.
An infinite rollup sum adds up to infinity again, without an error, in the days and longer buckets built on it.
"""

from __future__ import annotations

import psycopg
from django.db import DataError

# The largest finite float8, as a numeric literal (rounded down, so that anything not above it casts back).
_FLOAT8_MAX = "1.7976931348623157e308"


def sum_sql(column: str, *, exact: bool) -> str:
    """The SQL aggregate summing `column`: plain float8, or exact and saturating at ±Infinity."""
    if not exact:
        return f"sum({column})"
    total = f"sum({column}::numeric)"
    return (
        f"CASE WHEN abs({total}) <= {_FLOAT8_MAX} THEN {total}::float8"
        f" ELSE sign({total})::float8 * 'Infinity'::float8 END"
    )


def is_overflow(exc: DataError) -> bool:
    """Whether a statement failed because a float8 result was out of range."""
    return isinstance(exc.__cause__, psycopg.errors.NumericValueOutOfRange)
