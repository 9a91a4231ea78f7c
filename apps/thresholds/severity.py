"""How one value is classified against a threshold's bands, defined once.

`LIMITS` is the definition. `severity_of` applies it in Python (threshold evaluation, through
`EffectiveThreshold.severity_of`); `severity_rank_sql` and `severity_label_sql` generate the same rule as SQL
for reads that classify in the database (the realtime status). tests/thresholds/test_severity.py runs both over
a grid of values and band configurations and asserts they agree.

No hysteresis here: that needs the previous state, which only evaluation has (apps/alerts/evaluation.py).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

NORMAL = "normal"
WARNING = "warning"
CRITICAL = "critical"

# Worst level first: a value below a level's low limit or above its high limit has that level; an empty limit
# never matches (in SQL a comparison with NULL is not true, so the generated CASE behaves the same).
LIMITS: tuple[tuple[str, str, str], ...] = (
    (CRITICAL, "critical_low", "critical_high"),
    (WARNING, "warning_low", "warning_high"),
)
# Ranks order the levels, so SQL can take the worst of several thresholds with max().
RANKS: dict[str, int] = {NORMAL: 0, WARNING: 1, CRITICAL: 2}


class Bands(Protocol):
    critical_low: float | None
    warning_low: float | None
    warning_high: float | None
    critical_high: float | None


def severity_of(bands: Bands, value: float) -> str:
    """normal, warning or critical for one (finite) value."""
    for level, low_field, high_field in LIMITS:
        low, high = getattr(bands, low_field), getattr(bands, high_field)
        if (low is not None and value < low) or (high is not None and value > high):
            return level
    return NORMAL


def severity_rank_sql(*, value: str, band: Callable[[str], str]) -> str:
    """A SQL expression giving the rank (RANKS) of the SQL expression `value`; `band(field)` is the SQL of
    that band column, e.g. `lambda field: f"COALESCE(m.{field}, th.{field})"`. NaN is not a reading value
    (ingest rejects it): PostgreSQL sorts it above every number, Python compares it false."""
    whens = " ".join(
        f"WHEN {value} < {band(low)} OR {value} > {band(high)} THEN {RANKS[level]}" for level, low, high in LIMITS
    )
    return f"CASE {whens} ELSE {RANKS[NORMAL]} END"


def severity_label_sql(rank: str) -> str:
    """A SQL expression naming the level of the rank expression `rank`; NULL (no threshold) is normal."""
    whens = " ".join(f"WHEN {RANKS[level]} THEN '{level}'" for level, _, _ in LIMITS)
    return f"CASE {rank} {whens} ELSE '{NORMAL}' END"
